package io.opentmr.persistence.log;

import java.util.List;

/**
 * One decoded record of the log. {@code position} is global and dense over the whole log; {@code epoch} is the
 * writer's lease epoch when the record was written (DESIGN §6). For a tombstone, {@code sequenceNr} is the highest
 * deleted sequence number and the payload is empty.
 *
 * @param lastOfGroup false while more records of the same atomic write follow this one
 * @param metadata    Pekko's event metadata, or null if the event has none
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
        byte[] payload,
        Metadata metadata) {

    /**
     * Pekko's event metadata ({@code PersistentRepr.metadata}), serialized like the payload. Format version 2 stores
     * it; records of version 1 have none.
     */
    public record Metadata(int serializerId, String manifest, byte[] bytes) {
    }

    public LogRecord {
        tags = List.copyOf(tags);
    }

    /** A record without event metadata. */
    public LogRecord(RecordType type, boolean lastOfGroup, long epoch, long position, String persistenceId,
            long sequenceNr, long timestamp, String writerUuid, int serializerId, String manifest,
            String adapterManifest, List<String> tags, byte[] payload) {
        this(type, lastOfGroup, epoch, position, persistenceId, sequenceNr, timestamp, writerUuid, serializerId,
                manifest, adapterManifest, tags, payload, null);
    }

    /** This record with event metadata (null for none). */
    public LogRecord withMetadata(Metadata m) {
        return new LogRecord(type, lastOfGroup, epoch, position, persistenceId, sequenceNr, timestamp, writerUuid,
                serializerId, manifest, adapterManifest, tags, payload, m);
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
