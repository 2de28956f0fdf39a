package io.opentmr.persistence.log;

import io.opentmr.persistence.Await;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/** Compares logs record by record and copies one into another the way a follower does. */
final class LogCopies {
    private LogCopies() {
    }

    /** Every record of the log (events and tombstones, deleted or not) as one line of all its fields. */
    static List<String> records(SegmentedLog log) {
        List<String> out = new ArrayList<>();
        for (LogRecord r : log.readFrom(0, Integer.MAX_VALUE)) {
            out.add(line(r));
        }
        return out;
    }

    static String line(LogRecord r) {
        return r.position() + " e" + r.epoch() + " " + r.type() + " " + r.persistenceId() + ":" + r.sequenceNr()
                + " last=" + r.lastOfGroup() + " t=" + r.timestamp() + " w=" + r.writerUuid() + " s="
                + r.serializerId() + " m=" + r.manifest() + " tags=" + r.tags() + " "
                + HexFormat.of().formatHex(r.payload());
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
