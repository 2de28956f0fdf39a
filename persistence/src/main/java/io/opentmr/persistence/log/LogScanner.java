package io.opentmr.persistence.log;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Reads the segments of a log directory in order and classifies every damaged spot. It never writes: recovery
 * ({@link SegmentedLog#open}) and the journal tools share it, and the tools must be able to read a live journal.
 *
 * <p>Damage is a <em>torn tail</em> when it lies in the last segment and no later write follows it: that is what a
 * crash during a write leaves, and those bytes were never acknowledged (acknowledgement waits for the write, and in
 * {@code batch}/{@code always} mode for its fsync, which precedes the next write). Anything else is damage in the
 * middle. With fsync {@code never} several writes may be torn at once and be reported as damage in the middle;
 * the {@code repair} option then truncates. An atomic write whose last
 * record is missing at the tail is torn as a whole, so replay never sees half of one.
 *
 * <p>Zeros from the end of the last segment's records to the end of its file are not damage: they are the space the
 * writer preallocates ({@link LogOptions#preallocate()}). Only the last segment may have them (a roll cuts them off
 * the segment it closes, durably, before the next segment exists); anywhere else they are damage as before.
 */
public final class LogScanner {

    private static final Pattern SEGMENT_NAME = Pattern.compile("(\\d{20})\\.seg");
    private static final String COMPACTING = ".compacting";

    /** Receives every valid record, in log order; records of an atomic write only once the write is complete. */
    public interface Visitor {
        void record(Path segment, int offset, int length, LogRecord record);
    }

    /** A damaged spot. {@code tail} says it is a torn tail that recovery truncates without asking. */
    public record Damage(Path file, long offset, String reason, boolean tail) {
        @Override
        public String toString() {
            return (tail ? "torn tail" : "damage") + " in " + file + " at offset " + offset + ": " + reason;
        }
    }

    /** One segment file as found: {@code validEnd} is the end of the last good record before any damage. */
    public record SegmentInfo(Path path, long firstPosition, long size, long validEnd, long records) {
    }

    /** What a scan found. {@code nextPosition} is the position the next appended record gets. */
    public record Result(List<SegmentInfo> segments, List<Damage> damages, long nextPosition) {
        public boolean hasMiddleDamage() {
            return damages.stream().anyMatch(d -> !d.tail());
        }
    }

    private LogScanner() {
    }

    /** File name of the segment whose first record has {@code firstPosition}. */
    static String segmentName(long firstPosition) {
        return String.format("%020d.seg", firstPosition);
    }

    /** The temporary file compaction writes a segment's copy to before renaming it over the segment. */
    static Path compactionFile(Path segment) {
        return segment.resolveSibling(segment.getFileName() + COMPACTING);
    }

    /** Copies left behind by a compaction interrupted before its rename. */
    static List<Path> compactionLeftovers(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> p.getFileName().toString().endsWith(".seg" + COMPACTING)).sorted().toList();
        }
    }

    /** The segment files of {@code dir}, ordered by first position. */
    public static List<Path> segmentFiles(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> SEGMENT_NAME.matcher(p.getFileName().toString()).matches())
                    .sorted()
                    .toList();
        }
    }

    static long firstPositionOf(Path segment) {
        Matcher m = SEGMENT_NAME.matcher(segment.getFileName().toString());
        if (!m.matches()) {
            throw new IllegalArgumentException("not a segment file: " + segment);
        }
        return Long.parseLong(m.group(1));
    }

    /**
     * Scans {@code dir}. With {@code stopAtDamage} the scan ends at the first damage (recovery: nothing after it may
     * enter the index); otherwise it resynchronises on the next valid record and reports every problem (verify).
     */
    public static Result scan(Path dir, int maxRecordBytes, boolean stopAtDamage, Visitor visitor)
            throws IOException {
        List<Path> files = segmentFiles(dir);
        List<SegmentInfo> infos = new ArrayList<>();
        List<Damage> damages = new ArrayList<>();
        long nextPosition = 0;
        for (int i = 0; i < files.size(); i++) {
            Path file = files.get(i);
            boolean last = i == files.size() - 1;
            long first = firstPositionOf(file);
            SegmentInfo info;
            try (SegmentReader bytes = new SegmentReader(file)) {
                if (bytes.size() == 0 && !last) {
                    // Only the newest segment can legitimately be empty (a crash right after a roll): an empty one
                    // before it lost its records.
                    damages.add(new Damage(file, 0, "segment is empty but later segments exist", false));
                    info = new SegmentInfo(file, first, 0, 0, 0);
                    // Segments before it may have been removed (all deleted): positions go on from its name at least.
                    nextPosition = Math.max(nextPosition, first);
                } else {
                    SegmentScan seg = new SegmentScan(file, bytes, first, last, maxRecordBytes, visitor, damages,
                            stopAtDamage);
                    seg.run();
                    info = new SegmentInfo(file, first, bytes.size(), seg.validEnd, seg.records);
                    nextPosition = Math.max(nextPosition, seg.records > 0 ? seg.lastPosition + 1 : first);
                }
            } catch (NoSuchFileException e) {
                // Removed since the listing (the tools read a live journal; a segment whose records are all deleted
                // goes): nothing of it is in the log any more.
                continue;
            }
            infos.add(info);
            if (stopAtDamage && !damages.isEmpty()) {
                break;
            }
        }
        return new Result(List.copyOf(infos), List.copyOf(damages), nextPosition);
    }

    /** A valid record held back until its atomic write is complete. */
    private record Pending(int offset, int length, LogRecord record) {
    }

    /** Decoding state of one segment. */
    private static final class SegmentScan {
        private final Path file;
        private final SegmentReader bytes;
        private final long firstPosition;
        private final boolean last;
        private final int maxRecordBytes;
        private final Visitor visitor;
        private final List<Damage> damages;
        private final boolean stopAtDamage;
        private final List<Pending> openGroup = new ArrayList<>();
        private int groupStart = -1;
        long validEnd;
        long records;
        long lastPosition = -1;

        SegmentScan(Path file, SegmentReader bytes, long firstPosition, boolean last, int maxRecordBytes,
                Visitor visitor, List<Damage> damages, boolean stopAtDamage) {
            this.file = file;
            this.bytes = bytes;
            this.firstPosition = firstPosition;
            this.last = last;
            this.maxRecordBytes = maxRecordBytes;
            this.visitor = visitor;
            this.damages = damages;
            this.stopAtDamage = stopAtDamage;
        }

        void run() {
            int offset = 0;
            long expected = firstPosition;
            while (offset < bytes.size()) {
                RecordCodec.Decoded d = bytes.decode(offset, maxRecordBytes);
                if (!d.ok() && last && bytes.zerosFrom(offset)) {
                    // Zeros the writer put ahead of its next record (preallocation): the end of the log, not damage.
                    // A record never starts with a zero byte (its magic), so no record can hide in them.
                    break;
                }
                if (!d.ok()) {
                    int resume = nextValid(offset + 1);
                    boolean tail = last && !laterWriteFollows(resume);
                    damages.add(new Damage(file, groupStart >= 0 ? groupStart : offset, d.problem(), tail));
                    dropOpenGroup();
                    if (stopAtDamage || resume < 0) {
                        return;
                    }
                    offset = resume;
                    expected = bytes.decode(resume, maxRecordBytes).record().position();
                    continue;
                }
                LogRecord r = d.record();
                // Compaction leaves gaps, and marks every record it copied.
                boolean gapAllowed = r.position() > expected
                        && (bytes.flagsAt(offset) & RecordCodec.FLAG_COMPACTED) != 0;
                if (r.position() != expected && !gapAllowed) {
                    // A valid record in the wrong place: records are missing or were written twice.
                    damages.add(new Damage(file, groupStart >= 0 ? groupStart : offset,
                            "position " + r.position() + " where " + expected + " was expected", false));
                    dropOpenGroup();
                    if (stopAtDamage) {
                        return;
                    }
                }
                expected = r.position();
                if (groupStart < 0) {
                    groupStart = offset;
                }
                openGroup.add(new Pending(offset, d.length(), r));
                if (r.lastOfGroup()) {
                    for (Pending p : openGroup) {
                        visitor.record(file, p.offset(), p.length(), p.record());
                        records++;
                        lastPosition = p.record().position();
                    }
                    openGroup.clear();
                    groupStart = -1;
                    validEnd = offset + d.length();
                }
                offset += d.length();
                expected++;
            }
            if (groupStart >= 0) {
                int at = groupStart;
                dropOpenGroup();
                damages.add(new Damage(file, at, "atomic write incomplete at end of segment", last));
            }
        }

        private void dropOpenGroup() {
            openGroup.clear();
            groupStart = -1;
        }

        /**
         * Whether a valid record from {@code from} on starts a write of its own. Only the last write can be torn
         * (each write is fsynced before the next begins), but its pages may reach the disk out of order, leaving
         * valid records of the same write after the damage. A record that starts a later write proves the damage
         * lies in a write that was complete, hence acknowledged: damage in the middle.
         */
        private boolean laterWriteFollows(int from) {
            for (int at = from; at >= 0; ) {
                if ((bytes.flagsAt(at) & RecordCodec.FLAG_WRITE_START) != 0) {
                    return true;
                }
                at = nextValid(at + bytes.decode(at, maxRecordBytes).length());
            }
            return false;
        }

        /** Offset of the first record at or after {@code from} that decodes with a good CRC, or -1. */
        private int nextValid(int from) {
            for (int at = from; at + RecordCodec.HEADER_SIZE <= bytes.size(); at++) {
                if (bytes.hasMagicAt(at) && bytes.decode(at, maxRecordBytes).ok()) {
                    return at;
                }
            }
            return -1;
        }
    }
}
