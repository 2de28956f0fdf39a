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
 */
public record Allocation(
        long tmrHandleId,
        LicenseKey key,
        AccessMode accessMode,
        long featureBits,
        HandleOwner owner,
        Bytes tokenDigest,
        long epoch) {

    public Allocation {
        Check.notNull(key, "key");
        Check.notNull(accessMode, "accessMode");
        Check.u32(featureBits, "featureBits");
        Check.notNull(owner, "owner");
        Check.notNull(tokenDigest, "tokenDigest");
        Check.nonNegative(epoch, "epoch");
    }
}
