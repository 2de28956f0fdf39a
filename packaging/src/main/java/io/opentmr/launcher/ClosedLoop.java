package io.opentmr.launcher;

import io.opentmr.client.CmException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * One worker per connection sends a pair as soon as the one before it is answered: the most pairs per second
 * the server gives these clients. Its latency is each pair's own (send to answer), so a stall counts once
 * per connection however long it lasts; {@link OpenLoop} shows it in every pair due meanwhile.
 */
final class ClosedLoop implements Load {

    private final Clock clock;
    private final long measureFrom;
    private volatile long end;
    private final Tally tally = new Tally();
    private final AtomicLong maxStall = new AtomicLong();
    /** When each connection's pair in flight started; 0 when none. */
    private final AtomicLongArray pairStarted;

    /** Pairs started from {@code measureFrom} on are measured; none starts at or after {@code end}. */
    ClosedLoop(Clock clock, int clients, long measureFrom, long end) {
        this.clock = clock;
        this.measureFrom = measureFrom;
        this.end = end;
        this.pairStarted = new AtomicLongArray(clients);
    }

    /** No pair starts from {@code now} on (the bench's warm-up ends once the rate settles). */
    void stop(long now) {
        end = now;
    }

    /** Connection {@code client}'s worker: sends pairs, one after the other, until the run's end. */
    void work(int client, Pair pair) {
        while (true) {
            long t0 = clock.nanoTime();
            if (t0 - end >= 0) {
                return;
            }
            pairStarted.set(client, t0);
            boolean measured = t0 - measureFrom >= 0;
            try {
                pair.run();
            } catch (CmException e) {
                if (measured) {
                    tally.error(e.code());
                }
            }
            long t1 = clock.nanoTime();
            pairStarted.set(client, 0);
            if (measured) {
                tally.latency(t1 - t0);
                tally.pair();
                maxStall.accumulateAndGet(t1 - t0, Math::max);
            }
        }
    }

    @Override
    public Tally tally() {
        return tally;
    }

    @Override
    public String progress(long now) {
        return "";
    }

    @Override
    public Figures figures(long stopped) {
        for (int i = 0; i < pairStarted.length(); i++) {
            long pending = pairStarted.get(i);
            if (pending != 0) {
                maxStall.accumulateAndGet(stopped - pending, Math::max);
            }
        }
        return new Figures(tally.pairs(), tally.histogram(), tally.errorsByCode(), maxStall.get(), null);
    }
}
