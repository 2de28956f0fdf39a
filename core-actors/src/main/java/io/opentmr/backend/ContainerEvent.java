package io.opentmr.backend;

import io.opentmr.CborSerializable;
import io.opentmr.license.LicenseUpdate;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.UnitsOperation;
import java.time.Instant;

/** What happened to a container: the journal's events, applied by {@link ContainerState#apply}. */
public sealed interface ContainerEvent extends CborSerializable {

    /** A verified license update file moved a firm item's counter and added or replaced product items. */
    record LicenseUpdated(LicenseUpdate update, Instant at) implements ContainerEvent {
    }

    /**
     * A handle was opened. {@code tokenDigest} is the SHA-256 of its resume token (hex); {@code station} the
     * client's peer address; {@code requestId} the id of the ACCESS that opened it, so that the same ACCESS
     * re-sent (its reply lost) finds this handle again, also after a restart. Null in events written before it
     * was kept (version 2 and older): such a handle is found by no re-sent ACCESS.
     */
    record HandleOpened(long handleId, LicenseKey item, AccessMode mode, long featureBits, HandleOwner owner,
                        String tokenDigest, Instant at, String station, Integer requestId) implements ContainerEvent {
    }

    /** A handle moved to a new session after RESUME. */
    record HandleResumed(long handleId, long sessionId, Instant at) implements ContainerEvent {
    }

    record HandleReleased(long handleId, Instant at) implements ContainerEvent {
    }

    /** No traffic for the cleanup timeout: the server took the handle back. */
    record HandleReclaimed(long handleId, Instant at) implements ContainerEvent {
    }

    /** The usage period of an emergency license began, at its first access. */
    record UsagePeriodStarted(LicenseKey item, Instant at) implements ContainerEvent {
    }

    /** Units subtracted; {@code operationId} lets a retry find the result instead of subtracting twice. */
    record UnitsDecremented(long handleId, LicenseKey item, long operationId, long amount, long remaining, Instant at)
            implements ContainerEvent {
    }

    /** A handle became a borrow: its seat is held for the client until {@code expiresAt}. */
    record BorrowStarted(long ticketId, long handleId, LicenseKey item, String clientId, Instant expiresAt,
                         Instant at) implements ContainerEvent {
    }

    /** A borrow ended, returned early or expired; its seat is free again. */
    record BorrowEnded(long ticketId, boolean returned, Instant at) implements ContainerEvent {
    }

    /**
     * The highest epoch this container granted or saw on a lease name rose: persisted before a grant with
     * it is sent, and with the write whose certificate showed it, so no later grant can go below it.
     * {@code holder} is who the epoch was granted to or seen with: the same holder coming back on a new
     * connection keeps the epoch, any other gets a higher one. Null in events written before holders were
     * kept, which counts as "another holder".
     */
    record LeaseEpochRaised(String leaseName, long epoch, String holder, Instant at) implements ContainerEvent {
    }

    /** A TMR node's allocation took a seat on a TMR copy. */
    record AllocationAdded(TmrAllocation allocation) implements ContainerEvent {
    }

    /** A TMR node's allocation became a borrow (PEER_BORROW); FREE or its expiry ends it with the allocation. */
    record AllocationBorrowed(TmrBorrow borrow, Instant at) implements ContainerEvent {
    }

    /** A TMR node freed its allocation. */
    record AllocationFreed(long tmrHandleId, Instant at) implements ContainerEvent {
    }

    /**
     * A TMR copy's unit counter changed by a node's PEER_UNITS (a DECREMENT, or a SET to the majority's
     * value); {@code operationId} lets a retry find the result, and a SET forgets the item's earlier ids.
     * {@code operation} is null in events written before it was recorded: those count as a DECREMENT.
     */
    record PeerUnitsChanged(LicenseKey item, long operationId, UnitsOperation operation, long remaining, Instant at)
            implements ContainerEvent {
    }
}
