package io.opentmr.persistence.log;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Cuts a closed log directory back to the records below a position, in an order that survives a crash at any step:
 * every intermediate state on disk is a prefix of the old log at least as long as the target, which opens as a valid
 * log (and a second truncation finishes the job). {@link SegmentedLog#truncateFrom} runs it with its files closed.
 *
 * <ol>
 *   <li>Segments whose first position is at or above the target are removed, newest first, the directory fsynced
 *       after each: a removal that reached the disk before an older one would leave a hole in the middle.</li>
 *   <li>The newest remaining segment is cut at its first record at or above the target and fsynced.</li>
 * </ol>
 */
final class Truncation {

    private static final Logger LOG = LoggerFactory.getLogger(Truncation.class);

    /** Called before each step that changes the disk; a test throws from it to stop there, as a crash would. */
    @FunctionalInterface
    interface Steps {
        void before(String step) throws IOException;
    }

    static final Steps NO_CRASH = step -> {
    };

    private Truncation() {
    }

    static void truncateFrom(Path dir, long position, boolean sync, Steps steps) throws IOException {
        List<Path> files = LogScanner.segmentFiles(dir);
        int keep = files.size();
        while (keep > 0 && LogScanner.firstPositionOf(files.get(keep - 1)) >= position) {
            Path doomed = files.get(keep - 1);
            steps.before("remove " + doomed.getFileName());
            Files.delete(doomed);
            if (sync) {
                syncDirectory(dir);
            }
            LOG.info("journal {}: truncation from position {} removed segment {}", dir, position,
                    doomed.getFileName());
            keep--;
        }
        if (keep == 0) {
            return;
        }
        Path last = files.get(keep - 1);
        long cut = firstOffsetAtOrAbove(last, position);
        if (cut < 0) {
            return;
        }
        steps.before("cut " + last.getFileName() + " at " + cut);
        try (FileChannel ch = FileChannel.open(last, StandardOpenOption.WRITE)) {
            ch.truncate(cut);
            if (sync) {
                ch.force(true);
            }
        }
        LOG.info("journal {}: truncation from position {} cut segment {} at offset {}", dir, position,
                last.getFileName(), cut);
    }

    /** Offset of the first record at or above {@code position} in {@code segment}; -1 if none (before any damage). */
    private static long firstOffsetAtOrAbove(Path segment, long position) throws IOException {
        try (SegmentReader reader = new SegmentReader(segment)) {
            for (int at = 0; at < reader.size(); ) {
                RecordCodec.Decoded d = reader.decode(at, RecordCodec.MAX_RECORD_BYTES);
                if (!d.ok()) {
                    // Damage: opening deals with it (a torn tail is cut there anyway).
                    return -1;
                }
                if (d.record().position() >= position) {
                    return at;
                }
                at += d.length();
            }
            return -1;
        }
    }

    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            LOG.debug("journal {}: directory fsync not supported: {}", dir, e.toString());
        }
    }
}
