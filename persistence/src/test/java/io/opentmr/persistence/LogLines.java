package io.opentmr.persistence;

import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.SegmentedLog;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/** Logs as lines of text, one a record with all its fields, so tests can compare two logs record for record. */
public final class LogLines {
    private LogLines() {
    }

    /** Every record of the log (events and tombstones, deleted or not) as one line of all its fields. */
    public static List<String> records(SegmentedLog log) {
        List<String> out = new ArrayList<>();
        for (LogRecord r : log.readFrom(0, Integer.MAX_VALUE)) {
            out.add(line(r));
        }
        return out;
    }

    public static String line(LogRecord r) {
        return r.position() + " e" + r.epoch() + " " + r.type() + " " + r.persistenceId() + ":" + r.sequenceNr()
                + " last=" + r.lastOfGroup() + " t=" + r.timestamp() + " w=" + r.writerUuid() + " s="
                + r.serializerId() + " m=" + r.manifest() + " tags=" + r.tags() + " "
                + HexFormat.of().formatHex(r.payload());
    }
}
