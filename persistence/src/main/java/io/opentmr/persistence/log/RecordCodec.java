package io.opentmr.persistence.log;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * The on-disk record layout, documented in docs/journal-format.md. Big-endian throughout.
 *
 * <pre>
 *  0 magic      u32  0x4F544D52 ("OTMR")
 *  4 version    u8   2 (1 is read: no metadata block)
 *  5 type       u8   1 event, 2 tombstone
 *  6 flags      u8   bit 0: more records of the same atomic write follow;
 *                    bit 1: first record of a write (one group commit, or its part in one segment);
 *                    bit 2: copied by compaction (positions before it in its segment may be missing)
 *  7 reserved   u8   0
 *  8 length     u32  body length in bytes
 * 12 crc32c     u32  over bytes 4..11 and the body
 * 16 body       epoch i64, position i64, sequenceNr i64, timestamp i64, serializerId i32,
 *               persistenceId, writerUuid, manifest, adapterManifest (each u16 length + UTF-8),
 *               tag count u16 + tags (u16 length + UTF-8), payload length u32 + payload,
 *               version 2: metadata length i32 (-1: none), and if not -1: metadata serializerId i32,
 *               metadata manifest (u16 length + UTF-8), metadata bytes
 * </pre>
 */
public final class RecordCodec {

    public static final int MAGIC = 0x4F544D52;
    /** The version written. */
    public static final byte VERSION = 2;
    /** The first version, still read: it has no metadata block. */
    static final byte VERSION_1 = 1;
    public static final int HEADER_SIZE = 16;
    /**
     * The largest record the format allows: the largest segment-size. Reading (recovery, replay, tools) checks
     * plausibility against this, never against the configured segment-size, which only limits new writes: a
     * record written under a larger segment-size stays valid after the setting is lowered.
     */
    public static final int MAX_RECORD_BYTES = 1 << 30;
    static final int FLAG_GROUP_CONTINUES = 1;
    static final int FLAG_WRITE_START = 2;
    /** Set on every record compaction copied: positions before it in its segment may be missing. */
    static final int FLAG_COMPACTED = 4;
    /** Offsets inside the body of the fields the writer fills in at write time. */
    static final int BODY_EPOCH = 0;
    static final int BODY_POSITION = 8;
    private static final int FIXED_BODY_V1 = 8 + 8 + 8 + 8 + 4 + 2 * 4 + 2 + 4;
    private static final int FIXED_BODY = FIXED_BODY_V1 + 4;

    private RecordCodec() {
    }

    /**
     * Encodes a record whole. Throws {@link IllegalArgumentException} for a field the format cannot hold (a string
     * over 65535 UTF-8 bytes, more than 65535 tags, a record over {@code maxRecordBytes}).
     */
    public static byte[] encode(LogRecord record, int maxRecordBytes) {
        byte[] pid = utf8(record.persistenceId(), "persistence id");
        byte[] writer = utf8(record.writerUuid(), "writer uuid");
        byte[] manifest = utf8(record.manifest(), "manifest");
        byte[] adapter = utf8(record.adapterManifest(), "adapter manifest");
        if (record.tags().size() > 0xFFFF) {
            throw new IllegalArgumentException("too many tags: " + record.tags().size());
        }
        List<byte[]> tags = new ArrayList<>(record.tags().size());
        long bodyLength = FIXED_BODY + pid.length + writer.length + manifest.length + adapter.length
                + record.payload().length;
        LogRecord.Metadata metadata = record.metadata();
        byte[] metadataManifest = null;
        if (metadata != null) {
            metadataManifest = utf8(metadata.manifest(), "metadata manifest");
            bodyLength += 4 + 2 + metadataManifest.length + metadata.bytes().length;
        }
        for (String tag : record.tags()) {
            byte[] bytes = utf8(tag, "tag");
            tags.add(bytes);
            bodyLength += 2 + bytes.length;
        }
        if (HEADER_SIZE + bodyLength > maxRecordBytes) {
            throw new IllegalArgumentException("record of " + (HEADER_SIZE + bodyLength)
                    + " bytes exceeds the maximum of " + maxRecordBytes + " bytes");
        }
        ByteBuffer buf = ByteBuffer.allocate(HEADER_SIZE + (int) bodyLength);
        buf.putInt(MAGIC).put(VERSION).put(record.type().code())
                .put((byte) (record.lastOfGroup() ? 0 : FLAG_GROUP_CONTINUES)).put((byte) 0)
                .putInt((int) bodyLength).putInt(0);
        buf.putLong(record.epoch()).putLong(record.position()).putLong(record.sequenceNr())
                .putLong(record.timestamp()).putInt(record.serializerId());
        putString(buf, pid);
        putString(buf, writer);
        putString(buf, manifest);
        putString(buf, adapter);
        buf.putShort((short) tags.size());
        for (byte[] tag : tags) {
            putString(buf, tag);
        }
        buf.putInt(record.payload().length).put(record.payload());
        if (metadata == null) {
            buf.putInt(-1);
        } else {
            buf.putInt(metadata.bytes().length).putInt(metadata.serializerId());
            putString(buf, metadataManifest);
            buf.put(metadata.bytes());
        }
        byte[] bytes = buf.array();
        sealCrc(bytes, 0);
        return bytes;
    }

    /** Marks an encoded record as not the last of its atomic write. The CRC is computed later by {@link #stamp}. */
    static void markGroupContinues(byte[] encoded) {
        encoded[6] = (byte) (encoded[6] | FLAG_GROUP_CONTINUES);
    }

    /** Marks the encoded record at {@code offset} as the first of a write and recomputes its CRC. */
    static void markWriteStart(byte[] buf, int offset) {
        buf[offset + 6] = (byte) (buf[offset + 6] | FLAG_WRITE_START);
        sealCrc(buf, offset);
    }

    /**
     * Marks the encoded record at {@code offset} as copied by compaction (and, if {@code first}, as the first of a
     * write: the compacted file is written and synced as one) and recomputes its CRC.
     */
    static void markCompacted(byte[] buf, int offset, boolean first) {
        int flags = buf[offset + 6] | FLAG_COMPACTED;
        if (first) {
            flags |= FLAG_WRITE_START;
        }
        buf[offset + 6] = (byte) flags;
        sealCrc(buf, offset);
    }

    /** Clears the first-of-a-write mark of the encoded record at {@code offset}, if set, and recomputes its CRC. */
    static void clearWriteStart(byte[] buf, int offset) {
        if ((buf[offset + 6] & FLAG_WRITE_START) != 0) {
            buf[offset + 6] = (byte) (buf[offset + 6] & ~FLAG_WRITE_START);
            sealCrc(buf, offset);
        }
    }

    /** Whether the (valid) record at {@code offset} was copied by compaction. */
    static boolean isCompacted(byte[] buf, int offset) {
        return (buf[offset + 6] & FLAG_COMPACTED) != 0;
    }

    /**
     * The longest prefix of {@code records} (valid encoded records, the first at position {@code from} or later) that
     * ends with the last record of an atomic write and takes at most {@code maxBytes}; if the first atomic write alone
     * is larger, just that one. Empty if {@code records} hold no complete atomic write.
     */
    static SegmentedLog.Chunk wholeGroups(byte[] records, long from, int maxBytes) {
        ByteBuffer view = ByteBuffer.wrap(records);
        int end = 0;
        long next = from;
        for (int off = 0; off + HEADER_SIZE <= records.length; ) {
            int length = HEADER_SIZE + view.getInt(off + 8);
            if ((records[off + 6] & FLAG_GROUP_CONTINUES) == 0) {
                if (end > 0 && off + length > maxBytes) {
                    break;
                }
                end = off + length;
                next = view.getLong(off + HEADER_SIZE + BODY_POSITION) + 1;
            }
            off += length;
        }
        return new SegmentedLog.Chunk(from, next, end == records.length ? records : Arrays.copyOf(records, end));
    }

    /** Whether the (valid) record at {@code offset} is the first of a write. */
    static boolean isWriteStart(byte[] buf, int offset) {
        return (buf[offset + 6] & FLAG_WRITE_START) != 0;
    }

    /** Writes epoch and position into an encoded record at {@code offset} of {@code buf} and recomputes its CRC. */
    static void stamp(byte[] buf, int offset, long epoch, long position) {
        ByteBuffer view = ByteBuffer.wrap(buf);
        view.putLong(offset + HEADER_SIZE + BODY_EPOCH, epoch);
        view.putLong(offset + HEADER_SIZE + BODY_POSITION, position);
        sealCrc(buf, offset);
    }

    private static void sealCrc(byte[] buf, int offset) {
        ByteBuffer view = ByteBuffer.wrap(buf);
        int bodyLength = view.getInt(offset + 8);
        view.putInt(offset + 12, crc(buf, offset, bodyLength));
    }

    private static int crc(byte[] buf, int offset, int bodyLength) {
        CRC32C crc = new CRC32C();
        crc.update(buf, offset + 4, 8);
        crc.update(buf, offset + HEADER_SIZE, bodyLength);
        return (int) crc.getValue();
    }

    /** Total size of the encoded record starting at {@code offset}. */
    static int encodedLength(byte[] buf, int offset) {
        return HEADER_SIZE + ByteBuffer.wrap(buf).getInt(offset + 8);
    }

    /**
     * Outcome of decoding at one offset: a record and its length, or why there is none. {@code truncated} means the
     * bytes end before the record does (what a torn write leaves).
     */
    public record Decoded(LogRecord record, int length, String problem, boolean truncated) {
        public boolean ok() {
            return record != null;
        }
    }

    /** Decodes the record at {@code offset}, reading no further than {@code limit}. Never throws on bad bytes. */
    public static Decoded decode(byte[] buf, int offset, int limit, int maxRecordBytes) {
        int available = limit - offset;
        if (available < HEADER_SIZE) {
            return new Decoded(null, 0, "incomplete header (" + available + " bytes)", true);
        }
        ByteBuffer view = ByteBuffer.wrap(buf, 0, limit);
        if (view.getInt(offset) != MAGIC) {
            return new Decoded(null, 0, "bad magic", false);
        }
        byte version = buf[offset + 4];
        if (version != VERSION && version != VERSION_1) {
            return new Decoded(null, 0, "unknown format version " + version, false);
        }
        RecordType type = RecordType.fromCode(buf[offset + 5]);
        if (type == null) {
            return new Decoded(null, 0, "unknown record type " + buf[offset + 5], false);
        }
        long bodyLength = view.getInt(offset + 8) & 0xFFFFFFFFL;
        int fixedBody = version == VERSION_1 ? FIXED_BODY_V1 : FIXED_BODY;
        if (bodyLength < fixedBody || HEADER_SIZE + bodyLength > maxRecordBytes) {
            return new Decoded(null, 0, "implausible length " + bodyLength, false);
        }
        if (HEADER_SIZE + bodyLength > available) {
            return new Decoded(null, 0, "record of " + (HEADER_SIZE + bodyLength) + " bytes but only "
                    + available + " bytes left", true);
        }
        int stored = view.getInt(offset + 12);
        if (stored != crc(buf, offset, (int) bodyLength)) {
            return new Decoded(null, 0, "CRC32C mismatch", false);
        }
        try {
            view.position(offset + HEADER_SIZE);
            long epoch = view.getLong();
            long position = view.getLong();
            long sequenceNr = view.getLong();
            long timestamp = view.getLong();
            int serializerId = view.getInt();
            String pid = getString(view);
            String writer = getString(view);
            String manifest = getString(view);
            String adapter = getString(view);
            int tagCount = Short.toUnsignedInt(view.getShort());
            List<String> tags = new ArrayList<>(tagCount);
            for (int i = 0; i < tagCount; i++) {
                tags.add(getString(view));
            }
            int payloadLength = view.getInt();
            byte[] payload = new byte[payloadLength];
            view.get(payload);
            LogRecord.Metadata metadata = null;
            if (version != VERSION_1) {
                int metadataLength = view.getInt();
                if (metadataLength < -1) {
                    return new Decoded(null, 0, "negative metadata length " + metadataLength, false);
                }
                if (metadataLength >= 0) {
                    int metadataSerializer = view.getInt();
                    String metadataManifest = getString(view);
                    byte[] bytes = new byte[metadataLength];
                    view.get(bytes);
                    metadata = new LogRecord.Metadata(metadataSerializer, metadataManifest, bytes);
                }
            }
            if (view.position() != offset + HEADER_SIZE + bodyLength) {
                return new Decoded(null, 0, "fields do not fill the record length", false);
            }
            boolean last = (buf[offset + 6] & FLAG_GROUP_CONTINUES) == 0;
            LogRecord record = new LogRecord(type, last, epoch, position, pid, sequenceNr, timestamp, writer,
                    serializerId, manifest, adapter, tags, payload, metadata);
            return new Decoded(record, HEADER_SIZE + (int) bodyLength, null, false);
        } catch (RuntimeException e) {
            // A valid CRC over inconsistent fields means a writer bug, not a torn write; report it like damage.
            return new Decoded(null, 0, "malformed fields: " + e, false);
        }
    }

    private static byte[] utf8(String value, String what) {
        byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
        if (bytes.length > 0xFFFF) {
            throw new IllegalArgumentException(what + " longer than 65535 UTF-8 bytes");
        }
        return bytes;
    }

    private static void putString(ByteBuffer buf, byte[] bytes) {
        buf.putShort((short) bytes.length).put(bytes);
    }

    private static String getString(ByteBuffer buf) {
        int length = Short.toUnsignedInt(buf.getShort());
        byte[] bytes = new byte[length];
        buf.get(bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
