package io.opentmr.backend;

import io.opentmr.protocol.LeaseGrant;

/**
 * What the container holds now, in numbers other threads may read (the gauges of {@code /metrics}): the
 * container writes them after each batch, from its own thread. One per backend, outliving the container
 * instances its gateway starts.
 */
public final class ContainerCounts {

    private volatile int handles;
    private volatile int allocations;
    private volatile int borrows;
    private volatile int products;
    private volatile long activeEpoch;

    void update(ContainerState state) {
        handles = state.handleCount();
        allocations = state.allocationCount();
        borrows = state.borrowCount();
        products = state.productCount();
        activeEpoch = state.highestEpoch(LeaseGrant.ACTIVE_LEASE);
    }

    /** Open client handles. */
    public int handles() {
        return handles;
    }

    /** Seats held for TMR nodes (ALLOCATE). */
    public int allocations() {
        return allocations;
    }

    public int borrows() {
        return borrows;
    }

    public int products() {
        return products;
    }

    /** The highest epoch of the active lease granted or seen; 0 when none. */
    public long activeEpoch() {
        return activeEpoch;
    }
}
