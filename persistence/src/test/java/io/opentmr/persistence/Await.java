package io.opentmr.persistence;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** Bounded waits for tests: unlike {@code join()}, a stuck writer fails the test instead of hanging the build. */
public final class Await {

    private static final long SECONDS = 10;

    private Await() {
    }

    /** The future's value, waiting at most 10 s; its failure is rethrown unchecked, as {@code join()} would. */
    public static <T> T done(CompletableFuture<T> future) {
        try {
            return future.get(SECONDS, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while waiting", e);
        } catch (TimeoutException e) {
            throw new AssertionError("not completed within " + SECONDS + " s", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new CompletionException(e.getCause());
        }
    }
}
