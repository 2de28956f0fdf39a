package io.opentmr.launcher;

import io.opentmr.client.CmException;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * How {@code tmr bench} drives its connections until the run ends; then {@link #figures} sums up the pairs due
 * (open loop) or started (closed loop) in the measured time. {@link ClosedLoop} sends a pair when the one before it
 * is answered, from a thread per connection; {@link OpenLoop} sends pairs at a fixed rate whatever the answers do,
 * without a thread per pair.
 */
sealed interface Load permits ClosedLoop, OpenLoop {

    /** Monotonic time in nanoseconds, and waiting for it: tests move it by hand. */
    interface Clock {
        long nanoTime();

        /** Returns once {@link #nanoTime()} has reached {@code deadline} (or at once if it has). */
        void sleepUntil(long deadline) throws InterruptedException;

        Clock SYSTEM = new Clock() {
            @Override
            public long nanoTime() {
                return System.nanoTime();
            }

            @Override
            public void sleepUntil(long deadline) throws InterruptedException {
                for (long left = deadline - System.nanoTime(); left > 0; left = deadline - System.nanoTime()) {
                    LockSupport.parkNanos(left);
                    if (Thread.interrupted()) {
                        throw new InterruptedException();
                    }
                }
            }
        };
    }

    /** One ACCESS+RELEASE pair, waited for; a CodeMeter error is the pair's outcome, counted by its number. */
    interface Pair {
        void run() throws CmException;
    }

    /**
     * A measured phase's figures.
     *
     * @param pairs        pairs answered (granted and released, or refused with an error): closed loop, those
     *                     started in the measured time; open loop, those answered in it
     * @param latency      per pair; open loop: from its due time
     * @param maxNanos     the longest a pair took, or had been waiting at the end when unanswered (or unsent)
     * @param pacing       the open loop's schedule figures; null for a closed loop
     */
    record Figures(long pairs, Histogram latency, Map<Integer, Long> errorsByCode, long maxNanos, Pacing pacing) {
    }

    /**
     * What an open loop adds.
     *
     * @param targetRate   pairs per second asked for, over all connections
     * @param outstanding  at most this many pairs in flight per connection
     * @param scheduled    pairs due in the measured time
     * @param unsent       of those, pairs not sent by the end: how far the clients had fallen behind
     * @param maxLagNanos  the longest a pair was sent after its due time
     * @param pacerLate    how late the pacing thread took each measured pair in hand (woke after its due time):
     *                     the bench's own delay, not the server's, though it counts in the pair's latency
     */
    record Pacing(double targetRate, int outstanding, long scheduled, long unsent, long maxLagNanos,
                  Histogram pacerLate) {
    }

    /** The bound on the latency recorded: the SDK's request timeout is far below it. */
    long MAX_RECORDED_NANOS = java.util.concurrent.TimeUnit.SECONDS.toNanos(60);

    /** The counts of what was measured. */
    Tally tally();

    /** Pairs counted so far. */
    default long pairsSoFar() {
        return tally().pairs();
    }

    /** Errors counted so far. */
    default long errorsSoFar() {
        return tally().errors();
    }

    /** A progress note for the once-a-second line, or "". */
    String progress(long now);

    /**
     * The figures once the workers have returned or been given up on at {@code stopped}; a pair still
     * unanswered then counts with its age. Call once.
     */
    Figures figures(long stopped);

    /** What both loops count, from any thread: latencies, pairs, errors by number. */
    final class Tally {
        private final Recorder latencies = new Recorder(MAX_RECORDED_NANOS, 3);
        private final Map<Integer, AtomicLong> errors = new ConcurrentHashMap<>();
        private final AtomicLong pairs = new AtomicLong();

        void latency(long nanos) {
            latencies.recordValue(Math.min(nanos, MAX_RECORDED_NANOS));
        }

        void pair() {
            pairs.incrementAndGet();
        }

        void error(int code) {
            errors.computeIfAbsent(code, c -> new AtomicLong()).incrementAndGet();
        }

        long pairs() {
            return pairs.get();
        }

        long errors() {
            return errors.values().stream().mapToLong(AtomicLong::get).sum();
        }

        /** The latencies recorded since the last call. */
        Histogram histogram() {
            return latencies.getIntervalHistogram();
        }

        Map<Integer, Long> errorsByCode() {
            Map<Integer, Long> byCode = new TreeMap<>();
            errors.forEach((code, count) -> byCode.put(code, count.get()));
            return byCode;
        }
    }
}
