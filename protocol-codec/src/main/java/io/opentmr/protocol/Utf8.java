package io.opentmr.protocol;

/** UTF-8 length of a Java string, refusing unpaired surrogates that UTF-8 cannot carry. */
final class Utf8 {

    private Utf8() {
    }

    static int encodedLength(String value, String field) {
        int length = 0;
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (c < 0x80) {
                length += 1;
            } else if (c < 0x800) {
                length += 2;
            } else if (Character.isHighSurrogate(c)) {
                if (i + 1 >= value.length() || !Character.isLowSurrogate(value.charAt(i + 1))) {
                    throw new IllegalArgumentException(field + " has an unpaired surrogate at index " + i);
                }
                length += 4;
                i++;
            } else if (Character.isLowSurrogate(c)) {
                throw new IllegalArgumentException(field + " has an unpaired surrogate at index " + i);
            } else {
                length += 3;
            }
        }
        return length;
    }
}
