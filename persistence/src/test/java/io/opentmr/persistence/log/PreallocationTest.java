package io.opentmr.persistence.log;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Await;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The writer's preallocated zeros after the active segment's records: the end of the log after a crash, never
 * damage there; cut off a segment that closes and at a clean close; damage anywhere but the last segment.
 */
class PreallocationTest {

    private static final long PREALLOCATE = 64 << 10;

    @TempDir
    Path dir;

    @TempDir
    Path crashed;

    private LogOptions options(Path in, long segmentSize) {
        return LogOptions.defaults(in).withSegmentSize(segmentSize).withPreallocate(PREALLOCATE);
    }

    private static void write(SegmentedLog log, String pid, long from, long to) {
        List<SegmentedLog.Group> groups = new ArrayList<>();
        for (long s = from; s <= to; s++) {
            groups.add(log.encode(List.of(Records.event(pid, s))));
        }
        Await.done(log.append(groups));
    }

    private static List<Long> seqs(SegmentedLog log, String pid) {
        List<Long> out = new ArrayList<>();
        log.replay(pid, 1, Long.MAX_VALUE, Long.MAX_VALUE, r -> out.add(r.sequenceNr()));
        return out;
    }

    private static List<Long> range(long from, long to) {
        List<Long> out = new ArrayList<>();
        for (long s = from; s <= to; s++) {
            out.add(s);
        }
        return out;
    }

    /** The segment files as a crash would leave them (what the page cache has), without the lock. */
    private void copySegments(Path from, Path to) throws IOException {
        for (Path segment : LogScanner.segmentFiles(from)) {
            Files.copy(segment, to.resolve(segment.getFileName()));
        }
    }

    private static LogScanner.Result scan(Path in) throws IOException {
        return LogScanner.scan(in, RecordCodec.MAX_RECORD_BYTES, false, (f, o, l, r) -> { });
    }

    private static Path lastSegment(Path in) throws IOException {
        List<Path> files = LogScanner.segmentFiles(in);
        return files.get(files.size() - 1);
    }

    @Test
    void aCrashLeavesZerosAfterTheLastRecordThatReopenTakesForTheEndOfTheLogNotForATornTail() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(options(dir, 1 << 20))) {
            write(log, "a", 1, 100);
            copySegments(dir, crashed);
        }
        LogScanner.Result found = scan(crashed);
        long end = found.segments().get(0).validEnd();
        assertEquals(end + PREALLOCATE, Files.size(lastSegment(crashed)), "zeros follow the records");
        assertEquals(List.of(), found.damages());
        try (SegmentedLog log = SegmentedLog.open(options(crashed, 1 << 20))) {
            assertEquals(range(1, 100), seqs(log, "a"));
            assertEquals(100, log.nextPosition());
            write(log, "a", 101, 110);
        }
        assertEquals(scan(crashed).segments().get(0).validEnd(), Files.size(lastSegment(crashed)),
                "a clean close cuts the zeros off");
        try (SegmentedLog log = SegmentedLog.open(options(crashed, 1 << 20))) {
            assertEquals(range(1, 110), seqs(log, "a"));
        }
    }

    @Test
    void aRollCutsTheZerosOffTheSegmentItClosesAndOnlyTheLastEverHasThem() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(options(dir, 16 << 10))) {
            for (int i = 0; i < 30; i++) {
                write(log, "a", i * 20L + 1, i * 20L + 20);
            }
            copySegments(dir, crashed);
        }
        LogScanner.Result found = scan(crashed);
        assertTrue(found.segments().size() > 3, "rolled: " + found.segments().size());
        assertEquals(List.of(), found.damages());
        for (LogScanner.SegmentInfo s : found.segments().subList(0, found.segments().size() - 1)) {
            assertEquals(s.validEnd(), s.size(), "closed segment " + s.path().getFileName() + " has no zeros");
        }
        LogScanner.SegmentInfo last = found.segments().get(found.segments().size() - 1);
        assertTrue(last.size() > last.validEnd(), "the active one has zeros ahead");
        assertTrue(last.size() <= 16 << 10, "never past segment-size: " + last.size());
        try (SegmentedLog log = SegmentedLog.open(options(crashed, 16 << 10))) {
            assertEquals(range(1, 600), seqs(log, "a"));
        }
    }

    @Test
    void zerosAtTheEndOfASegmentThatIsNotTheLastAreDamage() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(options(dir, 16 << 10))) {
            for (int i = 0; i < 10; i++) {
                write(log, "a", i * 20L + 1, i * 20L + 20);
            }
        }
        Path first = LogScanner.segmentFiles(dir).get(0);
        try (FileChannel ch = FileChannel.open(first, StandardOpenOption.WRITE, StandardOpenOption.APPEND)) {
            ch.write(ByteBuffer.allocate(4096));
        }
        List<LogScanner.Damage> damages = scan(dir).damages();
        assertEquals(1, damages.size());
        assertFalse(damages.get(0).tail());
        assertThrows(JournalCorruptedException.class, () -> SegmentedLog.open(options(dir, 16 << 10)).close());
    }

    @Test
    void aWriteTornInsideThePreallocatedZerosIsATornTail() throws Exception {
        long end;
        try (SegmentedLog log = SegmentedLog.open(options(dir, 1 << 20))) {
            write(log, "a", 1, 100);
            copySegments(dir, crashed);
        }
        end = scan(crashed).segments().get(0).validEnd();
        byte[] partial = RecordCodec.encode(Records.event("a", 101), 1 << 20);
        try (FileChannel ch = FileChannel.open(lastSegment(crashed), StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(partial, 0, partial.length / 2), end);
        }
        List<LogScanner.Damage> damages = scan(crashed).damages();
        assertEquals(1, damages.size());
        assertTrue(damages.get(0).tail());
        assertEquals(end, damages.get(0).offset());
        try (SegmentedLog log = SegmentedLog.open(options(crashed, 1 << 20))) {
            assertEquals(range(1, 100), seqs(log, "a"));
            write(log, "a", 101, 101);
            assertEquals(range(1, 101), seqs(log, "a"));
        }
    }
}
