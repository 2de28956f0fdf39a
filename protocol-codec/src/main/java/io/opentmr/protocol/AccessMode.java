package io.opentmr.protocol;

/** How a handle uses the seats of a product item; the values are CodeMeter's access mode bits. */
public enum AccessMode implements WireCode {
    /** One seat per handle. */
    USERLIMIT(0x000),
    /** No seat is taken. */
    NOUSERLIMIT(0x100),
    /** All seats, and no one else may access the item. */
    EXCLUSIVE(0x200),
    /** One seat per client host, shared by all handles from that host. */
    STATIONSHARE(0x300);

    private final int code;

    AccessMode(int code) {
        this.code = code;
    }

    @Override
    public int code() {
        return code;
    }

    /** The mode for a wire value, or {@code null} if the value names no mode. */
    public static AccessMode fromCode(int code) {
        return WireCode.find(values(), code);
    }
}
