package io.opentmr.protocol;

/** Whether a CRYPT request encrypts or decrypts its data. */
public enum CryptDirection {
    ENCRYPT(1),
    DECRYPT(2);

    private final int code;

    CryptDirection(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    public static CryptDirection fromCode(int code) {
        for (CryptDirection direction : values()) {
            if (direction.code == code) {
                return direction;
            }
        }
        return null;
    }
}
