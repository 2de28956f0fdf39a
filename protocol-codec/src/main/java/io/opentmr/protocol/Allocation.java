package io.opentmr.protocol;

/**
 * A seat a backend holds for a TMR handle. It carries enough to rebuild the handle from the
 * backends (owner, mode, digest of the resume token) should a node's journal lack it.
 *
 * @param tmrHandleId the TMR node's handle id
 * @param key         the TMR license
 * @param accessMode  how the handle uses seats
 * @param featureBits requested feature bits
 * @param owner       who holds the handle
 * @param tokenDigest SHA-256 of the handle's resume token
 * @param epoch       epoch of the lease under which the seat was allocated
 * @param request     the ACCESS that opened the handle, or null where it is not known (a seat journaled before
 *                    requests were kept, a backend older than the field); not part of the {@link #Allocation
 *                    Allocation} structure on the wire but carried beside it (docs/protocol.md, ALLOCATE and
 *                    LIST_ALLOCATIONS)
 */
public record Allocation(
        long tmrHandleId,
        LicenseKey key,
        AccessMode accessMode,
        long featureBits,
        HandleOwner owner,
        Bytes tokenDigest,
        long epoch,
        AllocationRequest request) {

    public Allocation {
        Check.notNull(key, "key");
        Check.notNull(accessMode, "accessMode");
        Check.u32(featureBits, "featureBits");
        Check.notNull(owner, "owner");
        Check.notNull(tokenDigest, "tokenDigest");
        Check.nonNegative(epoch, "epoch");
    }

    /** An allocation that names no request. */
    public Allocation(long tmrHandleId, LicenseKey key, AccessMode accessMode, long featureBits, HandleOwner owner,
                      Bytes tokenDigest, long epoch) {
        this(tmrHandleId, key, accessMode, featureBits, owner, tokenDigest, epoch, null);
    }

    /** This allocation naming {@code request} (null: none). */
    public Allocation withRequest(AllocationRequest request) {
        return new Allocation(tmrHandleId, key, accessMode, featureBits, owner, tokenDigest, epoch, request);
    }
}
