package io.opentmr.protocol;

import java.util.Arrays;

/**
 * What a backend's allocations of a node's group are, per range of the handle id space, in 12 bytes a range: how many,
 * and the sum of a 64-bit hash of each one's handle id and license (docs/protocol.md, LIST_DIGESTS). A node computes
 * the same from its seat tables; a range whose count and sum both agree holds the same allocations on both sides (the
 * chance that two different sets agree is about 2^-64 per range), so a take-over lists only the ranges that differ.
 *
 * <p>The space is cut as {@code LIST_ALLOCATIONS} listings cut it: range {@code k} of {@code n} holds the ids above
 * {@link #rangeStart(int, int) rangeStart(k, n)} up to the start of range {@code k + 1} (unsigned), the last one up to
 * the highest unsigned id. A node draws its handle ids at random from 1 to 2^63-1, so the ranges hold about as many
 * each. Mutable, single-threaded.
 */
public final class AllocationDigests {

    /** Ranges at most in one LIST_DIGESTS (an ALLOCATION_DIGESTS of 48 KiB). */
    public static final int MAX_RANGES = 4096;

    private final long[] counts;
    private final long[] sums;

    /** {@code ranges} empty ranges, 1 to {@link #MAX_RANGES}. */
    public AllocationDigests(int ranges) {
        checkRanges(ranges);
        this.counts = new long[ranges];
        this.sums = new long[ranges];
    }

    /** Read off the wire or computed elsewhere; the arrays are copied. */
    public AllocationDigests(long[] counts, long[] sums) {
        if (counts.length != sums.length) {
            throw new IllegalArgumentException(counts.length + " counts against " + sums.length + " sums");
        }
        checkRanges(counts.length);
        for (long count : counts) {
            Check.u32(count, "count");
        }
        this.counts = counts.clone();
        this.sums = sums.clone();
    }

    private static void checkRanges(int ranges) {
        if (ranges < 1 || ranges > MAX_RANGES) {
            throw new IllegalArgumentException("ranges must be 1 to " + MAX_RANGES + ": " + ranges);
        }
    }

    public int ranges() {
        return counts.length;
    }

    public long count(int range) {
        return counts[range];
    }

    public long sum(int range) {
        return sums[range];
    }

    /** Counts one allocation. */
    public void add(long handleId, LicenseKey key) {
        int range = rangeOf(handleId, counts.length);
        counts[range]++;
        sums[range] += hash(handleId, key);
    }

    /** Whether range {@code range} holds the same allocations here and in {@code other} (of as many ranges). */
    public boolean sameIn(AllocationDigests other, int range) {
        return counts[range] == other.counts[range] && sums[range] == other.sums[range];
    }

    /** The range of {@code ranges} that {@code handleId} falls in. */
    public static int rangeOf(long handleId, int ranges) {
        if (handleId <= 0) {
            // 0, and ids from 2^63 on (negative as signed): the first range holds 0, the last the high half.
            return handleId == 0 ? 0 : ranges - 1;
        }
        long width = Long.MAX_VALUE / ranges;
        return (int) Math.min(ranges - 1, (handleId - 1) / width);
    }

    /** Where range {@code k} of {@code ranges} starts (exclusive: it holds the ids above this one). */
    public static long rangeStart(int k, int ranges) {
        return Long.MAX_VALUE / ranges * k;
    }

    /**
     * Where range {@code k} of {@code ranges} ends (inclusive): the start of the next one, or the highest unsigned id
     * (-1) for the last one.
     */
    public static long rangeEnd(int k, int ranges) {
        return k == ranges - 1 ? -1L : rangeStart(k + 1, ranges);
    }

    /**
     * One allocation's hash: the 64-bit finaliser of MurmurHash3 over its handle id and its license key, so the hash
     * of a handle under one license is unrelated to that of the same id under another.
     */
    static long hash(long handleId, LicenseKey key) {
        long keyBits = key.firmCode() * 0x9E3779B97F4A7C15L ^ key.productCode() * 0xC2B2AE3D27D4EB4FL
                ^ key.tmrId() * 0x165667B19E3779F9L;
        return mix(handleId ^ mix(keyBits));
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 33)) * 0xFF51AFD7ED558CCDL;
        z = (z ^ (z >>> 33)) * 0xC4CEB9FE1A85EC53L;
        return z ^ (z >>> 33);
    }

    long[] counts() {
        return counts.clone();
    }

    long[] sums() {
        return sums.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AllocationDigests other && Arrays.equals(counts, other.counts)
                && Arrays.equals(sums, other.sums);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(counts) + Arrays.hashCode(sums);
    }

    /** How many allocations all ranges count. */
    public long total() {
        long total = 0;
        for (long count : counts) {
            total += count;
        }
        return total;
    }

    @Override
    public String toString() {
        return "AllocationDigests[" + counts.length + " ranges, " + total() + " allocations]";
    }
}
