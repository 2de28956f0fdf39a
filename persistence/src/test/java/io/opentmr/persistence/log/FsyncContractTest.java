package io.opentmr.persistence.log;

import static io.opentmr.persistence.log.Records.event;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * SIGKILL keeps the page cache, so only the fsync seam can show what survives a power loss: these tests count
 * fsyncs, check that no acknowledgement precedes the fsync covering it, and cut the files back to the last fsynced
 * size before reopening.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class FsyncContractTest {

    @TempDir
    Path dir;

    /** Counts fsyncs and remembers, per file, how many bytes are durable. */
    static final class RecordingSyncer implements Syncer {
        final AtomicInteger count = new AtomicInteger();
        final Map<Path, Long> durable = new ConcurrentHashMap<>();

        @Override
        public void sync(Path file, FileChannel channel, long size) throws IOException {
            channel.force(false);
            count.incrementAndGet();
            durable.merge(file, size, Math::max);
        }

        long durableSize(Path file) {
            return durable.getOrDefault(file, 0L);
        }
    }

    /** Cuts every segment back to what the syncer saw forced: what a power loss would leave. */
    private static void powerLoss(Path dir, RecordingSyncer syncer) throws IOException {
        for (Path seg : LogScanner.segmentFiles(dir)) {
            try (RandomAccessFile f = new RandomAccessFile(seg.toFile(), "rw")) {
                f.setLength(Math.min(f.length(), syncer.durableSize(seg)));
            }
        }
    }

    private record Ack(String pid, long seq) {
    }

    /** {@code writers} threads append {@code each} events; returns what was acknowledged. */
    private static Set<Ack> writeConcurrently(SegmentedLog log, RecordingSyncer syncer, int writers, int each,
            List<String> violations) throws Exception {
        Set<Ack> acked = ConcurrentHashMap.newKeySet();
        ExecutorService pool = Executors.newFixedThreadPool(writers);
        CountDownLatch start = new CountDownLatch(1);
        try {
            List<CompletableFuture<Void>> all = new ArrayList<>();
            for (int w = 0; w < writers; w++) {
                String pid = "p" + w;
                all.add(CompletableFuture.runAsync(() -> {
                    try {
                        start.await();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return;
                    }
                    List<CompletableFuture<?>> mine = new ArrayList<>();
                    for (long s = 1; s <= each; s++) {
                        long seq = s;
                        mine.add(log.append(List.of(log.encode(List.of(event(pid, seq))))).thenAccept(a -> {
                            if (syncer.durableSize(a.lastSegment()) < a.endOffset()) {
                                violations.add(pid + ":" + seq + " acknowledged before its fsync");
                            }
                            acked.add(new Ack(pid, seq));
                        }));
                    }
                    mine.forEach(CompletableFuture::join);
                }, pool));
            }
            start.countDown();
            CompletableFuture.allOf(all.toArray(CompletableFuture[]::new)).get(45, TimeUnit.SECONDS);
        } finally {
            pool.shutdownNow();
        }
        return acked;
    }

    /** With write-on-caller, appends to an idle log are written on the callers' threads: the same contract. */
    @ParameterizedTest(name = "write-on-caller {0}")
    @ValueSource(booleans = {false, true})
    void batchModeSharesFsyncsAndAcknowledgesOnlyAfterThem(boolean writeOnCaller) throws Exception {
        RecordingSyncer syncer = new RecordingSyncer();
        int writers = 8;
        int each = 250;
        List<String> violations = new CopyOnWriteArrayList<>();
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withSyncer(syncer)
                .withWriteOnCaller(writeOnCaller))) {
            Set<Ack> acked = writeConcurrently(log, syncer, writers, each, violations);
            assertEquals(writers * each, acked.size());
            int fsyncs = syncer.count.get();
            assertTrue(fsyncs < writers * each, fsyncs + " fsyncs for " + writers * each + " writes");
        }
        assertEquals(List.of(), violations);
    }

    @Test
    void alwaysModeFsyncsEveryRequest() throws Exception {
        RecordingSyncer syncer = new RecordingSyncer();
        List<String> violations = new CopyOnWriteArrayList<>();
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withSyncer(syncer)
                .withFsync(FsyncPolicy.ALWAYS))) {
            writeConcurrently(log, syncer, 4, 50, violations);
            assertTrue(syncer.count.get() >= 200, "fsyncs: " + syncer.count.get());
        }
        assertEquals(List.of(), violations);
    }

    @ParameterizedTest(name = "write-on-caller {0}")
    @ValueSource(booleans = {false, true})
    void everyAcknowledgedEventSurvivesAPowerLossInBatchMode(boolean writeOnCaller) throws Exception {
        RecordingSyncer syncer = new RecordingSyncer();
        LogOptions options = Records.options(dir).withSyncer(syncer).withSegmentSize(32 * 1024)
                .withWriteOnCaller(writeOnCaller);
        Set<Ack> acked;
        SegmentedLog log = SegmentedLog.open(options);
        acked = writeConcurrently(log, syncer, 8, 200, new CopyOnWriteArrayList<>());
        Map<Path, Long> durableAtCrash = Map.copyOf(syncer.durable);
        log.close();
        RecordingSyncer atCrash = new RecordingSyncer();
        atCrash.durable.putAll(durableAtCrash);
        powerLoss(dir, atCrash);
        try (SegmentedLog reopened = SegmentedLog.open(Records.options(dir))) {
            for (Ack a : acked) {
                List<Long> got = new ArrayList<>();
                reopened.replay(a.pid(), a.seq(), a.seq(), 1, r -> got.add(r.sequenceNr()));
                assertEquals(List.of(a.seq()), got, "lost acknowledged " + a);
            }
        }
    }

    @Test
    void withoutFsyncAPowerLossLosesAcknowledgedEvents() throws Exception {
        // Control for the test above: the power-loss simulation does detect loss when nothing is forced.
        RecordingSyncer syncer = new RecordingSyncer();
        Set<Ack> acked;
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withSyncer(syncer)
                .withFsync(FsyncPolicy.NEVER))) {
            acked = writeConcurrently(log, syncer, 2, 50, new CopyOnWriteArrayList<>());
            assertEquals(0, syncer.count.get());
        }
        powerLoss(dir, syncer);
        try (SegmentedLog reopened = SegmentedLog.open(Records.options(dir))) {
            assertEquals(0, reopened.nextPosition());
            assertEquals(100, acked.size());
        }
        assertTrue(Files.exists(dir.resolve("LOCK")));
    }
}
