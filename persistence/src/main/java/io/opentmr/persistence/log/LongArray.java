package io.opentmr.persistence.log;

import java.util.Arrays;
import java.util.function.LongPredicate;

/** A growable array of primitive longs: the index holds millions of positions, boxed they would triple its size. */
final class LongArray {
    private long[] values = new long[8];
    private int size;

    void add(long value) {
        if (size == values.length) {
            values = Arrays.copyOf(values, size * 2);
        }
        values[size++] = value;
    }

    long get(int i) {
        return values[i];
    }

    int size() {
        return size;
    }

    /** Drops the first {@code n} values. */
    void dropFirst(int n) {
        System.arraycopy(values, n, values, 0, size - n);
        size -= n;
    }

    /** Keeps only the values {@code keep} accepts, in order; returns how many were removed. */
    int retainIf(LongPredicate keep) {
        int kept = 0;
        for (int i = 0; i < size; i++) {
            if (keep.test(values[i])) {
                values[kept++] = values[i];
            }
        }
        int removed = size - kept;
        size = kept;
        return removed;
    }

    /** Index of the first value not below {@code key}; values must be ascending. */
    int lowerBound(long key) {
        int lo = 0;
        int hi = size;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (values[mid] < key) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }
}
