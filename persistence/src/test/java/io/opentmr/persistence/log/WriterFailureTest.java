package io.opentmr.persistence.log;

import static io.opentmr.persistence.log.Records.event;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** A writer thread that dies or hangs must fail writes, never leave them waiting forever. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class WriterFailureTest {

    @TempDir
    Path dir;

    private static CompletableFuture<SegmentedLog.Appended> append(SegmentedLog log, String pid, long seq) {
        return log.append(List.of(log.encode(List.of(event(pid, seq)))));
    }

    /** Waits a bounded time for the future and returns its failure; fails the test if it succeeds or hangs. */
    private static Throwable failureOf(CompletableFuture<?> future) throws Exception {
        ExecutionException e = assertThrows(ExecutionException.class, () -> future.get(10, TimeUnit.SECONDS));
        return e.getCause();
    }

    private Thread writerThread() {
        String name = "opentmr-journal-writer-" + dir.getFileName();
        return Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().equals(name)).findFirst()
                .orElse(null);
    }

    private List<Long> replay(String pid) throws IOException {
        return Records.replayed(dir, pid);
    }

    @Test
    void anErrorOnTheWriterThreadFailsThatWriteAndEveryLaterOne() throws Exception {
        AtomicBoolean broken = new AtomicBoolean();
        Syncer syncer = (file, channel, size) -> {
            if (broken.get()) {
                throw new OutOfMemoryError("simulated by the test");
            }
            channel.force(false);
        };
        SegmentedLog log = SegmentedLog.open(Records.options(dir).withSyncer(syncer));
        try {
            append(log, "a", 1).get(10, TimeUnit.SECONDS);
            broken.set(true);
            assertNotNull(failureOf(append(log, "a", 2)));
            Throwable later = failureOf(append(log, "a", 3));
            assertTrue(later.getMessage().contains(dir.toString()), later.getMessage());
        } finally {
            log.close();
        }
        assertEquals(1, replay("a").get(0));
    }

    @Test
    void anInterruptedWriterFailsLaterWritesInsteadOfHanging() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            append(log, "a", 1).get(10, TimeUnit.SECONDS);
            Thread writer = writerThread();
            assertNotNull(writer, "writer thread");
            writer.interrupt();
            writer.join(TimeUnit.SECONDS.toMillis(10));
            assertFalse(writer.isAlive(), "an interrupted writer thread stops");
            Throwable e = failureOf(append(log, "a", 2));
            assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
            failureOf(log.delete("a", 1));
        }
        assertEquals(List.of(1L), replay("a"));
    }

    @Test
    void closeReturnsWhileTheWriterIsStuckInAnFsync() throws Exception {
        CountDownLatch never = new CountDownLatch(1);
        AtomicBoolean stuck = new AtomicBoolean();
        Syncer syncer = (file, channel, size) -> {
            if (stuck.get()) {
                try {
                    never.await();
                } catch (InterruptedException e) {
                    throw new InterruptedIOException("fsync interrupted");
                }
            }
            channel.force(false);
        };
        SegmentedLog log = SegmentedLog.open(Records.options(dir).withSyncer(syncer));
        try {
            append(log, "a", 1).get(10, TimeUnit.SECONDS);
            stuck.set(true);
            CompletableFuture<SegmentedLog.Appended> pending = append(log, "a", 2);
            log.close();
            assertNotNull(failureOf(pending));
            failureOf(append(log, "a", 3));
        } finally {
            never.countDown();
        }
        // The lock is released: the directory opens again.
        assertEquals(1, replay("a").get(0));
    }

    @Test
    void appendNeverBlocksTheCallerWhileTheWriterIsStuck() throws Exception {
        CountDownLatch stuck = new CountDownLatch(1);
        Syncer syncer = (file, channel, size) -> {
            try {
                stuck.await(20, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted");
            }
        };
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withSyncer(syncer))) {
            // The journal actor calls append; it must return at once however many requests wait for the writer
            // (more than any queue bound), or it parks a dispatcher thread.
            int requests = 20_000;
            List<CompletableFuture<SegmentedLog.Appended>> done = new ArrayList<>(requests);
            long started = System.nanoTime();
            for (int i = 1; i <= requests; i++) {
                done.add(append(log, "a", i));
            }
            assertTrue(System.nanoTime() - started < TimeUnit.SECONDS.toNanos(5), "append waited for the writer");
            assertFalse(done.get(requests - 1).isDone());
            stuck.countDown();
            CompletableFuture.allOf(done.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
            assertEquals(requests, log.highestSequenceNr("a"));
        }
    }
}
