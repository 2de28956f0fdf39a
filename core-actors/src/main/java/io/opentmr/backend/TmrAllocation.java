package io.opentmr.backend;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.AllocationRequest;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LicenseKey;
import java.time.Instant;
import java.util.HexFormat;

/**
 * A seat held on a TMR copy for a TMR node's handle (ALLOCATE). Unlike a {@link Handle} it belongs to
 * the node, not to a session: no cleanup timeout reclaims it and it outlives the node's lease; only
 * FREE ends it.
 *
 * @param tmrHandleId the node's handle id (u64, ordered unsigned)
 * @param tokenDigest SHA-256 of the handle's resume token, hex, as the node sent it
 * @param epoch       the epoch the node named in the allocation
 * @param at          when this backend took it
 * @param request     the ACCESS the node named with the ALLOCATE, journaled with it so that the node's listing after
 *                    a restart of either still names it; null when the node named none (and in allocations journaled
 *                    before requests were kept)
 */
public record TmrAllocation(long tmrHandleId, LicenseKey item, AccessMode mode, long featureBits,
                            HandleOwner owner, String tokenDigest, long epoch, Instant at, AllocationRequest request) {

    static TmrAllocation of(Allocation allocation, Instant at) {
        return new TmrAllocation(allocation.tmrHandleId(), allocation.key(), allocation.accessMode(),
                allocation.featureBits(), allocation.owner(), allocation.tokenDigest().toHex(), allocation.epoch(), at,
                allocation.request());
    }

    /** What the station of a STATIONSHARE allocation is: the client host the node names. */
    String station() {
        return owner.host();
    }

    Allocation toProtocol() {
        return new Allocation(tmrHandleId, item, mode, featureBits, owner, Bytes.of(HexFormat.of().parseHex(tokenDigest)),
                epoch, request);
    }
}
