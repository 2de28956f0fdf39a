package io.opentmr.persistence.log;

import static io.opentmr.persistence.log.Records.event;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Await;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(value = 60, unit = TimeUnit.SECONDS)
class SegmentedLogTest {

    @TempDir
    Path dir;

    private static void write(SegmentedLog log, String pid, long from, long to) {
        List<SegmentedLog.Group> groups = new ArrayList<>();
        for (long s = from; s <= to; s++) {
            groups.add(log.encode(List.of(event(pid, s))));
        }
        Await.done(log.append(groups));
    }

    private static List<Long> seqs(SegmentedLog log, String pid, long from, long to, long max) {
        List<Long> out = new ArrayList<>();
        log.replay(pid, from, to, max, r -> out.add(r.sequenceNr()));
        return out;
    }

    @Test
    void replayHonoursFromToAndMax() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            write(log, "a", 1, 5);
            assertEquals(List.of(1L, 2L, 3L, 4L, 5L), seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE));
            assertEquals(List.of(2L, 3L, 4L), seqs(log, "a", 2, 4, Long.MAX_VALUE));
            assertEquals(List.of(2L, 3L), seqs(log, "a", 2, 5, 2));
            assertEquals(List.of(), seqs(log, "a", 3, 2, 10));
            assertEquals(List.of(), seqs(log, "a", 1, 5, 0));
            assertEquals(List.of(), seqs(log, "unknown", 1, 5, 10));
            List<String> payloads = new ArrayList<>();
            log.replay("a", 1, 5, 10, r -> payloads.add(Records.text(r)));
            assertEquals(List.of("a:1", "a:2", "a:3", "a:4", "a:5"), payloads);
        }
    }

    @Test
    void replayPagesThroughTheIndexAndStillHonoursFromToAndMax() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withFsync(FsyncPolicy.NEVER))) {
            write(log, "a", 1, 10_000);
            List<Long> some = seqs(log, "a", 3, 9_000, 5_000);
            assertEquals(5_000, some.size());
            assertEquals(3L, some.get(0));
            assertEquals(5_002L, some.get(some.size() - 1));
            List<Long> all = seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE);
            assertEquals(10_000, all.size());
            assertEquals(10_000L, all.get(all.size() - 1));
            assertEquals(List.of(8_999L, 9_000L), seqs(log, "a", 8_999, 9_000, Long.MAX_VALUE));
        }
    }

    @Test
    void highestSequenceNrSurvivesDeletionAndReopen() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            write(log, "a", 1, 5);
            assertEquals(5, log.highestSequenceNr("a"));
            Await.done(log.delete("a", 3));
            assertEquals(List.of(4L, 5L), seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE));
            Await.done(log.delete("a", Long.MAX_VALUE));
            assertEquals(List.of(), seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE));
            assertEquals(5, log.highestSequenceNr("a"));
            assertEquals(0, log.highestSequenceNr("b"));
        }
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(5, log.highestSequenceNr("a"));
            assertEquals(5, log.deletedTo("a"));
            assertEquals(List.of(), seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE));
            write(log, "a", 6, 6);
            assertEquals(List.of(6L), seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE));
        }
    }

    @Test
    void segmentsRollAndFullyDeletedOnesAreRemoved() throws Exception {
        LogOptions small = Records.options(dir).withSegmentSize(4096);
        try (SegmentedLog log = SegmentedLog.open(small)) {
            write(log, "old", 1, 200);
            write(log, "keep", 1, 10);
            int segmentsBefore = LogScanner.segmentFiles(dir).size();
            assertTrue(segmentsBefore > 3, "expected several segments, got " + segmentsBefore);
            Await.done(log.delete("old", 200));
            int segmentsAfter = LogScanner.segmentFiles(dir).size();
            assertTrue(segmentsAfter < segmentsBefore, segmentsBefore + " -> " + segmentsAfter);
            assertEquals(List.of(), seqs(log, "old", 1, Long.MAX_VALUE, Long.MAX_VALUE));
            assertEquals(10, seqs(log, "keep", 1, Long.MAX_VALUE, Long.MAX_VALUE).size());
        }
        try (SegmentedLog log = SegmentedLog.open(small)) {
            assertEquals(200, log.highestSequenceNr("old"));
            assertEquals(10, seqs(log, "keep", 1, Long.MAX_VALUE, Long.MAX_VALUE).size());
            write(log, "old", 201, 201);
            assertEquals(List.of(201L), seqs(log, "old", 1, Long.MAX_VALUE, Long.MAX_VALUE));
        }
    }

    @Test
    void manyWritersConcurrentlyKeepPerIdOrderAndReopenIdentically() throws Exception {
        int writers = 16;
        int perWriter = 200;
        List<List<Long>> before = new ArrayList<>();
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withSegmentSize(64 * 1024))) {
            List<CompletableFuture<Void>> all = new ArrayList<>();
            for (int w = 0; w < writers; w++) {
                String pid = "p" + w;
                all.add(CompletableFuture.runAsync(() -> {
                    for (long s = 1; s <= perWriter; s++) {
                        Await.done(log.append(List.of(log.encode(List.of(event(pid, s, "tag-" + (s % 3)))))));
                    }
                }));
            }
            CompletableFuture.allOf(all.toArray(CompletableFuture[]::new)).get(45, TimeUnit.SECONDS);
            for (int w = 0; w < writers; w++) {
                List<Long> got = seqs(log, "p" + w, 1, Long.MAX_VALUE, Long.MAX_VALUE);
                assertEquals(perWriter, got.size());
                for (int i = 0; i < got.size(); i++) {
                    assertEquals(i + 1, got.get(i));
                }
                before.add(got);
            }
            assertEquals(writers * perWriter, log.nextPosition());
        }
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withSegmentSize(64 * 1024))) {
            for (int w = 0; w < writers; w++) {
                assertEquals(before.get(w), seqs(log, "p" + w, 1, Long.MAX_VALUE, Long.MAX_VALUE));
            }
            assertEquals(writers * perWriter, log.nextPosition());
            assertEquals(writers, log.persistenceIds(0, 100).size());
        }
    }

    @Test
    void everyRecordCarriesPositionAndEpochAndCanBeReadFromAPosition() throws Exception {
        AtomicLong epoch = new AtomicLong(7);
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withEpoch(epoch::get))) {
            write(log, "a", 1, 3);
            epoch.set(8);
            write(log, "b", 1, 2);
            Await.done(log.delete("a", 1));
            List<LogRecord> all = log.readFrom(0, 100);
            assertEquals(6, all.size());
            for (int i = 0; i < all.size(); i++) {
                assertEquals(i, all.get(i).position());
            }
            assertEquals(7, all.get(0).epoch());
            assertEquals(8, all.get(3).epoch());
            assertEquals(RecordType.TOMBSTONE, all.get(5).type());
            List<LogRecord> fromFour = log.readFrom(4, 100);
            assertEquals(List.of(4L, 5L), fromFour.stream().map(LogRecord::position).toList());
            assertEquals(2, log.readFrom(0, 2).size());
        }
    }

    @Test
    void anAtomicWriteIsOneGroupAndReplaysWhole() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            Await.done(log.append(List.of(log.encode(List.of(event("a", 1), event("a", 2), event("a", 3))))));
            List<LogRecord> all = log.readFrom(0, 10);
            assertFalse(all.get(0).lastOfGroup());
            assertFalse(all.get(1).lastOfGroup());
            assertTrue(all.get(2).lastOfGroup());
        }
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(List.of(1L, 2L, 3L), seqs(log, "a", 1, 10, 10));
        }
    }

    @Test
    void tagsAreIndexed() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            Await.done(log.append(List.of(log.encode(List.of(event("a", 1, "x"))),
                    log.encode(List.of(event("b", 1, "x", "y"))), log.encode(List.of(event("a", 2))))));
            assertEquals(List.of("a", "b"), log.eventsByTag("x", -1, 10).records().stream()
                    .map(LogRecord::persistenceId).toList());
            assertEquals(1, log.eventsByTag("x", 0, 10).records().size());
            assertEquals(1, log.eventsByTag("y", -1, 10).records().size());
            assertTrue(Files.exists(dir.resolve("LOCK")));
        }
    }

    @Test
    void loweringSegmentSizeKeepsRecordsLargerThanTheNewSize() throws Exception {
        byte[] big = new byte[100 * 1024];
        Arrays.fill(big, (byte) 'x');
        LogOptions large = Records.options(dir).withSegmentSize(1 << 20);
        LogOptions small = Records.options(dir).withSegmentSize(64 * 1024);
        try (SegmentedLog log = SegmentedLog.open(large)) {
            write(log, "a", 1, 1);
            log.append(List.of(log.encode(List.of(LogRecord.event("a", 2, 1L, "writer-1", 4, "m", "", List.of(),
                    big))))).get(10, TimeUnit.SECONDS);
        }
        // The large record is the last one of the log: it must not be taken for a torn tail.
        try (SegmentedLog log = SegmentedLog.open(small)) {
            assertEquals(List.of(1L, 2L), seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE));
            assertEquals(2, log.highestSequenceNr("a"));
            assertEquals(2, log.nextPosition());
            write(log, "b", 1, 3);
            log.replay("a", 2, 2, 1, r -> assertArrayEquals(big, r.payload()));
        }
        // Now it lies before later records: it must not be taken for damage in the middle.
        try (SegmentedLog log = SegmentedLog.open(small)) {
            assertEquals(List.of(1L, 2L), seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE));
            assertEquals(List.of(1L, 2L, 3L), seqs(log, "b", 1, Long.MAX_VALUE, Long.MAX_VALUE));
            assertEquals(2, log.highestSequenceNr("a"));
            assertEquals(5, log.nextPosition());
            // segment-size still limits what is written now.
            assertThrows(IllegalArgumentException.class, () -> log.encode(List.of(LogRecord.event("a", 3, 1L,
                    "writer-1", 4, "m", "", List.of(), big))));
        }
    }

    @Test
    void eventsByTagSkipsDeletedEventsAndReportsHowFarItScanned() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            List<SegmentedLog.Group> groups = new ArrayList<>();
            for (long s = 1; s <= 300; s++) {
                groups.add(log.encode(List.of(event("a", s, "t"))));
            }
            log.append(groups).get(10, TimeUnit.SECONDS);
            log.delete("a", 300).get(10, TimeUnit.SECONDS);
            log.append(List.of(log.encode(List.of(event("b", 1, "t"))))).get(10, TimeUnit.SECONDS);
            assertEquals(1, log.tagIndexEntries(), "deleted positions are pruned from the tag index");
            // Page by page with a small page: every step makes progress and b's event (position 301) comes out.
            List<String> seen = new ArrayList<>();
            long cursor = -1;
            for (int step = 0; step < 400; step++) {
                SegmentedLog.TagPage page = log.eventsByTag("t", cursor, 10);
                page.records().forEach(r -> seen.add(Records.text(r)));
                if (page.scannedTo() == cursor) {
                    break;
                }
                assertTrue(page.scannedTo() > cursor, "the cursor moves forward");
                cursor = page.scannedTo();
            }
            assertEquals(List.of("b:1"), seen);
            assertEquals(301, cursor);
        }
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(1, log.tagIndexEntries(), "recovery prunes deleted positions too");
            assertEquals(List.of(301L), log.eventsByTag("t", -1, 10).records().stream().map(LogRecord::position)
                    .toList());
        }
    }

    @Test
    void anInterruptedReaderBreaksNothingForOthers() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withSegmentSize(4096))) {
            write(log, "a", 1, 60);
            assertTrue(LogScanner.segmentFiles(dir).size() > 1, "closed segments and the active one are read");
            List<Long> onInterrupted = new ArrayList<>();
            RuntimeException failed = null;
            Thread.currentThread().interrupt();
            try {
                log.replay("a", 1, Long.MAX_VALUE, Long.MAX_VALUE, r -> onInterrupted.add(r.sequenceNr()));
            } catch (RuntimeException e) {
                failed = e;
            } finally {
                // Clears the flag for what follows; the replay may have consumed it or left it set.
                Thread.interrupted();
            }
            if (failed == null) {
                assertEquals(60, onInterrupted.size(), "an interrupted replay must not silently return less");
            }
            assertEquals(60, seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE).size());
            log.append(List.of(log.encode(List.of(event("a", 61))))).get(10, TimeUnit.SECONDS);
            assertEquals(61, seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE).size());
            assertEquals(61, log.readFrom(0, 100).size());
        }
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withSegmentSize(4096))) {
            assertEquals(61, seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE).size());
        }
    }

    @Test
    void anAtomicWriteLargerThanASegmentIsRefused() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withSegmentSize(4096))) {
            byte[] kb = new byte[1500];
            List<LogRecord> group = new ArrayList<>();
            for (long s = 1; s <= 3; s++) {
                group.add(LogRecord.event("a", s, 1L, "writer-1", 4, "m", "", List.of(), kb));
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> log.encode(group));
            assertTrue(e.getMessage().contains("segment-size"), e.getMessage());
            log.append(List.of(log.encode(group.subList(0, 2)))).get(10, TimeUnit.SECONDS);
            assertEquals(List.of(1L, 2L), seqs(log, "a", 1, Long.MAX_VALUE, Long.MAX_VALUE));
            for (Path segment : LogScanner.segmentFiles(dir)) {
                assertTrue(Files.size(segment) <= 4096, segment + " is larger than a segment");
            }
        }
    }
}
