package io.opentmr.protocol;

/**
 * A container's serial {@code MASK-NUMBER}. The mask tells the kind: 1/2/3 hardware, 128/129 software,
 * 130 universal firm code, 131 virtual TMR container, 140 cloud.
 */
public record Serial(int mask, long number) {

    public static final int MASK_SOFTWARE = 129;
    public static final int MASK_VIRTUAL_TMR = 131;

    /** "No particular container": LICENSE_CONTEXT for the server's default container. */
    public static final Serial NONE = new Serial(0, 0);

    public Serial {
        if (mask < 0 || mask > 0xFF) {
            throw new IllegalArgumentException("mask must be 0..255: " + mask);
        }
        Check.u32(number, "number");
    }

    /** Parses {@code "131-59885682"}. */
    public static Serial parse(String text) {
        int dash = text.indexOf('-');
        if (dash <= 0 || dash == text.length() - 1) {
            throw new IllegalArgumentException("a serial is MASK-NUMBER, e.g. 131-59885682: '" + text + "'");
        }
        try {
            return new Serial(Integer.parseInt(text.substring(0, dash)), Long.parseLong(text.substring(dash + 1)));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("a serial is MASK-NUMBER, e.g. 131-59885682: '" + text + "'", e);
        }
    }

    @Override
    public String toString() {
        return mask + "-" + number;
    }
}
