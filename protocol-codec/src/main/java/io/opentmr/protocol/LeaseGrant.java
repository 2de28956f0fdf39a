package io.opentmr.protocol;

/**
 * One backend's signed grant of the active lease to a holder for an epoch.
 *
 * @param leaseName      the lease (the active role, or the split-brain resolver's)
 * @param holder         the TMR node holding it
 * @param epoch          the strictly increasing epoch of this holding
 * @param issuedAtMillis the grantor's clock when it granted, epoch milliseconds
 * @param ttlMillis      how long the grant lasts without renewal
 * @param grantor        serial of the granting backend's container
 * @param signature      Ed25519 signature of the grantor's container key over the fields above
 */
public record LeaseGrant(
        String leaseName,
        String holder,
        long epoch,
        long issuedAtMillis,
        long ttlMillis,
        Serial grantor,
        Bytes signature) {

    public LeaseGrant {
        Check.string(leaseName, "leaseName");
        Check.string(holder, "holder");
        Check.nonNegative(epoch, "epoch");
        Check.nonNegative(issuedAtMillis, "issuedAtMillis");
        Check.u32(ttlMillis, "ttlMillis");
        Check.notNull(grantor, "grantor");
        Check.notNull(signature, "signature");
    }
}
