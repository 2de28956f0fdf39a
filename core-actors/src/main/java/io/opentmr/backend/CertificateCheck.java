package io.opentmr.backend;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.LeaseCertificate;
import io.opentmr.protocol.LeaseGrant;
import java.time.Duration;
import java.time.Instant;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Whether a lease certificate entitles a TMR node to act on a TMR copy (docs/protocol.md, section 3):
 * grants of the active lease, one epoch and one holder (the node itself), signed by at least two
 * distinct keys of the copy's group, current (issued neither beyond the clock skew in the future nor
 * expired by their own granted TTL), and not older than what this backend knows. A refusal is ERROR 134
 * whose text names the rule that failed.
 */
final class CertificateCheck {

    private final Duration clockSkew;

    /** @param clockSkew how far the grantors' clocks may be behind or ahead of this backend's */
    CertificateCheck(Duration clockSkew) {
        this.clockSkew = clockSkew;
    }

    /**
     * @param connection whose node must hold the lease; remembers verified signatures
     * @param groupKeys  the copy's group keys (base64 raw Ed25519) from its vendor-signed update file
     * @param highest    the highest epoch this backend granted or saw on {@link LeaseGrant#ACTIVE_LEASE}
     * @param granted    the live active lease this backend granted, or null
     * @return the certificate's epoch, or a refusal
     */
    Decision<Long> check(LeaseCertificate certificate, PeerConnection connection, List<String> groupKeys,
                         long highest, LeaseTable.Lease granted, Instant now) {
        List<LeaseGrant> grants = certificate.grants();
        if (grants.isEmpty()) {
            return refuse("no grants: the certificate needs grants of " + LeaseGrant.ACTIVE_LEASE
                    + " signed by two backends of the group");
        }
        LeaseGrant first = grants.get(0);
        for (LeaseGrant grant : grants) {
            if (!LeaseGrant.ACTIVE_LEASE.equals(grant.leaseName())) {
                return refuse("wrong lease: a grant is for '" + grant.leaseName() + "', not '"
                        + LeaseGrant.ACTIVE_LEASE + "'");
            }
            if (grant.epoch() != first.epoch() || !grant.holder().equals(first.holder())) {
                return refuse("mixed grants: epoch " + first.epoch() + " of " + first.holder() + " and epoch "
                        + grant.epoch() + " of " + grant.holder() + "; all grants must name one epoch and holder");
            }
        }
        if (!first.holder().equals(connection.node())) {
            return refuse("wrong holder: the grants are for " + first.holder() + ", this connection authenticated as "
                    + connection.node());
        }
        Set<String> signers = new HashSet<>();
        Set<String> current = new HashSet<>();
        LeaseGrant future = null;
        long nowMillis = now.toEpochMilli();
        // Grants whose signatures this connection already verified count first; the others are verified only
        // while two current signers are still missing. A node renews each backend's grant every heartbeat, so
        // its certificate changes often, mostly in one grant at a time, and an Ed25519 verification (~100 µs or
        // more) per new grant and key was most of what a peer request cost a backend beyond its journal write.
        boolean[] counted = new boolean[grants.size()];
        for (int pass = 0; pass < 2 && current.size() < 2; pass++) {
            for (int i = 0; i < grants.size() && current.size() < 2; i++) {
                if (counted[i]) {
                    continue;
                }
                LeaseGrant grant = grants.get(i);
                String signer = pass == 0 ? connection.verifiedSigner(grant, groupKeys)
                        : connection.signer(grant, groupKeys);
                if (signer == null && pass == 0) {
                    continue;
                }
                counted[i] = true;
                if (signer != null) {
                    signers.add(signer);
                    // A grant from a clock running ahead would outlive its TTL here: it does not count.
                    if (grant.issuedAtMillis() > latestIssue(nowMillis)) {
                        future = grant;
                    } else if (nowMillis <= endOf(grant)) {
                        current.add(signer);
                    }
                }
            }
        }
        if (signers.size() < 2) {
            return refuse("too few signers: " + grants.size() + " grant(s) carry valid signatures of "
                    + signers.size() + " distinct key(s) of the TMR group; two backends of the group must sign");
        }
        if (current.size() < 2 && future != null) {
            return refuse("issued in the future: the grant of " + future.grantor() + " was issued at "
                    + Instant.ofEpochMilli(future.issuedAtMillis()) + ", beyond this backend's clock " + now + " + "
                    + clockSkew.toMillis() + " ms clock skew, and fewer than two other grants of distinct group keys "
                    + "are valid; the grantor's clock runs ahead");
        }
        if (current.size() < 2) {
            return Decision.refuse(CmError.TMR_LEASE_REFUSED, LeaseCertificate.REFUSED_AS_EXPIRED + ": fewer than two "
                    + "grants of distinct group keys are still valid at " + now + " (issuedAt + ttl + "
                    + clockSkew.toMillis() + " ms clock skew); renew the lease");
        }
        if (first.epoch() < highest) {
            return refuse("stale epoch: the certificate is for epoch " + first.epoch()
                    + ", this backend has granted or seen epoch " + highest);
        }
        if (granted != null && !granted.holder().equals(first.holder()) && granted.epoch() >= first.epoch()) {
            return refuse("conflict: this backend granted the lease to " + granted.holder() + " at epoch "
                    + granted.epoch() + ", not below the certificate's epoch " + first.epoch());
        }
        return Decision.accept(first.epoch());
    }

    /** The latest issue time a grant may show: a grantor's clock may be ahead of this one by the skew. */
    private long latestIssue(long nowMillis) {
        long skew = clockSkew.toMillis();
        return nowMillis > Long.MAX_VALUE - skew ? Long.MAX_VALUE : nowMillis + skew;
    }

    /** Until when a grant counts: its own granted TTL, plus the skew of a grantor's clock behind this one. */
    private long endOf(LeaseGrant grant) {
        long allowance = grant.ttlMillis() + clockSkew.toMillis();
        return grant.issuedAtMillis() > Long.MAX_VALUE - allowance ? Long.MAX_VALUE
                : grant.issuedAtMillis() + allowance;
    }

    private static Decision<Long> refuse(String why) {
        return Decision.refuse(CmError.TMR_LEASE_REFUSED, "lease certificate refused, " + why);
    }
}
