package io.opentmr.launcher;

import io.opentmr.client.CmException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * Open-loop load for {@code tmr bench --rate}: its schedule and latency accounting.
 *
 * <p>Pair {@code g} of a run is due at {@code start + g / rate}; connection {@code c} of {@code clients} sends
 * the pairs with {@code g mod clients == c}, so the connections share the rate evenly, staggered. A pair is
 * sent at its due time whatever became of the pairs before it, and its latency runs from that due time, not
 * from when it was sent: a stall shows as the latency of every pair due during it instead of as one slow
 * pair (coordinated omission corrected). A connection that falls behind sends its backlog as fast as its
 * answers allow, oldest first, and the delay counts in each pair's latency; nothing due is skipped.
 *
 * <p>Threads. One pacing thread ({@link #run}) wakes when pairs fall due and starts them; a pair is started
 * without waiting ({@link AsyncPair}), and its answer, on the client's I/O thread, starts the connection's
 * next pair if one is due. So the load costs no thread per pair in flight, and the bench takes less of the
 * CPU it shares with the server it measures. Each connection's starts are serialized (one drainer at a time),
 * whichever thread gets there.
 *
 * <p>Bounds. No queue holds the backlog: a connection's next pair is an index, and what is due but not sent
 * is arithmetic, so a dead server grows no memory. At most {@code outstanding} pairs per connection are in
 * flight. A pair due before the end and not sent by then is counted {@linkplain Pacing#unsent() unsent} and
 * enters the latency with its age at the end, a lower bound of what it would have had.
 *
 * <p>What counts. The latency and the errors are those of the pairs due in the measured time
 * ({@code measureFrom} to {@code end}), wherever they were answered. The pairs per second are those answered
 * in the measured time, wherever they were due: what the server did under this load. The two differ when the
 * clients are behind: a backlog left by the warm-up is answered in the measured time, and its own pairs wait.
 */
final class OpenLoop implements Load {

    /**
     * One ACCESS+RELEASE pair of a connection, started without waiting. Its stage completes when the pair is
     * answered: exceptionally with a {@link CmException} (or a {@link CompletionException} around one) for a
     * refusal, counted by its number.
     */
    interface AsyncPair {
        CompletionStage<?> start();
    }

    /** The unsent pairs of one connection enter the histogram in at most this many steps. */
    private static final int UNSENT_STEPS = 1000;
    /** The error number counted for a pair that failed with something other than a CodeMeter error. */
    static final int UNEXPECTED_FAILURE = -1;

    private final Clock clock;
    private final double rate;
    private final int clients;
    private final int outstanding;
    private final long start;
    private final long measureFrom;
    private final long end;
    private final Connection[] connections;
    private final AtomicLongArray sentInWindow;
    /** The due time of each slot's measured pair in flight (slot = connection × outstanding + n); 0 when none. */
    private final AtomicLongArray inFlightDue;
    /** Pairs answered in the measured time; latencies and errors of the pairs due in it. */
    private final Tally tally = new Tally();
    private final AtomicLong maxLag = new AtomicLong();
    /** How late the pacing thread woke for each measured pair. */
    private final Recorder pacerLate = new Recorder(MAX_RECORDED_NANOS, 3);
    private final AtomicLong maxLatency = new AtomicLong();

    /**
     * @param rate        pairs per second over all connections
     * @param outstanding pairs in flight at most, per connection
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
        this.connections = new Connection[clients];
        for (int c = 0; c < clients; c++) {
            connections[c] = new Connection(c);
        }
        this.sentInWindow = new AtomicLongArray(clients);
        this.inFlightDue = new AtomicLongArray(clients * outstanding);
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
     * The pacing thread: waits for each pair's due time and hands the pairs due by then to their connections,
     * which start them as far as their bound on pairs in flight allows. Returns at the end; pairs still in
     * flight then are answered on their own ({@link #awaitAnswers}).
     *
     * @param pairs each connection's pair, by connection index
     */
    void run(List<AsyncPair> pairs) throws InterruptedException {
        if (pairs.size() != clients) {
            throw new IllegalArgumentException(pairs.size() + " pairs for " + clients + " connections");
        }
        for (int c = 0; c < clients; c++) {
            connections[c].pair = pairs.get(c);
        }
        long total = firstDueFrom(end);
        long g = 0;
        while (g < total) {
            clock.sleepUntil(dueAt(g));
            long now = clock.nanoTime();
            if (now - end >= 0) {
                return;
            }
            long dueNow = Math.min(total, firstDueFrom(now + 1));
            for (long h = g; h < dueNow; h++) {
                long due = dueAt(h);
                if (due - measureFrom >= 0) {
                    pacerLate.recordValue(Math.min(now - due, MAX_RECORDED_NANOS));
                }
            }
            // The connections of pairs g .. dueNow-1: all of them once as many pairs are due.
            for (long h = g; h < Math.min(dueNow, g + clients); h++) {
                Connection connection = connections[(int) (h % clients)];
                connection.due = countBelow(dueNow, connection.index);
                connection.drain();
            }
            g = dueNow;
        }
    }

    /** Waits until no pair is in flight, at most until {@code deadline}; whether none is. */
    boolean awaitAnswers(long deadline) throws InterruptedException {
        while (inFlight() > 0) {
            if (clock.nanoTime() - deadline >= 0) {
                return false;
            }
            clock.sleepUntil(Math.min(deadline, clock.nanoTime() + TimeUnit.MILLISECONDS.toNanos(10)));
        }
        return true;
    }

    private int inFlight() {
        int inFlight = 0;
        for (Connection connection : connections) {
            inFlight += connection.inFlight.get();
        }
        return inFlight;
    }

    /** One connection's pairs: those due, those started, those in flight. */
    private final class Connection {
        final int index;
        AsyncPair pair;
        /** Pairs {@code 0 .. due-1} are due; only the pacing thread writes it. */
        volatile long due;
        /** Pairs {@code 0 .. next-1} were started; only the one drainer writes it. */
        volatile long next;
        final AtomicInteger inFlight = new AtomicInteger();
        /** Which of the connection's slots hold a pair in flight; only the drainer takes one. */
        final AtomicIntegerArray busy = new AtomicIntegerArray(outstanding);
        /** Drain requests not yet served: the thread that raises it from 0 drains until it falls back to 0. */
        private final AtomicInteger drainRequests = new AtomicInteger();

        Connection(int index) {
            this.index = index;
        }

        /**
         * Starts the due pairs that the bound on pairs in flight allows. A pair answered at once (its answer
         * runs this again) neither nests nor is lost: the drainer goes round once more.
         */
        void drain() {
            if (drainRequests.getAndIncrement() != 0) {
                return;
            }
            do {
                while (next < due && inFlight.get() < outstanding) {
                    long sent = clock.nanoTime();
                    if (sent - end >= 0) {
                        break;
                    }
                    start(next, freeSlot(), sent);
                }
            } while (drainRequests.decrementAndGet() != 0);
        }

        private int freeSlot() {
            for (int s = 0; s < outstanding; s++) {
                if (busy.get(s) == 0) {
                    return s;
                }
            }
            throw new IllegalStateException("no free slot with " + inFlight.get() + " of " + outstanding
                    + " pairs in flight");
        }

        private void start(long k, int s, long sent) {
            next = k + 1;
            busy.set(s, 1);
            inFlight.incrementAndGet();
            int slot = index * outstanding + s;
            long due = dueAt(index, k);
            boolean measured = due - measureFrom >= 0;
            if (measured) {
                sentInWindow.incrementAndGet(index);
                maxLag.accumulateAndGet(sent - due, Math::max);
                inFlightDue.set(slot, due);
            }
            CompletionStage<?> answer;
            try {
                answer = pair.start();
                if (answer == null) {
                    answer = CompletableFuture.failedFuture(new IllegalStateException("the pair gave no stage"));
                }
            } catch (Throwable e) {
                // Counted as the pair's answer, so that its slot is free again and the drain goes on.
                answer = CompletableFuture.failedFuture(e);
            }
            answer.whenComplete((ignored, error) -> answered(s, slot, due, measured, error));
        }

        private void answered(int s, int slot, long due, boolean measured, Throwable error) {
            long answered = clock.nanoTime();
            if (answered - measureFrom >= 0 && answered - end < 0) {
                tally.pair();
            }
            // Claimed here or by figures() (a pair given up on), never both: counted once.
            if (measured && inFlightDue.getAndSet(slot, 0) != 0) {
                tally.latency(answered - due);
                maxLatency.accumulateAndGet(answered - due, Math::max);
                if (error != null) {
                    tally.error(code(error));
                }
            }
            busy.set(s, 0);
            inFlight.decrementAndGet();
            drain();
        }
    }

    private static int code(Throwable error) {
        Throwable cause = error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
        return cause instanceof CmException cm ? cm.code() : UNEXPECTED_FAILURE;
    }

    @Override
    public Tally tally() {
        return tally;
    }

    /** Pairs due by {@code now} that no connection has started yet: how far the clients are behind. */
    long backlog(long now) {
        long due = firstDueFrom(Math.min(now, end - 1) + 1);
        long backlog = 0;
        for (int c = 0; c < clients; c++) {
            long dueOfClient = countBelow(due, c);
            backlog += dueOfClient - Math.min(connections[c].next, dueOfClient);
        }
        return backlog;
    }

    @Override
    public String progress(long now) {
        return String.format(", %,d due and not yet sent", backlog(now));
    }

    /**
     * The pairs due in the measured time and not sent enter the latency with their age at the end, those
     * in flight at {@code stopped} (given up on) with their age then.
     */
    @Override
    public Figures figures(long stopped) {
        List<Long> givenUp = new ArrayList<>();
        for (int i = 0; i < inFlightDue.length(); i++) {
            long due = inFlightDue.getAndSet(i, 0);
            if (due != 0) {
                givenUp.add(due);
            }
        }
        Histogram histogram = tally.histogram();
        long maxNanos = maxLatency.get();
        for (long due : givenUp) {
            histogram.recordValue(Math.min(stopped - due, MAX_RECORDED_NANOS));
            maxNanos = Math.max(maxNanos, stopped - due);
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
                new Pacing(rate, outstanding, to - from, unsent, maxLag.get(),
                        pacerLate.getIntervalHistogram()));
    }
}
