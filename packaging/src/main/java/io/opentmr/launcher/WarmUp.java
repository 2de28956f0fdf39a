package io.opentmr.launcher;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code tmr bench}'s default warm-up: the load runs until its rate stops rising, then the measurement starts. A
 * server's JIT takes long on few cores: a demo's five processes spent about 260 s of CPU compiling before a TMR
 * node's rate stopped rising (from 30 to about 850 pairs/s over the first 90 s of load on two cores), so a
 * fixed warm-up of a few seconds measured the compiler, not the server.
 *
 * <p>Settled: the last {@link #WINDOW} made at most {@link #RISE} more pairs than the window before it (a falling
 * rate is settled too). The warm-up also ends at {@link #MAX}, settled or not, and when {@link #IDLE} passed
 * without a single pair answered without an error (a server that answers nothing, or refuses every pair: the
 * measurement reports its errors). A plain class fed the count of such pairs once a second; the bench drives it,
 * tests feed it series.
 */
final class WarmUp {

    static final int WINDOW = 20;
    static final double RISE = 0.05;
    static final Duration MAX = Duration.ofMinutes(3);
    static final int IDLE = 10;

    private final List<Long> perSecond = new ArrayList<>();

    /** The pairs answered without an error in the second that just ended. */
    void second(long pairs) {
        perSecond.add(pairs);
    }

    int seconds() {
        return perSecond.size();
    }

    boolean settled() {
        int n = perSecond.size();
        return n >= 2 * WINDOW && sum(n - WINDOW, n) <= (1 + RISE) * sum(n - 2 * WINDOW, n - WINDOW);
    }

    /** No pair answered without an error in the last {@link #IDLE} seconds. */
    boolean idle() {
        int n = perSecond.size();
        return n >= IDLE && sum(n - IDLE, n) == 0;
    }

    boolean done() {
        return settled() || idle() || perSecond.size() >= MAX.toSeconds();
    }

    private long sum(int from, int to) {
        long s = 0;
        for (int i = Math.max(0, from); i < to; i++) {
            s += perSecond.get(i);
        }
        return s;
    }

    /** Pairs per second over the window that ends {@code windowsBack} windows before the last second. */
    private double rate(int windowsBack) {
        int to = perSecond.size() - windowsBack * WINDOW;
        int from = Math.max(0, to - WINDOW);
        return to <= from ? 0 : (double) sum(from, to) / (to - from);
    }

    Outcome outcome() {
        return new Outcome(seconds(), settled(), idle(), rate(0), rate(1));
    }

    /** How a warm-up ended, for the bench's text and JSON. */
    record Outcome(int seconds, boolean settled, boolean idle, double lastPairsPerSecond,
                   double previousPairsPerSecond) {

        String text() {
            String why = settled ? "until the rate settled" : idle ? "ended: no pair answered without an error in the last " + IDLE
                    + " s" : "the longest allowed; the rate was still rising";
            return String.format("warm-up: %d s, %s (pairs/s over the last %d s: %,.0f; the %d s before: %,.0f)",
                    seconds, why, WINDOW, lastPairsPerSecond, WINDOW, previousPairsPerSecond);
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("seconds", seconds);
            m.put("settled", settled);
            m.put("lastPairsPerSecond", Math.round(lastPairsPerSecond));
            m.put("previousPairsPerSecond", Math.round(previousPairsPerSecond));
            return m;
        }
    }
}
