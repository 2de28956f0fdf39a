package io.opentmr.persistence.log;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Await;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Large records cost no direct memory per thread: the JDK copies a heap buffer through a temporary direct buffer as
 * large as the read or write and keeps it for the thread, so a standby's readers, each reading a checkpoint of
 * 100 000 handles (19 MB), once took the 256 MiB of direct memory of its JVM and stopped it. The log reads and writes
 * in slices of {@link FileIo#MAX_CALL_BYTES}.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class DirectMemoryTest {

    private static final int RECORD = 8 << 20;
    private static final int READERS = 4;
    /** Far below one record, far above the readers' and writer's slices. */
    private static final long BOUND = 4 << 20;

    @TempDir
    Path dir;

    private static long directBytes() {
        return ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class).stream()
                .filter(pool -> pool.getName().equals("direct")).mapToLong(BufferPoolMXBean::getMemoryUsed).sum();
    }

    @Test
    void writingAndReadingALargeRecordOnSeveralThreadsKeepsNoBufferOfItsSize() throws Exception {
        byte[] payload = new byte[RECORD];
        Arrays.fill(payload, (byte) 'c');
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir).withFsync(FsyncPolicy.NEVER))) {
            // The writer thread runs from the open on: its buffers count from here.
            long beforeWrite = directBytes();
            Await.done(log.append(List.of(log.encode(List.of(LogRecord.event("p", 1, 0, "w", 4, "", "", List.of(),
                    payload))))));
            long written = directBytes() - beforeWrite;
            assertTrue(written < BOUND, "the writer keeps " + written + " bytes of direct memory after writing "
                    + RECORD);

            // Readers as a standby's tail and the replication leader read: each on a thread of its own that lives on.
            CountDownLatch read = new CountDownLatch(READERS);
            CountDownLatch exit = new CountDownLatch(1);
            AtomicReference<Throwable> failed = new AtomicReference<>();
            List<Thread> readers = new ArrayList<>();
            long beforeRead = directBytes();
            for (int i = 0; i < READERS; i++) {
                Thread reader = new Thread(() -> {
                    try {
                        assertArrayEquals(payload, log.readFrom(0, 1).get(0).payload());
                        assertEquals(1, log.readChunk(0, 2 * RECORD).next());
                    } catch (Throwable e) {
                        failed.set(e);
                    }
                    read.countDown();
                    try {
                        exit.await(30, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }, "reader-" + i);
                reader.start();
                readers.add(reader);
            }
            try {
                assertTrue(read.await(30, TimeUnit.SECONDS));
                long held = directBytes() - beforeRead;
                assertEquals(null, failed.get());
                assertTrue(held < BOUND, READERS + " readers, still running, keep " + held
                        + " bytes of direct memory after each read " + RECORD);
            } finally {
                exit.countDown();
                for (Thread reader : readers) {
                    reader.join(10_000);
                }
            }
        }
    }

    @Test
    void aWholeFileIsReadInSlices() throws Exception {
        byte[] content = new byte[RECORD + 123];
        Arrays.fill(content, (byte) 's');
        Path file = Files.write(dir.resolve("snapshot"), content);
        AtomicReference<byte[]> got = new AtomicReference<>();
        AtomicReference<Long> held = new AtomicReference<>();
        long before = directBytes();
        Thread reader = new Thread(() -> {
            try {
                got.set(FileIo.readAll(file));
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
            held.set(directBytes() - before);
        });
        reader.start();
        reader.join(30_000);
        assertArrayEquals(content, got.get());
        assertTrue(held.get() < BOUND, "the reader keeps " + held.get() + " bytes of direct memory");
    }
}
