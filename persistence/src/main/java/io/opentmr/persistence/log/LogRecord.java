package io.opentmr.persistence.log;

import java.util.List;

/**
 * One decoded record of the log. {@code position} is global and dense over the whole log; {@code epoch} is the
 * writer's lease epoch when the record was written (DESIGN §6). For a tombstone, {@code sequenceNr} is the highest
 * deleted sequence number and the payload is empty.
 *
 * @param lastOfGroup false while more records of the same atomic write follow this one
 */
public record LogRecord(
        RecordType type,
        boolean lastOfGroup,
        long epoch,
        long position,
        String persistenceId,
        long sequenceNr,
        long timestamp,
        String writerUuid,
        int serializerId,
        String manifest,
        String adapterManifest,
        List<String> tags,
        byte[] payload) {

    public LogRecord {
        tags = List.copyOf(tags);
    }

    /** A record to append: position and epoch are assigned by the log when it is written. */
    public static LogRecord event(String persistenceId, long sequenceNr, long timestamp, String writerUuid,
            int serializerId, String manifest, String adapterManifest, List<String> tags, byte[] payload) {
        return new LogRecord(RecordType.EVENT, true, 0L, 0L, persistenceId, sequenceNr, timestamp, writerUuid,
                serializerId, manifest, adapterManifest, tags, payload);
    }

    static LogRecord tombstone(String persistenceId, long toSequenceNr, long timestamp) {
        return new LogRecord(RecordType.TOMBSTONE, true, 0L, 0L, persistenceId, toSequenceNr, timestamp, "", 0, "",
                "", List.of(), new byte[0]);
    }
}
