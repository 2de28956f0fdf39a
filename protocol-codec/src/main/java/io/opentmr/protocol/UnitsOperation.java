package io.opentmr.protocol;

/** What a PEER_UNITS request does to a TMR copy's unit counter. */
public enum UnitsOperation implements WireCode {
    /** Report the counter, change nothing. */
    READ(0),
    /** Subtract the value; refused if the counter would go below zero. */
    DECREMENT(1),
    /** Set the counter to the value: re-sync of a returning backend to the majority. */
    SET(2);

    private final int code;

    UnitsOperation(int code) {
        this.code = code;
    }

    @Override
    public int code() {
        return code;
    }

    public static UnitsOperation fromCode(int code) {
        return WireCode.find(values(), code);
    }
}
