package io.opentmr.protocol;

/**
 * Error numbers sent in ERROR frames. The numbers are CodeMeter's, so that its users recognise them;
 * {@code docs/protocol.md} says which ones we send and when.
 */
public enum CmError implements WireCode {
    UNIT_COUNTER_ZERO(31, "the unit counter is zero"),
    UNIT_COUNTER_TOO_SMALL(32, "the unit counter is smaller than the requested decrement"),
    NO_UNIT_COUNTER(33, "the product item has no unit counter"),
    EXPIRED(35, "the expiration time of the license has passed"),
    NOT_YET_ACTIVATED(37, "the activation time of the license has not been reached"),
    USAGE_PERIOD_ELAPSED(71, "the usage period of the license has elapsed"),
    USAGE_PERIOD_START_INVALID(72, "the usage period started in the future; the server clock was set back"),
    NETWORK_FAULT(100, "network fault"),
    SERVER_NOT_FOUND(101, "no license server could be reached"),
    INVALID_PARAMETER(105, "invalid parameter"),
    INVALID_HANDLE(106, "invalid handle"),
    REDUNDANCY_SERVER_MISSING(130, "redundancy server missing: fewer than 2 of 3 TMR copies are available"),
    TMR_COPIES_DISAGREE(133, "the TMR copies disagree"),
    TMR_LEASE_REFUSED(134, "the lease certificate is missing, forged, expired or stale"),
    TMR_PEER_NOT_AUTHENTICATED(135, "the TMR peer is not authenticated"),
    ENTRY_NOT_FOUND(200, "entry not found"),
    BOX_NOT_FOUND(201, "container not found"),
    NO_MORE_LICENSES(212, "no more licenses available"),
    EXCLUSIVE_CONFLICT(213, "the license is in use in a conflicting access mode"),
    ACCESS_DENIED(231, "access denied"),
    REQUEST_OVERLOAD(309, "too many requests in flight; request rejected");

    private final int code;
    private final String text;

    CmError(int code, String text) {
        this.code = code;
        this.text = text;
    }

    /** The CodeMeter error number. */
    @Override
    public int code() {
        return code;
    }

    /** The default text, used when an ERROR frame carries no more specific one. */
    public String text() {
        return text;
    }

    /** The constant for a number, or {@code null} for a number this protocol does not define. */
    public static CmError fromCode(int code) {
        return WireCode.find(values(), code);
    }
}
