package io.opentmr.protocol;

import java.util.Arrays;
import java.util.HexFormat;

/**
 * An immutable byte string: resume tokens, nonces, signatures, crypt data and license files travel
 * in messages as values with equality, never as shared mutable arrays.
 */
public final class Bytes {

    public static final Bytes EMPTY = new Bytes(new byte[0]);

    private final byte[] data;

    private Bytes(byte[] data) {
        this.data = data;
    }

    /** Copies {@code data}, so later changes to the array do not reach the message. */
    public static Bytes of(byte... data) {
        return data.length == 0 ? EMPTY : new Bytes(data.clone());
    }

    public static Bytes fromHex(String hex) {
        return of(HexFormat.of().parseHex(hex));
    }

    /** Takes ownership of an array nobody else holds (the decoder's freshly read copy). */
    static Bytes wrap(byte[] data) {
        return data.length == 0 ? EMPTY : new Bytes(data);
    }

    public int length() {
        return data.length;
    }

    public boolean isEmpty() {
        return data.length == 0;
    }

    public byte byteAt(int index) {
        return data[index];
    }

    public byte[] toArray() {
        return data.clone();
    }

    /** The backing array, for the encoder only: it must not be changed. */
    byte[] unsafeArray() {
        return data;
    }

    public String toHex() {
        return HexFormat.of().formatHex(data);
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof Bytes that && Arrays.equals(data, that.data);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(data);
    }

    /** Short form: the length and at most the first 16 bytes, so logs never carry a whole file or secret. */
    @Override
    public String toString() {
        if (data.length <= 16) {
            return "Bytes[" + data.length + ":" + toHex() + "]";
        }
        return "Bytes[" + data.length + ":" + HexFormat.of().formatHex(data, 0, 16) + "…]";
    }
}
