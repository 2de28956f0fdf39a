package io.opentmr.persistence.log;

import io.opentmr.persistence.Await;
import io.opentmr.persistence.LogLines;
import java.util.List;

/** Compares logs record by record and copies one into another the way a follower does. */
final class LogCopies {
    private LogCopies() {
    }

    static List<String> records(SegmentedLog log) {
        return LogLines.records(log);
    }

    /** Copies what {@code from} has beyond {@code to}'s next position, in chunks of about {@code chunkBytes}. */
    static void copy(SegmentedLog from, SegmentedLog to, int chunkBytes) {
        long next = to.nextPosition();
        while (true) {
            SegmentedLog.Chunk c = from.readChunk(next, chunkBytes);
            if (c.isEmpty()) {
                return;
            }
            next = Await.done(to.appendReplicated(c.from(), c.bytes()));
        }
    }
}
