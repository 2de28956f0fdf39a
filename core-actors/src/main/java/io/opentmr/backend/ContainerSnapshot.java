package io.opentmr.backend;

import io.opentmr.CborSerializable;
import io.opentmr.license.ProductItemSpec;
import java.time.Instant;
import java.util.List;
import java.util.Map;

/**
 * An immutable copy of a {@link ContainerState} for the snapshot store, taken on the container's own
 * thread: recovery starts from the newest snapshot and replays only the events after it.
 *
 * <p>Components added later are null in snapshots written before them ({@code leaseEpochs},
 * {@code allocations}, {@code peerOperations}, {@code leaseHolders}, {@code tmrBorrows}); {@link ContainerState#fromSnapshot}
 * reads those as empty.
 */
public record ContainerSnapshot(
        String serial,
        long cmActId,
        Map<Long, Long> firmUpdateCounters,
        List<Item> items,
        List<Handle> handles,
        List<Borrow> borrows,
        List<Decrement> recentDecrements,
        long nextHandleId,
        long nextTicketId,
        Map<String, Long> leaseEpochs,
        List<TmrAllocation> allocations,
        List<PeerOperation> peerOperations,
        Map<String, String> leaseHolders,
        List<TmrBorrow> tmrBorrows) implements CborSerializable {

    /** A snapshot without TMR borrows (as written before they existed). */
    public ContainerSnapshot(String serial, long cmActId, Map<Long, Long> firmUpdateCounters, List<Item> items,
                             List<Handle> handles, List<Borrow> borrows, List<Decrement> recentDecrements,
                             long nextHandleId, long nextTicketId, Map<String, Long> leaseEpochs,
                             List<TmrAllocation> allocations, List<PeerOperation> peerOperations,
                             Map<String, String> leaseHolders) {
        this(serial, cmActId, firmUpdateCounters, items, handles, borrows, recentDecrements, nextHandleId, nextTicketId,
                leaseEpochs, allocations, peerOperations, leaseHolders, null);
    }

    /**
     * A product item's terms and the state that is not derived from handles and borrows. {@code tmrGroupStatement}:
     * the vendor's group key statement of a TMR copy (base64); null for items without one and in snapshots
     * written before it was kept (version 4 and older).
     */
    public record Item(long firmCode, ProductItemSpec spec, List<String> tmrGroupKeys, long units,
                       Instant usageStartedAt, String tmrGroupStatement) {

        /** An item without a group key statement. */
        public Item(long firmCode, ProductItemSpec spec, List<String> tmrGroupKeys, long units, Instant usageStartedAt) {
            this(firmCode, spec, tmrGroupKeys, units, usageStartedAt, null);
        }
    }

    /**
     * A remembered PEER_UNITS result of a TMR copy, as {@link Decrement} for handles, and when it was
     * remembered ({@code at}: null in snapshots written before it was kept).
     */
    public record PeerOperation(io.opentmr.protocol.LicenseKey item, long operationId, long remaining, Instant at) {
    }

    /** A remembered decrement result, so a retry after recovery from a snapshot still finds it. */
    public record Decrement(long handleId, long operationId, long remaining) {
    }
}
