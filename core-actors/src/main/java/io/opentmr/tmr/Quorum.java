package io.opentmr.tmr;

import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.ProductInfo;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Objects;
import java.util.Optional;

/**
 * The copies of one TMR license {@code (firm, product, TMR-Id)} on the three backends, and which of them
 * count. A copy counts only when every property of its product item is identical to another copy's
 * (what changes with use — seats in use, units left, the usage period's start — is not compared); the
 * license is valid with two counted copies. A copy that differs from the two others is not counted: that
 * is an integrity problem an operator must see.
 */
public final class Quorum {

    private final LicenseKey key;
    private final ProductInfo[] copies;
    private final ProductInfo[] raw;

    public Quorum(LicenseKey key, int backends) {
        this.key = key;
        this.copies = new ProductInfo[backends];
        this.raw = new ProductInfo[backends];
    }

    public LicenseKey key() {
        return key;
    }

    /** Records what one backend holds now (null: nothing, or the backend is down); true if that changed. */
    public boolean update(int backend, ProductInfo copy) {
        ProductInfo identity = copy == null ? null : identity(copy);
        raw[backend] = copy;
        if (Objects.equals(copies[backend], identity)) {
            return false;
        }
        copies[backend] = identity;
        return true;
    }

    /** The form that two or more copies share, if any. */
    public Optional<ProductInfo> agreed() {
        for (int i = 0; i < copies.length; i++) {
            if (copies[i] == null) {
                continue;
            }
            for (int j = i + 1; j < copies.length; j++) {
                if (copies[i].equals(copies[j])) {
                    return Optional.of(copies[i]);
                }
            }
        }
        return Optional.empty();
    }

    /** The backends whose copy counts. */
    public BitSet counted() {
        BitSet counted = new BitSet(copies.length);
        agreed().ifPresent(form -> {
            for (int i = 0; i < copies.length; i++) {
                if (form.equals(copies[i])) {
                    counted.set(i);
                }
            }
        });
        return counted;
    }

    /** Backends that hold a copy which does not count: it differs from the agreed one, or no two agree. */
    public BitSet differing() {
        BitSet differing = new BitSet(copies.length);
        Optional<ProductInfo> form = agreed();
        for (int i = 0; i < copies.length; i++) {
            if (copies[i] != null && (form.isEmpty() || !form.get().equals(copies[i]))) {
                differing.set(i);
            }
        }
        return differing;
    }

    /** Backends that hold a copy now. */
    public int copiesHeld() {
        return (int) Arrays.stream(copies).filter(Objects::nonNull).count();
    }

    /**
     * Backends whose copy differs from another one held now: an integrity problem. A copy alone is not one: the
     * other backends may not have been read yet.
     */
    public BitSet conflicting() {
        return copiesHeld() >= 2 ? differing() : new BitSet(copies.length);
    }

    /** Whether {@code backend} holds a copy now. */
    public boolean holds(int backend) {
        return copies[backend] != null;
    }

    public boolean valid() {
        return counted().cardinality() >= 2;
    }

    /** Whether any backend holds a copy at all (so that a missing quorum says 130, not 200). */
    public boolean known() {
        return Arrays.stream(copies).anyMatch(Objects::nonNull);
    }

    /**
     * When the usage period started by two counted copies: the second earliest start among them (epoch
     * milliseconds; 0 while fewer than two started or the item has no usage period).
     */
    public long agreedUsageStart() {
        long[] starts = counted().stream().mapToLong(i -> raw[i].usagePeriodSeconds() == 0 ? 0
                : raw[i].usageStartedAtMillis()).filter(start -> start != 0).sorted().toArray();
        return starts.length >= 2 ? starts[1] : 0;
    }

    /** Counted copies whose usage period started after the agreed start, or not at all. */
    public BitSet usageBehind() {
        BitSet behind = new BitSet(copies.length);
        long agreed = agreedUsageStart();
        if (agreed != 0) {
            counted().stream().filter(i -> raw[i].usageStartedAtMillis() == 0 || raw[i].usageStartedAtMillis() > agreed)
                    .forEach(behind::set);
        }
        return behind;
    }

    /** The majority of the counted copies' units left, or -1 when no two agree. */
    public long majorityUnits() {
        BitSet counted = counted();
        for (int i = counted.nextSetBit(0); i >= 0; i = counted.nextSetBit(i + 1)) {
            for (int j = counted.nextSetBit(i + 1); j >= 0; j = counted.nextSetBit(j + 1)) {
                if (raw[i].units() == raw[j].units()) {
                    return raw[i].units();
                }
            }
        }
        return -1;
    }

    /** The product item with what changes with use taken out: what the copies must agree on. */
    static ProductInfo identity(ProductInfo copy) {
        return new ProductInfo(copy.firmCode(), copy.productCode(), copy.featureMap(), copy.text(), copy.quantity(),
                0, copy.tmrId(), copy.hasUnitCounter(), 0, copy.expiresAtMillis(), copy.activatesAtMillis(),
                copy.usagePeriodSeconds(), 0, copy.borrowMaxSeconds());
    }
}
