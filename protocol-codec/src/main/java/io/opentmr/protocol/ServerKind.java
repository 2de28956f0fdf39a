package io.opentmr.protocol;

/** What answered a HELLO: a plain backend, the active TMR node or the standby. */
public enum ServerKind implements WireCode {
    BACKEND(1),
    TMR_ACTIVE(2),
    TMR_STANDBY(3);

    private final int code;

    ServerKind(int code) {
        this.code = code;
    }

    @Override
    public int code() {
        return code;
    }

    public static ServerKind fromCode(int code) {
        return WireCode.find(values(), code);
    }
}
