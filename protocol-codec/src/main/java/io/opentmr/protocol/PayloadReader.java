package io.opentmr.protocol;

import io.netty.buffer.ByteBuf;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * Reads one frame's payload with every length checked against the bytes present and the
 * {@link CodecLimits} before anything is allocated. Any violation is a {@link ProtocolException}
 * naming the message type, the field and the offset.
 */
final class PayloadReader {

    /** How many strings {@link #ascii} remembers per payload (a power of two). */
    private static final int RECENT_STRINGS = 16;

    private final ByteBuf buf;
    private final int start;
    private final CodecLimits limits;
    private final MessageType type;
    private final int requestId;
    /** Strings read lately from this payload, by a hash of their bytes ({@link #ascii}); made on first use. */
    private String[] recent;
    /** The license key read last from this payload ({@link #again}). */
    private LicenseKey lastKey;

    PayloadReader(ByteBuf payload, CodecLimits limits, MessageType type, int requestId) {
        this.buf = payload;
        this.start = payload.readerIndex();
        this.limits = limits;
        this.type = type;
        this.requestId = requestId;
    }

    int u8(String field) {
        need(1, field);
        return buf.readUnsignedByte();
    }

    int u16(String field) {
        need(2, field);
        return buf.readUnsignedShort();
    }

    long u32(String field) {
        need(4, field);
        return buf.readUnsignedInt();
    }

    long u64(String field) {
        need(8, field);
        return buf.readLong();
    }

    /** A signed 64-bit value that must not be negative (times, epochs). */
    long nonNegative64(String field) {
        int offset = offset();
        long value = u64(field);
        if (value < 0) {
            throw malformed("negative value " + value + " for " + field + " at offset " + offset);
        }
        return value;
    }

    boolean bool(String field) {
        int offset = offset();
        int value = u8(field);
        if (value > 1) {
            throw malformed("boolean " + field + " at offset " + offset + " is " + value + ", not 0 or 1");
        }
        return value == 1;
    }

    String string(String field) {
        int offset = offset();
        need(2, field, " length");
        int length = buf.readUnsignedShort();
        if (length > limits.maxStringBytes()) {
            throw malformed("string " + field + " at offset " + offset + " is " + length
                    + " bytes, more than the limit of " + limits.maxStringBytes());
        }
        need(length, field);
        String ascii = ascii(buf.readerIndex(), length);
        if (ascii != null) {
            buf.skipBytes(length);
            return ascii;
        }
        ByteBuffer utf8 = buf.nioBuffer(buf.readerIndex(), length);
        buf.skipBytes(length);
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(utf8)
                    .toString();
        } catch (CharacterCodingException e) {
            throw malformed("string " + field + " at offset " + offset + " is not valid UTF-8");
        }
    }

    /**
     * The string of {@code length} bytes at {@code from} if they are all ASCII (what names on the wire mostly are),
     * else null (decoded strictly as UTF-8). A string met lately in this payload is returned again, not a copy: a page
     * of allocations names the same few hosts and users thousands of times, and a take-over keeps every page until
     * the listing is complete.
     */
    private String ascii(int from, int length) {
        int hash = 0;
        for (int i = 0; i < length; i++) {
            byte b = buf.getByte(from + i);
            if (b < 0) {
                return null;
            }
            hash = 31 * hash + b; // String.hashCode of the same characters
        }
        if (recent == null) {
            recent = new String[RECENT_STRINGS];
        }
        int slot = (hash ^ (hash >>> 16)) & (RECENT_STRINGS - 1);
        String seen = recent[slot];
        if (seen != null && seen.length() == length && seen.hashCode() == hash && sameAscii(seen, from)) {
            return seen;
        }
        String read = buf.toString(from, length, StandardCharsets.US_ASCII);
        recent[slot] = read;
        return read;
    }

    private boolean sameAscii(String seen, int from) {
        for (int i = 0; i < seen.length(); i++) {
            if (seen.charAt(i) != buf.getByte(from + i)) {
                return false;
            }
        }
        return true;
    }

    /**
     * The key read last from this payload if it equals {@code key}, else {@code key}: a page of allocations names the
     * same few licenses thousands of times, and one object each is what a take-over keeps.
     */
    LicenseKey again(LicenseKey key) {
        if (key.equals(lastKey)) {
            return lastKey;
        }
        lastKey = key;
        return key;
    }

    Bytes bytes(String field) {
        int offset = offset();
        need(4, field, " length");
        long length = buf.readUnsignedInt();
        if (length > buf.readableBytes()) {
            throw malformed("byte field " + field + " at offset " + offset + " claims " + length
                    + " bytes but only " + buf.readableBytes() + " remain in the frame");
        }
        byte[] data = new byte[(int) length];
        buf.readBytes(data);
        return Bytes.wrap(data);
    }

    <T> List<T> list(String field, Function<PayloadReader, T> element) {
        int offset = offset();
        need(4, field, " count");
        long count = buf.readUnsignedInt();
        if (count > limits.maxListItems()) {
            throw malformed("list " + field + " at offset " + offset + " has " + count
                    + " elements, more than the limit of " + limits.maxListItems());
        }
        // Every element is at least one byte: a count beyond the remaining bytes is a lie, refuse it
        // before sizing anything by it.
        if (count > buf.readableBytes()) {
            throw malformed("list " + field + " at offset " + offset + " claims " + count
                    + " elements but only " + buf.readableBytes() + " bytes remain in the frame");
        }
        List<T> result = new ArrayList<>((int) count);
        for (long i = 0; i < count; i++) {
            result.add(element.apply(this));
        }
        return result;
    }

    <E> E enumValue(String field, int code, java.util.function.IntFunction<E> lookup) {
        E value = lookup.apply(code);
        if (value == null) {
            throw malformed("unknown " + field + " 0x" + Integer.toHexString(code));
        }
        return value;
    }

    /** Whether bytes are left: an optional field at the end of a payload is there. */
    boolean readable() {
        return buf.isReadable();
    }

    /** The payload must be consumed exactly: trailing bytes mean the sender and we disagree on the layout. */
    void end() {
        if (buf.isReadable()) {
            throw malformed(buf.readableBytes() + " unexpected trailing bytes at offset " + offset());
        }
    }

    ProtocolException malformed(String problem) {
        return new ProtocolException(CmError.INVALID_PARAMETER, type + ": " + problem, requestId);
    }

    private int offset() {
        return buf.readerIndex() - start;
    }

    private void need(int bytes, String field) {
        need(bytes, field, "");
    }

    /** As {@link #need(int, String)} for the part {@code suffix} of {@code field}, named only if it is missing. */
    private void need(int bytes, String field, String suffix) {
        if (buf.readableBytes() < bytes) {
            throw malformed("payload truncated at offset " + offset() + " reading " + field + suffix
                    + ": needs " + bytes + " bytes, " + buf.readableBytes() + " left");
        }
    }
}
