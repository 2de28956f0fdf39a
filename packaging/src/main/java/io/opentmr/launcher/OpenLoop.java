package io.opentmr.launcher;

import io.opentmr.client.CmException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import org.HdrHistogram.Histogram;

/**
 * Open-loop load for {@code tmr bench --rate}: its schedule and latency accounting.
 *
 * <p>Pair {@code g} of a run is due at {@code start + g / rate}; connection {@code c} of {@code clients} sends
 * the pairs with {@code g mod clients == c}, so the connections share the rate evenly, staggered. A pair is
 * sent at its due time whatever became of the pairs before it, and its latency runs from that due time, not
 * from when it was sent: a stall shows as the latency of every pair due during it instead of as one slow
 * pair (coordinated omission corrected). A connection that falls behind sends its backlog as fast as its
 * workers can, oldest first, and the delay counts in each pair's latency; nothing due is skipped.
 *
 * <p>Bounds. No queue holds the backlog: a connection's next pair is an index, and what is due but not sent
 * is arithmetic, so a dead server grows no memory. At most {@code outstanding} workers per connection send,
 * so it ties up that many requests per connection. A pair due before the end and not sent by then is
 * counted {@linkplain Pacing#unsent() unsent} and enters the latency with its age at the end, a lower bound
 * of what it would have had.
 *
 * <p>What counts. The latency and the errors are those of the pairs due in the measured time
 * ({@code measureFrom} to {@code end}), wherever they were answered. The pairs per second are those answered
 * in the measured time, wherever they were due: what the server did under this load. The two differ when the
 * clients are behind: a backlog left by the warm-up is answered in the measured time, and its own pairs wait.
 */
final class OpenLoop implements Load {

    /** The unsent pairs of one connection enter the histogram in at most this many steps. */
    private static final int UNSENT_STEPS = 1000;

    private final Clock clock;
    private final double rate;
    private final int clients;
    private final int outstanding;
    private final long start;
    private final long measureFrom;
    private final long end;
    /** Each connection's next pair to take. */
    private final AtomicLongArray next;
    private final AtomicLongArray sentInWindow;
    /** The due time of each worker's measured pair in flight; 0 when none. */
    private final AtomicLongArray inFlightDue;
    /** Pairs answered in the measured time; latencies and errors of the pairs due in it. */
    private final Tally tally = new Tally();
    private final AtomicLong maxLag = new AtomicLong();
    private final AtomicLong maxLatency = new AtomicLong();

    /**
     * @param rate        pairs per second over all connections
     * @param outstanding workers, so pairs in flight at most, per connection
     * @param start       when pair 0 is due
     * @param measureFrom pairs due from here on are measured (the end of the warm-up)
     * @param end         no pair is due from here on, and none is sent
     */
    OpenLoop(Clock clock, double rate, int clients, int outstanding, long start, long measureFrom, long end) {
        if (!(rate > 0) || clients < 1 || outstanding < 1 || measureFrom - start < 0 || end - measureFrom <= 0) {
            throw new IllegalArgumentException("rate " + rate + ", clients " + clients + ", outstanding "
                    + outstanding + " or times out of order");
        }
        this.clock = clock;
        this.rate = rate;
        this.clients = clients;
        this.outstanding = outstanding;
        this.start = start;
        this.measureFrom = measureFrom;
        this.end = end;
        this.next = new AtomicLongArray(clients);
        this.sentInWindow = new AtomicLongArray(clients);
        this.inFlightDue = new AtomicLongArray(clients * outstanding);
    }

    @Override
    public int workersPerClient() {
        return outstanding;
    }

    /** When pair {@code k} of connection {@code client} is due. */
    long dueAt(int client, long k) {
        return dueAt(k * clients + client);
    }

    private long dueAt(long g) {
        return start + (long) Math.floor(g * 1e9 / rate);
    }

    /** The first pair of the whole run due at or after {@code time}. */
    private long firstDueFrom(long time) {
        long g = Math.max(0, (long) Math.ceil((time - start) * rate / 1e9));
        while (g > 0 && dueAt(g - 1) - time >= 0) {
            g--;
        }
        while (dueAt(g) - time < 0) {
            g++;
        }
        return g;
    }

    /** How many of the run's pairs {@code 0 .. g-1} belong to connection {@code client}. */
    private long countBelow(long g, int client) {
        return g <= client ? 0 : (g - client - 1) / clients + 1;
    }

    /**
     * Takes the connection's next pair, waits for its due time, sends it and records it, until the next pair
     * is due at or after the end, or the end has come before it could be sent. The workers of a connection
     * share its pairs.
     */
    @Override
    public void work(int client, int worker, Pair pair) throws InterruptedException {
        int slot = client * outstanding + worker;
        while (true) {
            long k = next.getAndIncrement(client);
            long due = dueAt(client, k);
            if (due - end >= 0) {
                return;
            }
            clock.sleepUntil(due);
            long sent = clock.nanoTime();
            if (sent - end >= 0) {
                return;
            }
            boolean measured = due - measureFrom >= 0;
            if (measured) {
                sentInWindow.incrementAndGet(client);
                maxLag.accumulateAndGet(sent - due, Math::max);
                inFlightDue.set(slot, due);
            }
            Integer error = null;
            try {
                pair.run();
            } catch (CmException e) {
                error = e.code();
            }
            long answered = clock.nanoTime();
            if (answered - measureFrom >= 0 && answered - end < 0) {
                tally.pair();
            }
            if (measured) {
                inFlightDue.set(slot, 0);
                tally.latency(answered - due);
                maxLatency.accumulateAndGet(answered - due, Math::max);
                if (error != null) {
                    tally.error(error);
                }
            }
        }
    }

    @Override
    public Tally tally() {
        return tally;
    }

    /** Pairs due by {@code now} that no worker has taken yet: how far the clients are behind. */
    long backlog(long now) {
        long due = firstDueFrom(Math.min(now, end - 1) + 1);
        long backlog = 0;
        for (int c = 0; c < clients; c++) {
            long dueOfClient = countBelow(due, c);
            backlog += dueOfClient - Math.min(next.get(c), dueOfClient);
        }
        return backlog;
    }

    @Override
    public String progress(long now) {
        return String.format(", %,d due and not yet sent", backlog(now));
    }

    /**
     * The pairs due in the measured time and not sent enter the latency with their age at the end, those
     * in flight at {@code stopped} (workers given up on) with their age then.
     */
    @Override
    public Figures figures(long stopped) {
        Histogram histogram = tally.histogram();
        long maxNanos = maxLatency.get();
        for (int i = 0; i < inFlightDue.length(); i++) {
            long due = inFlightDue.get(i);
            if (due != 0) {
                histogram.recordValue(Math.min(stopped - due, MAX_RECORDED_NANOS));
                maxNanos = Math.max(maxNanos, stopped - due);
            }
        }
        long from = firstDueFrom(measureFrom);
        long to = firstDueFrom(end);
        long unsent = 0;
        for (int c = 0; c < clients; c++) {
            long missing = countBelow(to, c) - countBelow(from, c) - sentInWindow.get(c);
            if (missing <= 0) {
                continue;
            }
            unsent += missing;
            // A connection sends its pairs oldest first, so the ones not sent are its last ones in the window.
            long last = countBelow(to, c) - 1;
            maxNanos = Math.max(maxNanos, end - dueAt(c, last - missing + 1));
            long step = (missing + UNSENT_STEPS - 1) / UNSENT_STEPS;
            for (long j = 0; j < missing; j += step) {
                // A step is recorded at its youngest pair's age: a lower bound for each of its pairs.
                histogram.recordValueWithCount(Math.min(end - dueAt(c, last - j), MAX_RECORDED_NANOS),
                        Math.min(step, missing - j));
            }
        }
        return new Figures(tally.pairs(), histogram, tally.errorsByCode(), maxNanos,
                new Pacing(rate, outstanding, to - from, unsent, maxLag.get()));
    }
}
