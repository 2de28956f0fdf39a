package io.opentmr.persistence.log;

import static io.opentmr.persistence.log.Records.event;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Await;
import io.opentmr.persistence.Fixtures;
import io.opentmr.persistence.tools.JournalTools;
import io.opentmr.persistence.tools.VerifyReport;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Compaction rewrites closed segments with only their live records: every record keeps its position, epoch and bytes;
 * the newest segments and the part not replicated yet are never touched; an interrupted compaction leaves nothing
 * behind; version 1 segments are compacted too.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class CompactionTest {

    private static final long SEGMENT = 8 * 1024;

    @TempDir
    Path dir;

    /** Epochs rise with every append, so a test sees if a copied record lost its own. */
    private final AtomicLong epoch = new AtomicLong(1);

    private LogOptions options() {
        return Records.options(dir).withSegmentSize(SEGMENT).withFsync(FsyncPolicy.NEVER).withEpoch(epoch::get);
    }

    private void append(SegmentedLog log, String pid, long seq) {
        Await.done(log.append(List.of(log.encode(List.of(event(pid, seq))))));
        epoch.incrementAndGet();
    }

    /** a 1..300 and b 1..100 interleaved, over many segments; then a deleted up to 280. */
    private void writeAndDelete(SegmentedLog log) {
        write(log);
        Await.done(log.delete("a", 280));
    }

    private void write(SegmentedLog log) {
        for (long s = 1; s <= 300; s++) {
            append(log, "a", s);
            if (s % 3 == 0) {
                append(log, "b", s / 3);
            }
        }
    }

    /** Live records by position: what must survive compaction unchanged. */
    private static Map<Long, LogRecord> live(SegmentedLog log) {
        Map<Long, LogRecord> out = new HashMap<>();
        for (LogRecord r : log.readFrom(0, Integer.MAX_VALUE)) {
            boolean deleted = r.type() == RecordType.EVENT && r.sequenceNr() <= log.deletedTo(r.persistenceId());
            boolean superseded = r.type() == RecordType.TOMBSTONE && r.sequenceNr() < log.deletedTo(r.persistenceId());
            if (!deleted && !superseded) {
                out.put(r.position(), r);
            }
        }
        return out;
    }

    /** Compacts what qualifies; the background compactor may have done some of it already. */
    private static void compact(SegmentedLog log) {
        log.compactNow();
        assertTrue(log.diskUsage().compactions() > 0, "something was compacted");
    }

    private static List<Long> seqs(SegmentedLog log, String pid) {
        List<Long> out = new ArrayList<>();
        log.replay(pid, 1, Long.MAX_VALUE, Long.MAX_VALUE, r -> out.add(r.sequenceNr()));
        return out;
    }

    private static List<Long> range(long from, long to) {
        return LongStream.rangeClosed(from, to).boxed().toList();
    }

    private static void assertSameRecords(Map<Long, LogRecord> expected, SegmentedLog log) {
        List<LogRecord> all = log.readFrom(0, Integer.MAX_VALUE);
        long previous = -1;
        for (LogRecord r : all) {
            assertTrue(r.position() > previous, "positions stay monotonic");
            previous = r.position();
        }
        Map<Long, LogRecord> now = live(log);
        assertEquals(expected.keySet(), now.keySet());
        for (LogRecord e : expected.values()) {
            LogRecord r = now.get(e.position());
            assertEquals(e.epoch(), r.epoch(), "epoch of " + e.position());
            assertEquals(e.persistenceId(), r.persistenceId());
            assertEquals(e.sequenceNr(), r.sequenceNr());
            assertEquals(e.type(), r.type());
            assertArrayEquals(e.payload(), r.payload());
        }
    }

    @Test
    void deletedRecordsGoAndEveryLiveRecordKeepsItsPositionAndEpoch() throws Exception {
        Map<Long, LogRecord> expected;
        try (SegmentedLog log = SegmentedLog.open(options())) {
            write(log);
            // Nothing is deleted yet, so nothing can have been compacted.
            long before = log.diskUsage().segmentBytes();
            Await.done(log.delete("a", 280));
            expected = live(log);
            compact(log);
            SegmentedLog.DiskUsage after = log.diskUsage();
            assertTrue(after.segmentBytes() < before / 2, after + " vs " + before);
            assertTrue(after.segmentBytes() <= 2 * after.liveBytes() + SEGMENT, after.toString());
            assertSameRecords(expected, log);
            assertEquals(range(281, 300), seqs(log, "a"));
            assertEquals(range(1, 100), seqs(log, "b"));
            // Later writes go on from the same position; a new deletion makes more of it go.
            long next = log.nextPosition();
            append(log, "b", 101);
            assertEquals(next, log.readFrom(next, 1).get(0).position());
        }
        try (SegmentedLog log = SegmentedLog.open(options())) {
            assertEquals(range(281, 300), seqs(log, "a"));
            assertEquals(range(1, 101), seqs(log, "b"));
            assertEquals(300, log.highestSequenceNr("a"));
            Map<Long, LogRecord> reopened = live(log);
            for (LogRecord e : expected.values()) {
                assertEquals(e.epoch(), reopened.get(e.position()).epoch());
            }
        }
        VerifyReport report = JournalTools.verify(dir);
        assertTrue(report.ok(), report.problems().toString());
    }

    @Test
    void theUnreplicatedPartIsNeverCompacted() throws Exception {
        AtomicLong replicated = new AtomicLong(0);
        LongSupplier replicatedTo = replicated::get;
        try (SegmentedLog log = SegmentedLog.open(options().withReplicatedTo(replicatedTo))) {
            writeAndDelete(log);
            Map<Path, byte[]> before = contents();
            assertEquals(0, log.compactNow(), "nothing is replicated: nothing may change");
            assertEquals(before.keySet(), contents().keySet());
            before.forEach((file, bytes) -> assertArrayEquals(bytes, read(file), file.toString()));

            // The twin has the first half of the log: only segments wholly below that position may change.
            long boundary = log.nextPosition() / 2;
            replicated.set(boundary);
            compact(log);
            for (Map.Entry<Path, byte[]> e : before.entrySet()) {
                long first = LogScanner.firstPositionOf(e.getKey());
                long lastInSegment = lastPositionIn(e.getKey(), e.getValue());
                if (lastInSegment >= boundary) {
                    assertArrayEquals(e.getValue(), read(e.getKey()), "segment " + first + " holds unreplicated"
                            + " records and must not change");
                }
            }
        }
    }

    @Test
    void theNewestKeepSegmentsAreNeverCompacted() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(options().withKeepSegments(4))) {
            writeAndDelete(log);
            Map<Path, byte[]> before = contents();
            List<Path> newest = new ArrayList<>(before.keySet()).subList(before.size() - 4, before.size());
            compact(log);
            for (Path file : newest) {
                if (!file.equals(newest.get(3))) {
                    assertArrayEquals(before.get(file), read(file), file + " is among the newest 4");
                }
            }
            assertEquals(range(281, 300), seqs(log, "a"));
        }
    }

    @Test
    void readersDuringCompactionSeeEveryLiveRecord() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(options())) {
            writeAndDelete(log);
            AtomicBoolean stop = new AtomicBoolean();
            CompletableFuture<Integer> reader = CompletableFuture.supplyAsync(() -> {
                int rounds = 0;
                while (!stop.get() || rounds == 0) {
                    assertEquals(range(1, 100), seqs(log, "b"));
                    rounds++;
                }
                return rounds;
            });
            for (long s = 281; s <= 300; s++) {
                Await.done(log.delete("a", s));
                log.compactNow();
            }
            stop.set(true);
            assertTrue(Await.done(reader) > 0);
            assertEquals(List.of(), seqs(log, "a"));
        }
    }

    @Test
    void aCopyLeftByAnInterruptedCompactionIsRemovedOnOpen() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(options())) {
            writeAndDelete(log);
        }
        Path first = LogScanner.segmentFiles(dir).get(0);
        Path leftover = LogScanner.compactionFile(first);
        Files.write(leftover, new byte[] {1, 2, 3});
        try (SegmentedLog log = SegmentedLog.open(options().withKeepSegments(1000))) {
            assertFalse(Files.exists(leftover));
            assertEquals(range(281, 300), seqs(log, "a"));
        }
    }

    @Test
    void version1SegmentsAreCompactedAndStillRead() throws Exception {
        // journal-v1/log: a 1..60 (tag "ta"), b 1..30, c 1..2 in one atomic write, a deleted up to 40; 4 KiB segments.
        Fixtures.copy("journal-v1/log", dir);
        LogOptions v1 = Records.options(dir).withSegmentSize(4096).withFsync(FsyncPolicy.NEVER);
        Map<Long, LogRecord> expected;
        try (SegmentedLog log = SegmentedLog.open(v1)) {
            expected = live(log);
            compact(log);
            assertSameRecords(expected, log);
        }
        try (SegmentedLog log = SegmentedLog.open(v1)) {
            assertSameRecords(expected, log);
            assertEquals(range(41, 60), seqs(log, "a"));
            assertEquals(range(1, 30), seqs(log, "b"));
            assertEquals(range(1, 2), seqs(log, "c"));
            assertEquals(20, log.eventsByTag("ta", -1, 100).records().size());
        }
        VerifyReport report = JournalTools.verify(dir);
        assertTrue(report.ok(), report.problems().toString());
    }

    private Map<Path, byte[]> contents() throws Exception {
        Map<Path, byte[]> out = new LinkedHashMap<>();
        for (Path file : LogScanner.segmentFiles(dir)) {
            out.put(file, Files.readAllBytes(file));
        }
        return out;
    }

    private static byte[] read(Path file) {
        try {
            return Files.readAllBytes(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static long lastPositionIn(Path file, byte[] bytes) {
        long last = -1;
        for (int at = 0; at < bytes.length; ) {
            RecordCodec.Decoded d = RecordCodec.decode(bytes, at, bytes.length, RecordCodec.MAX_RECORD_BYTES);
            if (!d.ok()) {
                break;
            }
            last = d.record().position();
            at += d.length();
        }
        return last;
    }
}
