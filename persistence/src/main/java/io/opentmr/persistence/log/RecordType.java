package io.opentmr.persistence.log;

/** Kind of a log record; the byte value is part of the on-disk format (docs/journal-format.md). */
public enum RecordType {
    /** A persisted event. */
    EVENT((byte) 1),
    /** Marks every event of a persistence id up to the record's sequence number as deleted. */
    TOMBSTONE((byte) 2);

    private final byte code;

    RecordType(byte code) {
        this.code = code;
    }

    public byte code() {
        return code;
    }

    /** The type for an on-disk byte, or {@code null} if the byte names none. */
    static RecordType fromCode(byte code) {
        for (RecordType type : values()) {
            if (type.code == code) {
                return type;
            }
        }
        return null;
    }
}
