package io.opentmr.protocol;

/** Whether a CRYPT request encrypts or decrypts its data. */
public enum CryptDirection implements WireCode {
    ENCRYPT(1),
    DECRYPT(2);

    private final int code;

    CryptDirection(int code) {
        this.code = code;
    }

    @Override
    public int code() {
        return code;
    }

    public static CryptDirection fromCode(int code) {
        return WireCode.find(values(), code);
    }
}
