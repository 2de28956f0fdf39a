package io.opentmr.protocol;

/**
 * Bounds the decoder enforces on every frame it reads. A peer that exceeds one gets an ERROR 105 and
 * the connection closes, so no input can make a buffer or a list grow past these.
 *
 * @param maxFrameBytes  largest value of a frame's length field: the bytes after it (version, type,
 *                       request id, payload); default 1 MiB
 * @param maxStringBytes largest UTF-8 length of one string field; at most 65 535 (u16 length)
 * @param maxListItems   largest element count of one list field
 */
public record CodecLimits(int maxFrameBytes, int maxStringBytes, int maxListItems) {

    /** Bytes after the length field that every frame has: version, type, request id. */
    public static final int HEADER_BYTES = 6;

    public static final CodecLimits DEFAULT = new CodecLimits(1 << 20, 8 * 1024, 10_000);

    public CodecLimits {
        if (maxFrameBytes < HEADER_BYTES) {
            throw new IllegalArgumentException("maxFrameBytes must be at least " + HEADER_BYTES + ": " + maxFrameBytes);
        }
        if (maxStringBytes < 0 || maxStringBytes > 0xFFFF) {
            throw new IllegalArgumentException("maxStringBytes must be 0..65535: " + maxStringBytes);
        }
        if (maxListItems < 0) {
            throw new IllegalArgumentException("maxListItems must not be negative: " + maxListItems);
        }
    }
}
