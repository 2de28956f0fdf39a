package io.opentmr.protocol;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * One backend's signed grant of a lease to a holder for an epoch.
 *
 * @param leaseName      the lease ({@link #ACTIVE_LEASE}, or the split-brain resolver's)
 * @param holder         the TMR node holding it
 * @param epoch          the strictly increasing epoch of this holding
 * @param issuedAtMillis the grantor's clock when it granted, epoch milliseconds
 * @param ttlMillis      how long the grant lasts without renewal
 * @param grantor        serial of the granting backend's container
 * @param signature      Ed25519 signature of the grantor's container key over {@link #signedPayload()}
 */
public record LeaseGrant(
        String leaseName,
        String holder,
        long epoch,
        long issuedAtMillis,
        long ttlMillis,
        Serial grantor,
        Bytes signature) {

    /** The lease whose grants make up the certificate of every peer write: the active TMR node's role. */
    public static final String ACTIVE_LEASE = "opentmr-active";

    private static final byte[] LABEL = "opentmr-lease/1".getBytes(StandardCharsets.US_ASCII);

    public LeaseGrant {
        Check.string(leaseName, "leaseName");
        Check.string(holder, "holder");
        Check.nonNegative(epoch, "epoch");
        Check.nonNegative(issuedAtMillis, "issuedAtMillis");
        Check.u32(ttlMillis, "ttlMillis");
        Check.notNull(grantor, "grantor");
        Check.notNull(signature, "signature");
    }

    /**
     * The bytes the grantor signs and a backend verifies: {@code "opentmr-lease/1"}, then leaseName and
     * holder (u16 length + UTF-8 each), epoch (i64), issuedAt (i64), ttlMillis (u32), grantor mask (u8)
     * and number (u32). Documented in {@code docs/protocol.md}.
     */
    public byte[] signedPayload() {
        byte[] name = leaseName.getBytes(StandardCharsets.UTF_8);
        byte[] by = holder.getBytes(StandardCharsets.UTF_8);
        ByteBuffer out = ByteBuffer.allocate(LABEL.length + 2 + name.length + 2 + by.length + 8 + 8 + 4 + 1 + 4);
        out.put(LABEL).putShort((short) name.length).put(name).putShort((short) by.length).put(by)
                .putLong(epoch).putLong(issuedAtMillis).putInt((int) ttlMillis)
                .put((byte) grantor.mask()).putInt((int) grantor.number());
        return out.array();
    }

    /** The same grant with its signature. */
    public LeaseGrant withSignature(Bytes newSignature) {
        return new LeaseGrant(leaseName, holder, epoch, issuedAtMillis, ttlMillis, grantor, newSignature);
    }
}
