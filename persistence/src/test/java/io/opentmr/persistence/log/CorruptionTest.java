package io.opentmr.persistence.log;

import static io.opentmr.persistence.log.Records.event;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Await;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class CorruptionTest {

    @TempDir
    Path dir;

    /** Offsets of the records in the only segment, in order. */
    private List<Integer> offsets() throws IOException {
        List<Integer> out = new ArrayList<>();
        LogScanner.scan(dir, 1 << 20, false, (file, offset, length, record) -> out.add(offset));
        return out;
    }

    private Path onlySegment() throws IOException {
        List<Path> files = LogScanner.segmentFiles(dir);
        assertEquals(1, files.size());
        return files.get(0);
    }

    private void writeTen() throws IOException {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            for (long s = 1; s <= 10; s++) {
                Await.done(log.append(List.of(log.encode(List.of(event("a", s))))));
            }
        }
    }

    private static void flipByte(Path file, long offset) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.seek(offset);
            int b = f.read();
            f.seek(offset);
            f.write(b ^ 0x5A);
        }
    }

    private static List<Long> replay(SegmentedLog log) {
        List<Long> out = new ArrayList<>();
        log.replay("a", 1, Long.MAX_VALUE, Long.MAX_VALUE, r -> out.add(r.sequenceNr()));
        return out;
    }

    @Test
    void flippedByteInTheLastRecordIsATornTailAndIsTruncated() throws IOException {
        writeTen();
        Path seg = onlySegment();
        int last = offsets().get(9);
        flipByte(seg, last + 30);
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L, 9L), replay(log));
            assertEquals(last, Files.size(seg));
            Await.done(log.append(List.of(log.encode(List.of(event("a", 10))))));
        }
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(10, replay(log).size());
        }
    }

    @Test
    void flippedByteInTheMiddleRefusesStartNamingFileAndOffset() throws IOException {
        writeTen();
        Path seg = onlySegment();
        int third = offsets().get(2);
        long sizeBefore = Files.size(seg);
        flipByte(seg, third + 20);
        JournalCorruptedException e = assertThrows(JournalCorruptedException.class,
                () -> SegmentedLog.open(Records.options(dir)));
        assertEquals(seg, e.file());
        assertEquals(third, e.offset());
        assertTrue(e.getMessage().contains(seg.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("offset " + third), e.getMessage());
        assertEquals(sizeBefore, Files.size(seg), "a refused open must not change the file");
        // The lock is released after the refusal: the repair open can take it.
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withRepair(true))) {
            assertEquals(List.of(1L, 2L), replay(log));
            assertEquals(third, Files.size(seg));
        }
    }

    @Test
    void badLengthFieldInTheMiddleIsNotMistakenForATail() throws IOException {
        writeTen();
        int fifth = offsets().get(4);
        flipByte(onlySegment(), fifth + 9);
        assertThrows(JournalCorruptedException.class, () -> SegmentedLog.open(Records.options(dir)));
    }

    private static void zero(Path file, long from, int length) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.seek(from);
            f.write(new byte[length]);
        }
    }

    @Test
    void pagesOfTheLastWriteReachingDiskOutOfOrderAreATornTail() throws IOException {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            Await.done(log.append(List.of(log.encode(List.of(event("a", 1))))));
            // One request: one write, one fsync. A power loss during it may persist a later page, not an earlier.
            List<SegmentedLog.Group> groups = new ArrayList<>();
            for (long s = 2; s <= 6; s++) {
                groups.add(log.encode(List.of(event("a", s))));
            }
            Await.done(log.append(groups));
        }
        List<Integer> offsets = offsets();
        zero(onlySegment(), offsets.get(1), offsets.get(3) - offsets.get(1));
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(List.of(1L), replay(log));
            assertEquals(offsets.get(1).longValue(), Files.size(onlySegment()));
        }
    }

    @Test
    void damageInAWriteFollowedByALaterWriteIsInTheMiddle() throws IOException {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            Await.done(log.append(List.of(log.encode(List.of(event("a", 1))), log.encode(List.of(event("a", 2))))));
            Await.done(log.append(List.of(log.encode(List.of(event("a", 3))), log.encode(List.of(event("a", 4))))));
        }
        List<Integer> offsets = offsets();
        zero(onlySegment(), offsets.get(1), offsets.get(2) - offsets.get(1));
        JournalCorruptedException e = assertThrows(JournalCorruptedException.class,
                () -> SegmentedLog.open(Records.options(dir)));
        assertEquals(offsets.get(1).longValue(), e.offset());
    }

    @Test
    void fileCutInsideTheLastRecordIsRepairedOnOpen() throws IOException {
        writeTen();
        Path seg = onlySegment();
        int last = offsets().get(9);
        try (RandomAccessFile f = new RandomAccessFile(seg.toFile(), "rw")) {
            f.setLength(last + 7);
        }
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(9, replay(log).size());
            assertEquals(9, log.nextPosition());
        }
    }

    @Test
    void anAtomicWriteCutAtTheTailDisappearsWhole() throws IOException {
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            Await.done(log.append(List.of(log.encode(List.of(event("a", 1))))));
            Await.done(log.append(List.of(log.encode(List.of(event("a", 2), event("a", 3), event("a", 4))))));
        }
        Path seg = onlySegment();
        long size = Files.size(seg);
        try (RandomAccessFile f = new RandomAccessFile(seg.toFile(), "rw")) {
            f.setLength(size - 3);
        }
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(List.of(1L), replay(log));
        }
    }

    @Test
    void emptyNewestSegmentIsReused() throws IOException {
        writeTen();
        Files.createFile(dir.resolve(LogScanner.segmentName(10)));
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            Await.done(log.append(List.of(log.encode(List.of(event("a", 11))))));
            assertEquals(11, replay(log).size());
        }
        assertEquals(2, LogScanner.segmentFiles(dir).size());
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(11, replay(log).size());
        }
    }

    @Test
    void emptyDirectoryAndEmptyOnlySegmentOpen() throws IOException {
        Files.createFile(dir.resolve(LogScanner.segmentName(0)));
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(0, log.nextPosition());
            Await.done(log.append(List.of(log.encode(List.of(event("a", 1))))));
        }
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(List.of(1L), replay(log));
        }
    }

    @Test
    void emptySegmentBeforeTheLastIsDamage() throws IOException {
        LogOptions small = Records.options(dir).withSegmentSize(4096);
        try (SegmentedLog log = SegmentedLog.open(small)) {
            for (long s = 1; s <= 300; s++) {
                Await.done(log.append(List.of(log.encode(List.of(event("a", s))))));
            }
        }
        List<Path> files = LogScanner.segmentFiles(dir);
        assertTrue(files.size() >= 3);
        try (RandomAccessFile f = new RandomAccessFile(files.get(1).toFile(), "rw")) {
            f.setLength(0);
        }
        JournalCorruptedException e = assertThrows(JournalCorruptedException.class,
                () -> SegmentedLog.open(small));
        assertEquals(files.get(1), e.file());
        try (SegmentedLog log = SegmentedLog.open(small.withRepair(true))) {
            List<Long> left = replay(log);
            assertEquals(LogScanner.firstPositionOf(files.get(1)), left.size());
        }
    }

    /** Writes a segment file by hand: events of {@code pid} from {@code firstSeq} at consecutive positions. */
    private void segment(long firstPosition, int records, String pid, long firstSeq) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = 0; i < records; i++) {
            LogRecord e = event(pid, firstSeq + i);
            byte[] bytes = RecordCodec.encode(new LogRecord(RecordType.EVENT, true, 0, firstPosition + i, pid,
                    e.sequenceNr(), e.timestamp(), e.writerUuid(), e.serializerId(), e.manifest(),
                    e.adapterManifest(), e.tags(), e.payload()), 1 << 20);
            RecordCodec.markWriteStart(bytes, 0);
            out.write(bytes);
        }
        Files.write(dir.resolve(LogScanner.segmentName(firstPosition)), out.toByteArray());
    }

    @Test
    void repairingAnEmptyFirstSegmentAfterAGapKeepsPositionsInThatSegment() throws IOException {
        // Segments 0..99 were removed (all deleted) long ago: the log starts at position 100.
        segment(100, 49, "a", 1);
        segment(149, 49, "a", 50);
        segment(198, 13, "a", 99);
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            assertEquals(111, replay(log).size());
            assertEquals(211, log.nextPosition());
        }
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve(LogScanner.segmentName(100)).toFile(), "rw")) {
            f.setLength(0);
        }
        assertThrows(JournalCorruptedException.class, () -> SegmentedLog.open(Records.options(dir)));
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir).withRepair(true))) {
            assertEquals(List.of(), replay(log));
            assertEquals(100, log.nextPosition(), "positions continue where the remaining segment starts");
            Await.done(log.append(List.of(log.encode(List.of(event("b", 1))))));
            assertEquals(101, log.nextPosition());
        }
        try (SegmentedLog log = SegmentedLog.open(Records.options(dir))) {
            List<Long> b = new ArrayList<>();
            log.replay("b", 1, Long.MAX_VALUE, Long.MAX_VALUE, r -> b.add(r.position()));
            assertEquals(List.of(100L), b);
            assertEquals(101, log.nextPosition());
        }
    }
}
