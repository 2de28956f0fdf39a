package io.opentmr.persistence.log;

import java.util.Arrays;

/** A growable array of primitive ints (record offsets within a segment). */
final class IntArray {
    private int[] values = new int[16];
    private int size;

    void add(int value) {
        if (size == values.length) {
            values = Arrays.copyOf(values, size * 2);
        }
        values[size++] = value;
    }

    int get(int i) {
        return values[i];
    }

    int size() {
        return size;
    }
}
