package io.opentmr.backend;

import io.opentmr.license.ProductItemSpec;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.ProductInfo;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One product item and how it is used now. The usage counters are kept up to date event by event,
 * so that a seat decision costs the same with one handle or a hundred thousand.
 */
final class ItemState {

    final long firmCode;
    ProductItemSpec spec;
    List<String> tmrGroupKeys;
    /** The vendor's group key statement of a TMR copy (base64), or null for an item issued without one. */
    String tmrGroupStatement;
    long units;
    Instant usageStartedAt;

    private int userLimitHandles;
    private int noUserLimitHandles;
    private final Map<String, Integer> stationShareHandlesByStation = new HashMap<>();
    private long exclusiveHandle;
    /** The TMR handle id of an EXCLUSIVE allocation, or null: a u64 id may be 0, so not a sentinel. */
    private Long exclusiveAllocation;
    private int borrowed;

    ItemState(long firmCode, ProductItemSpec spec, List<String> tmrGroupKeys, String tmrGroupStatement) {
        this.firmCode = firmCode;
        this.spec = spec;
        this.tmrGroupKeys = tmrGroupKeys;
        this.tmrGroupStatement = tmrGroupStatement;
        this.units = spec.unitCounter() == null ? 0 : spec.unitCounter();
    }

    LicenseKey key() {
        return new LicenseKey(firmCode, spec.productCode(), spec.tmrId());
    }

    boolean hasUnitCounter() {
        return spec.unitCounter() != null;
    }

    /** Seats taken: one per USERLIMIT handle, one per STATIONSHARE station, one per borrow; EXCLUSIVE takes all. */
    long seatsInUse() {
        if (exclusive()) {
            return spec.quantity();
        }
        return (long) userLimitHandles + stationShareHandlesByStation.size() + borrowed;
    }

    /** Handles of any mode plus borrows: who else would an EXCLUSIVE access shut out. */
    long users() {
        int stationShare = stationShareHandlesByStation.values().stream().mapToInt(Integer::intValue).sum();
        return (long) userLimitHandles + noUserLimitHandles + stationShare + borrowed + (exclusive() ? 1 : 0);
    }

    boolean exclusive() {
        return exclusiveHandle != 0 || exclusiveAllocation != null;
    }

    /** Who holds the item EXCLUSIVE, for an error text; call only when {@link #exclusive()}. */
    String exclusiveHolder() {
        return exclusiveHandle != 0 ? "handle " + exclusiveHandle
                : "TMR handle " + Long.toUnsignedString(exclusiveAllocation);
    }

    boolean stationHoldsStationShare(String station) {
        return stationShareHandlesByStation.containsKey(station);
    }

    /** Seats in use if {@code handle} were gone: used to decide whether its borrow fits. */
    long seatsInUseWithout(Handle handle) {
        return switch (handle.mode()) {
            case USERLIMIT -> seatsInUse() - 1;
            case STATIONSHARE -> stationShareHandlesByStation.getOrDefault(handle.station(), 0) == 1
                    ? seatsInUse() - 1 : seatsInUse();
            case EXCLUSIVE -> borrowed;
            case NOUSERLIMIT -> seatsInUse();
        };
    }

    void add(Handle handle) {
        switch (handle.mode()) {
            case USERLIMIT -> userLimitHandles++;
            case NOUSERLIMIT -> noUserLimitHandles++;
            case STATIONSHARE -> stationShareHandlesByStation.merge(handle.station(), 1, Integer::sum);
            case EXCLUSIVE -> exclusiveHandle = handle.id();
        }
    }

    void remove(Handle handle) {
        switch (handle.mode()) {
            case USERLIMIT -> userLimitHandles--;
            case NOUSERLIMIT -> noUserLimitHandles--;
            case STATIONSHARE -> removeStation(handle.station());
            case EXCLUSIVE -> exclusiveHandle = 0;
        }
    }

    /** An allocation counts as a handle of its mode; its station is the client host the node names. */
    void add(TmrAllocation allocation) {
        switch (allocation.mode()) {
            case USERLIMIT -> userLimitHandles++;
            case NOUSERLIMIT -> noUserLimitHandles++;
            case STATIONSHARE -> stationShareHandlesByStation.merge(allocation.station(), 1, Integer::sum);
            case EXCLUSIVE -> exclusiveAllocation = allocation.tmrHandleId();
        }
    }

    void remove(TmrAllocation allocation) {
        switch (allocation.mode()) {
            case USERLIMIT -> userLimitHandles--;
            case NOUSERLIMIT -> noUserLimitHandles--;
            case STATIONSHARE -> removeStation(allocation.station());
            case EXCLUSIVE -> exclusiveAllocation = null;
        }
    }

    private void removeStation(String station) {
        stationShareHandlesByStation.computeIfPresent(station, (host, count) -> count == 1 ? null : count - 1);
    }

    void borrowStarted() {
        borrowed++;
    }

    void borrowEnded() {
        borrowed--;
    }

    ProductInfo toProductInfo() {
        return new ProductInfo(firmCode, spec.productCode(), spec.featureMap(), spec.text(), spec.quantity(),
                Math.min(seatsInUse(), spec.quantity()), spec.tmrId(), hasUnitCounter(), units,
                millis(spec.expiresAt()), millis(spec.activatesAt()),
                spec.usagePeriod() == null ? 0 : spec.usagePeriod().getSeconds(), millis(usageStartedAt),
                spec.borrowMax() == null ? 0 : spec.borrowMax().getSeconds());
    }

    private static long millis(Instant instant) {
        return instant == null ? 0 : Math.max(0, instant.toEpochMilli());
    }
}
