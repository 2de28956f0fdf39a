package io.opentmr.testing;

import java.time.Duration;
import java.util.Objects;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * Bounded waits for what other threads (a node's actors, a backend's) make true. Polls; the bound makes a
 * condition that never holds a failure that names the last value seen, never a hung test.
 */
public final class Await {

    public static final Duration DEFAULT = Duration.ofSeconds(20);
    private static final long POLL_MILLIS = 20;

    private Await() {
    }

    public static void until(String what, BooleanSupplier condition) throws InterruptedException {
        equal(what, true, condition::getAsBoolean, DEFAULT);
    }

    public static <T> void equal(String what, T expected, Supplier<T> actual) throws InterruptedException {
        equal(what, expected, actual, DEFAULT);
    }

    /** Until {@code actual} equals {@code expected}, at most {@code bound}. */
    public static <T> void equal(String what, T expected, Supplier<T> actual, Duration bound)
            throws InterruptedException {
        long deadline = System.nanoTime() + bound.toNanos();
        T last = actual.get();
        while (!Objects.equals(expected, last)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + bound.toMillis() + " ms: " + what + ": expected " + expected
                        + ", last seen " + last);
            }
            Thread.sleep(POLL_MILLIS);
            last = actual.get();
        }
    }

    /** A call that may throw, for the suppliers above. */
    @FunctionalInterface
    public interface Call<T> {
        T get() throws Exception;
    }

    public static <T> T unchecked(Call<T> call) {
        try {
            return call.get();
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
