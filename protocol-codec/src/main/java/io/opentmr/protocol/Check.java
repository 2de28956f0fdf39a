package io.opentmr.protocol;

import java.util.List;
import java.util.Objects;

/** Argument checks for message constructors: every message that exists can be encoded. */
final class Check {

    static final long U32_MAX = 0xFFFF_FFFFL;

    private Check() {
    }

    static long u32(long value, String field) {
        if (value < 0 || value > U32_MAX) {
            throw new IllegalArgumentException(field + " must be 0.." + U32_MAX + ": " + value);
        }
        return value;
    }

    static int u8(int value, String field) {
        if (value < 0 || value > 0xFF) {
            throw new IllegalArgumentException(field + " must be 0..255: " + value);
        }
        return value;
    }

    static int u16(int value, String field) {
        if (value < 0 || value > 0xFFFF) {
            throw new IllegalArgumentException(field + " must be 0..65535: " + value);
        }
        return value;
    }

    static long nonNegative(long value, String field) {
        if (value < 0) {
            throw new IllegalArgumentException(field + " must not be negative: " + value);
        }
        return value;
    }

    static String string(String value, String field) {
        Objects.requireNonNull(value, field);
        int length = Utf8.encodedLength(value, field);
        if (length > 0xFFFF) {
            throw new IllegalArgumentException(field + " is " + length + " UTF-8 bytes; at most 65535 fit a frame string");
        }
        return value;
    }

    static <T> T notNull(T value, String field) {
        return Objects.requireNonNull(value, field);
    }

    static <T> List<T> list(List<T> value, String field) {
        Objects.requireNonNull(value, field);
        for (T element : value) {
            Objects.requireNonNull(element, field + " element");
        }
        return List.copyOf(value);
    }
}
