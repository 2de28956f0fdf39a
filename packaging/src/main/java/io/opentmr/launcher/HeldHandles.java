package io.opentmr.launcher;

import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code tmr bench --hold-handles H}: handles opened before the load, spread over the bench's connections and kept
 * open (the SDK keeps each connection's session alive) while the load runs, then each asked for its INFO: a handle
 * the server no longer knows, or cannot answer for, is lost. What a fail-over must not do is lose one of them.
 */
final class HeldHandles {

    /** How long opening the handles may take in all. */
    static final Duration OPEN_BOUND = Duration.ofMinutes(15);
    /** How long checking them may take in all; a handle not checked by then counts as lost, under code -1. */
    static final Duration CHECK_BOUND = Duration.ofMinutes(5);
    static final int NOT_CHECKED = -1;
    /**
     * Refusals of an ACCESS that say nothing about the license (fewer than two backends answered in time, a network
     * fault) are tried again, at most this many times per connection in all, before that connection stops opening.
     */
    static final int OPEN_RETRIES = 100;

    private static boolean retryable(int code) {
        return code == CmError.REDUNDANCY_SERVER_MISSING.code() || code == CmError.NETWORK_FAULT.code();
    }

    private static void pause() {
        try {
            TimeUnit.MILLISECONDS.sleep(100);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private final List<List<LicenseHandle>> perConnection;
    private final int wanted;
    private final Map<Integer, Long> openErrors;

    private HeldHandles(List<List<LicenseHandle>> perConnection, int wanted, Map<Integer, Long> openErrors) {
        this.perConnection = perConnection;
        this.wanted = wanted;
        this.openErrors = openErrors;
    }

    /** What became of the held handles at the end. */
    record Outcome(int wanted, int opened, Map<Integer, Long> openErrors, int lost, Map<Integer, Long> lostByCode) {

        int notOpened() {
            return wanted - opened;
        }
    }

    /**
     * ACCESS requests in flight per connection while opening: the node commits the seats of requests that arrive
     * together in one journal write and one backend round, so opening 100 000 handles takes minutes, not an hour.
     */
    static final int OPENERS_PER_CONNECTION = 8;

    /**
     * Opens {@code count} handles, connection {@code c} taking every {@code connections.size()}-th, with
     * {@link #OPENERS_PER_CONNECTION} threads per connection; stops opening on a connection at its first refusal
     * or after {@link #OPEN_BOUND}.
     */
    static HeldHandles open(List<TmrClient> connections, long firm, long product, AccessMode mode, int count)
            throws InterruptedException {
        int n = connections.size();
        List<List<LicenseHandle>> held = new ArrayList<>();
        Map<Integer, Long> errors = Collections.synchronizedMap(new TreeMap<>());
        AtomicLong opened = new AtomicLong();
        long deadline = System.nanoTime() + OPEN_BOUND.toNanos();
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < n; c++) {
            int share = count / n + (c < count % n ? 1 : 0);
            List<LicenseHandle> mine = Collections.synchronizedList(new ArrayList<>(share));
            held.add(mine);
            TmrClient client = connections.get(c);
            AtomicInteger retries = new AtomicInteger();
            AtomicInteger left = new AtomicInteger(share);
            AtomicBoolean refused = new AtomicBoolean();
            for (int t = 0; t < OPENERS_PER_CONNECTION; t++) {
                Thread thread = new Thread(() -> {
                    while (!refused.get() && System.nanoTime() - deadline < 0 && left.getAndDecrement() > 0) {
                        try {
                            mine.add(client.access(firm, product, 0, mode));
                            opened.incrementAndGet();
                        } catch (CmException e) {
                            if (retryable(e.code()) && retries.incrementAndGet() <= OPEN_RETRIES) {
                                // A backend that answered too late on a starved machine: the next try usually gets it.
                                left.incrementAndGet();
                                pause();
                                continue;
                            }
                            errors.merge(e.code(), 1L, Long::sum);
                            refused.set(true);
                            return;
                        }
                    }
                }, "tmr-bench-hold-" + c + "-" + t);
                thread.setDaemon(true);
                threads.add(thread);
            }
        }
        threads.forEach(Thread::start);
        long next = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
        for (Thread thread : threads) {
            while (thread.isAlive()) {
                // The SDK bounds each ACCESS by its request timeout, so every thread ends by the bound and one of those.
                TimeUnit.NANOSECONDS.timedJoin(thread, Math.max(1, next - System.nanoTime()));
                if (System.nanoTime() - next >= 0) {
                    System.err.printf("tmr bench: %,d of %,d held handles open%n", opened.get(), count);
                    next += TimeUnit.SECONDS.toNanos(1);
                }
            }
        }
        return new HeldHandles(held, count, errors);
    }

    /** Asks every held handle for its INFO (one thread per connection), then releases them. */
    Outcome checkAndRelease() throws InterruptedException {
        Map<Integer, Long> lostByCode = Collections.synchronizedMap(new TreeMap<>());
        AtomicLong lost = new AtomicLong();
        List<Thread> threads = new ArrayList<>();
        int opened = 0;
        long deadline = System.nanoTime() + CHECK_BOUND.toNanos();
        for (List<LicenseHandle> handles : perConnection) {
            opened += handles.size();
            Thread thread = new Thread(() -> {
                for (LicenseHandle handle : handles) {
                    if (System.nanoTime() - deadline >= 0) {
                        lost.incrementAndGet();
                        lostByCode.merge(NOT_CHECKED, 1L, Long::sum);
                        continue;
                    }
                    try {
                        handle.info();
                    } catch (CmException e) {
                        lost.incrementAndGet();
                        lostByCode.merge(e.code(), 1L, Long::sum);
                    }
                    try {
                        handle.close();
                    } catch (CmException e) {
                        // Lost already, or the server is gone: counted by the INFO above.
                    }
                }
            }, "tmr-bench-check");
            thread.setDaemon(true);
            threads.add(thread);
        }
        threads.forEach(Thread::start);
        for (Thread thread : threads) {
            // Past the deadline a thread only counts what is left: one request timeout more at most.
            TimeUnit.NANOSECONDS.timedJoin(thread, Math.max(1, deadline - System.nanoTime()
                    + TimeUnit.SECONDS.toNanos(30)));
        }
        return new Outcome(wanted, opened, Map.copyOf(openErrors), (int) lost.get(), Map.copyOf(lostByCode));
    }
}
