package io.opentmr.protocol;

/** An enumeration whose constants travel as a number; {@link #find} maps the number back. */
interface WireCode {

    int code();

    /** The constant with {@code code}, or {@code null} when no constant has it. */
    static <E extends Enum<E> & WireCode> E find(E[] values, int code) {
        for (E value : values) {
            if (value.code() == code) {
                return value;
            }
        }
        return null;
    }
}
