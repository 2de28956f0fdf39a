package io.opentmr.persistence.log;

import static io.opentmr.persistence.log.Records.event;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link LogOptions#writeOnCaller()}: an append to an idle log is written and fsynced on the caller's thread; one that
 * finds a write under way or queued goes to the writer thread, after it. The fsync contract of both paths is
 * {@link FsyncContractTest}'s.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class WriteOnCallerTest {

    @TempDir
    Path dir;

    /** Records the thread of each fsync; with {@link #hold} armed, the next fsync waits until it is released. */
    static final class GateSyncer implements Syncer {
        final List<String> threads = new CopyOnWriteArrayList<>();
        final AtomicReference<CountDownLatch> hold = new AtomicReference<>();
        final CountDownLatch holding = new CountDownLatch(1);
        volatile Throwable fail;

        @Override
        public void sync(Path file, FileChannel channel, long size) throws IOException {
            threads.add(Thread.currentThread().getName());
            CountDownLatch release = hold.getAndSet(null);
            if (release != null) {
                holding.countDown();
                try {
                    if (!release.await(30, TimeUnit.SECONDS)) {
                        throw new IOException("the test never released the fsync");
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException(e);
                }
            }
            Throwable broken = fail;
            if (broken instanceof IOException io) {
                throw io;
            }
            if (broken instanceof Error error) {
                throw error;
            }
            channel.force(false);
        }
    }

    private static CompletableFuture<SegmentedLog.Appended> append(SegmentedLog log, String pid, long seq) {
        return log.append(List.of(log.encode(List.of(event(pid, seq)))));
    }

    private LogOptions options(GateSyncer syncer) {
        return Records.options(dir).withSyncer(syncer).withWriteOnCaller(true);
    }

    /** Closes {@code log} from a task or thread of the test's own (an IOException fails it unchecked). */
    private static void close(SegmentedLog log) {
        try {
            log.close();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private List<Long> replay(String pid) throws IOException {
        return Records.replayed(dir, pid);
    }

    /** An append of {@code pid}:{@code seq} on another thread, held in its fsync until {@code release}. */
    private record Held(CountDownLatch release, CompletableFuture<CompletableFuture<SegmentedLog.Appended>> writing) {

        static Held start(SegmentedLog log, GateSyncer syncer, String pid, long seq) throws InterruptedException {
            CountDownLatch release = new CountDownLatch(1);
            syncer.hold.set(release);
            CompletableFuture<CompletableFuture<SegmentedLog.Appended>> writing =
                    CompletableFuture.supplyAsync(() -> append(log, pid, seq));
            assertTrue(syncer.holding.await(10, TimeUnit.SECONDS), "the append never reached its fsync");
            return new Held(release, writing);
        }

        /** The held append's outcome, once released. */
        SegmentedLog.Appended appended() throws Exception {
            return writing.get(10, TimeUnit.SECONDS).get(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void anAppendToAnIdleLogIsDurableWhenItReturnsAndWasFsyncedOnTheCallersThread() throws Exception {
        GateSyncer syncer = new GateSyncer();
        try (SegmentedLog log = SegmentedLog.open(options(syncer))) {
            for (long seq = 1; seq <= 3; seq++) {
                CompletableFuture<SegmentedLog.Appended> done = append(log, "a", seq);
                assertTrue(done.isDone(), "append " + seq + " returned before it was written");
                assertEquals(seq - 1, done.get().lastPosition());
            }
            assertEquals(List.of(Thread.currentThread().getName()), syncer.threads.stream().distinct().toList());
        }
        assertEquals(List.of(1L, 2L, 3L), replay("a"));
    }

    @Test
    void withoutItEveryAppendIsFsyncedOnTheWriterThread() throws Exception {
        GateSyncer syncer = new GateSyncer();
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withSyncer(syncer))) {
            append(log, "a", 1).get(10, TimeUnit.SECONDS);
        }
        assertEquals(List.of("opentmr-journal-writer-" + dir.getFileName()),
                syncer.threads.stream().distinct().toList());
    }

    @Test
    void anAppendWhileAnotherIsBeingWrittenGoesToTheWriterAfterItAndOneCallersAppendsKeepTheirOrder()
            throws Exception {
        GateSyncer syncer = new GateSyncer();
        try (SegmentedLog log = SegmentedLog.open(options(syncer))) {
            Held first = Held.start(log, syncer, "a", 1);
            // The first is in its fsync on the other thread: these two queue for the writer, in this order.
            CompletableFuture<SegmentedLog.Appended> second = append(log, "a", 2);
            CompletableFuture<SegmentedLog.Appended> third = append(log, "b", 1);
            assertFalse(second.isDone() || third.isDone(), "written while the first write held the files");
            first.release().countDown();
            assertEquals(0, first.appended().lastPosition());
            assertEquals(1, second.get(10, TimeUnit.SECONDS).lastPosition());
            assertEquals(2, third.get(10, TimeUnit.SECONDS).lastPosition());
            assertEquals("opentmr-journal-writer-" + dir.getFileName(), syncer.threads.get(1));
        }
        assertEquals(List.of(1L, 2L), replay("a"));
    }

    @Test
    void closeWaitsForACallersWriteWhichStaysDurable() throws Exception {
        GateSyncer syncer = new GateSyncer();
        SegmentedLog log = SegmentedLog.open(options(syncer));
        Held writing = Held.start(log, syncer, "a", 1);
        CompletableFuture<Void> closed = CompletableFuture.runAsync(() -> close(log));
        assertThrows(TimeoutException.class, () -> closed.get(300, TimeUnit.MILLISECONDS),
                "the log closed its files under a caller's write");
        writing.release().countDown();
        closed.get(20, TimeUnit.SECONDS);
        assertEquals(0, writing.appended().lastPosition());
        assertEquals(List.of(1L), replay("a"));
    }

    @Test
    void anInterruptOfTheClosingThreadDoesNotCutItsWaitForACallersWriteShort() throws Exception {
        GateSyncer syncer = new GateSyncer();
        SegmentedLog log = SegmentedLog.open(options(syncer));
        Held writing = Held.start(log, syncer, "a", 1);
        AtomicReference<Boolean> stillInterrupted = new AtomicReference<>();
        Thread closer = new Thread(() -> {
            Thread.currentThread().interrupt();
            close(log);
            stillInterrupted.set(Thread.currentThread().isInterrupted());
        });
        closer.start();
        closer.join(300);
        assertTrue(closer.isAlive(), "an interrupted close did not wait for the caller's write");
        writing.release().countDown();
        closer.join(20_000);
        assertFalse(closer.isAlive());
        assertEquals(Boolean.TRUE, stillInterrupted.get(), "close swallowed its thread's interrupt");
        assertEquals(0, writing.appended().lastPosition());
        assertEquals(List.of(1L), replay("a"));
    }

    /** close() waits a bounded time (5 s); a write still under way then is never acknowledged. */
    @Test
    void aCallersWriteThatOutlastsCloseIsNeverAcknowledged() throws Exception {
        GateSyncer syncer = new GateSyncer();
        SegmentedLog log = SegmentedLog.open(options(syncer));
        append(log, "a", 1).get(10, TimeUnit.SECONDS);
        Held second = Held.start(log, syncer, "a", 2);
        log.close();
        second.release().countDown();
        // Its bytes may be in the file (not trimmed); what matters is that it was never acknowledged.
        assertThrows(ExecutionException.class, second::appended);
        assertEquals(1L, replay("a").get(0));
    }

    /** An Error whose description waits: what a writer thread dying slowly looks like from the outside. */
    static final class SlowError extends Error {
        private static final long serialVersionUID = 1L;
        final transient CountDownLatch described = new CountDownLatch(1);
        final transient CountDownLatch describing = new CountDownLatch(1);

        SlowError() {
            super("simulated by the test");
        }

        @Override
        public String toString() {
            describing.countDown();
            try {
                described.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return super.toString();
        }
    }

    /** The log refuses callers from the moment an Error hit the writer thread's write, not once it is described. */
    @Test
    void noCallerWritesAfterAnErrorKilledTheWritersWrite() throws Exception {
        GateSyncer syncer = new GateSyncer();
        SlowError error = new SlowError();
        AtomicReference<Boolean> armed = new AtomicReference<>(false);
        String writerName = "opentmr-journal-writer-" + dir.getFileName();
        LogOptions options = options(syncer).withEpoch(() -> {
            if (armed.get() && Thread.currentThread().getName().equals(writerName)) {
                throw error;
            }
            return 0L;
        });
        try (SegmentedLog log = SegmentedLog.open(options)) {
            Held first = Held.start(log, syncer, "a", 1);
            // Queued for the writer thread behind the first; its write meets the Error.
            CompletableFuture<SegmentedLog.Appended> second = append(log, "a", 2);
            armed.set(true);
            first.release().countDown();
            first.appended();
            assertTrue(error.describing.await(10, TimeUnit.SECONDS), "the writer thread never met the Error");
            CompletableFuture<SegmentedLog.Appended> third = append(log, "a", 3);
            error.described.countDown();
            assertThrows(ExecutionException.class, () -> second.get(10, TimeUnit.SECONDS));
            assertThrows(ExecutionException.class, () -> third.get(10, TimeUnit.SECONDS),
                    "a caller wrote after the writer's write died");
        }
        assertEquals(List.of(1L), replay("a"));
    }

    @Test
    void aFailedFsyncOnTheCallersThreadFailsThatWriteAndEveryLaterOne() throws Exception {
        GateSyncer syncer = new GateSyncer();
        try (SegmentedLog log = SegmentedLog.open(options(syncer))) {
            append(log, "a", 1).get(10, TimeUnit.SECONDS);
            syncer.fail = new IOException("simulated by the test");
            ExecutionException failed = assertThrows(ExecutionException.class,
                    () -> append(log, "a", 2).get(10, TimeUnit.SECONDS));
            assertEquals("simulated by the test", failed.getCause().getMessage());
            syncer.fail = null;
            ExecutionException later = assertThrows(ExecutionException.class,
                    () -> append(log, "a", 3).get(10, TimeUnit.SECONDS));
            assertTrue(later.getCause().getMessage().contains("failed earlier"), later.getCause().getMessage());
        }
        // What the failed write left in the file is unknown (as after a failed write on the writer thread); the
        // refused one is not there.
        assertEquals(1L, replay("a").get(0));
        assertFalse(replay("a").contains(3L));
    }

    @Test
    void anErrorOnTheCallersThreadReachesItAndStopsTheLog() throws Exception {
        GateSyncer syncer = new GateSyncer();
        try (SegmentedLog log = SegmentedLog.open(options(syncer))) {
            append(log, "a", 1).get(10, TimeUnit.SECONDS);
            syncer.fail = new OutOfMemoryError("simulated by the test");
            assertThrows(OutOfMemoryError.class, () -> append(log, "a", 2));
            syncer.fail = null;
            ExecutionException later = assertThrows(ExecutionException.class,
                    () -> append(log, "a", 3).get(10, TimeUnit.SECONDS));
            assertInstanceOf(IOException.class, later.getCause());
            assertTrue(later.getCause().getMessage().contains(dir.toString()), later.getCause().getMessage());
        }
        assertEquals(1L, replay("a").get(0));
        assertFalse(replay("a").contains(3L));
    }
}
