package io.opentmr.protocol.testing;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/** Concurrency tests: several threads released at the same instant against one shared object. */
public final class AllAtOnce {

    /** What one thread does; returns how many operations it completed. */
    @FunctionalInterface
    public interface Body {
        int run(int thread) throws Exception;
    }

    private AllAtOnce() {
    }

    /**
     * Runs {@code body} on {@code threads} threads that start together, and waits at most {@code bound}
     * for all of them.
     *
     * @return the sum of what the threads returned
     * @throws Exception the first failure of a thread (an assertion keeps its own message)
     */
    public static int run(int threads, Duration bound, Body body) throws Exception {
        CountDownLatch go = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<Integer>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                results.add(pool.submit(() -> {
                    go.await();
                    return body.run(thread);
                }));
            }
            go.countDown();
            long deadline = System.nanoTime() + bound.toNanos();
            int total = 0;
            for (Future<Integer> result : results) {
                total += result.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            }
            return total;
        } catch (ExecutionException e) {
            if (e.getCause() instanceof Error error) {
                throw error;
            }
            throw e.getCause() instanceof Exception cause ? cause : e;
        } finally {
            pool.shutdownNow();
            if (!pool.awaitTermination(5, TimeUnit.SECONDS)) {
                throw new AssertionError("test threads still running 5 s after they were interrupted");
            }
        }
    }
}
