package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.license.Ed25519;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.LeaseCertificate;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Serial;
import java.security.KeyPair;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The certificate's time rules as a plain class: issue times and each grant's own granted TTL. */
class CertificateCheckTest {

    private static final Instant NOW = Instant.parse("2026-11-23T12:00:00Z");
    private static final Duration SKEW = Duration.ofSeconds(1);

    private final List<KeyPair> backends = List.of(Ed25519.generate(), Ed25519.generate(), Ed25519.generate());
    private final List<String> groupKeys = backends.stream()
            .map(k -> Base64.getEncoder().encodeToString(Ed25519.raw(k.getPublic()))).toList();
    private final PeerConnection connection = new PeerConnection("node-a", "127.0.0.1:5000", () -> true);
    private final CertificateCheck check = new CertificateCheck(SKEW);

    /** Backend {@code i}'s grant of epoch 3 to node-a, issued at {@code issuedAt} for {@code ttlMillis}. */
    private LeaseGrant grant(int i, Instant issuedAt, long ttlMillis) {
        LeaseGrant unsigned = new LeaseGrant(LeaseGrant.ACTIVE_LEASE, "node-a", 3, issuedAt.toEpochMilli(), ttlMillis,
                new Serial(129, i + 1), Bytes.EMPTY);
        return unsigned.withSignature(Bytes.of(Ed25519.sign(backends.get(i).getPrivate(), unsigned.signedPayload())));
    }

    private Decision<Long> check(Instant now, LeaseGrant... grants) {
        return check.check(new LeaseCertificate(List.of(grants)), connection, groupKeys, 3, null, now);
    }

    private static void accepted(Decision<Long> decision) {
        assertEquals(3L, assertInstanceOf(Decision.Accept.class, decision, decision.toString()).reply());
    }

    private static void refused(Decision<Long> decision, String rule) {
        Decision.Refuse<?> refuse = assertInstanceOf(Decision.Refuse.class, decision, decision.toString());
        assertEquals(CmError.TMR_LEASE_REFUSED, refuse.error());
        assertTrue(refuse.text().contains(rule), "'" + rule + "' in: " + refuse.text());
    }

    @Test
    void aGrantIssuedBeyondTheSkewInTheFutureDoesNotCount() {
        Instant ahead = NOW.plus(SKEW).plusMillis(1);
        refused(check(NOW, grant(0, NOW, 2_000), grant(1, ahead, 2_000)), "issued in the future");
        refused(check(NOW, grant(0, ahead, 2_000), grant(1, ahead, 2_000)), "issued in the future");
        // Years ahead, so it would never expire: still refused, long after the other grant ran out.
        Instant farAhead = NOW.plus(Duration.ofDays(3650));
        refused(check(NOW.plusSeconds(5), grant(0, NOW, 2_000), grant(1, farAhead, 2_000)),
                "issued in the future");
        accepted(check(NOW, grant(0, NOW, 2_000), grant(1, NOW.plus(SKEW), 2_000)));
        accepted(check(NOW, grant(0, NOW, 2_000), grant(1, NOW, 2_000), grant(2, ahead, 2_000)));
    }

    @Test
    void eachGrantExpiresByItsOwnGrantedTtl() {
        LeaseGrant shortOne = grant(0, NOW, 500);
        LeaseGrant longOne = grant(1, NOW, 60_000);
        Instant shortEnd = NOW.plusMillis(500).plus(SKEW);
        accepted(check(shortEnd, shortOne, longOne));
        refused(check(shortEnd.plusMillis(1), shortOne, longOne), "expired");
        accepted(check(shortEnd.plusMillis(1), shortOne, longOne, grant(2, NOW, 60_000)));
    }

    @Test
    void aRenewedGrantIsVerifiedUnderTheKeyOfItsGrantorsLastGrantFirst() {
        // Backend 2's key is the last group key: its first grant is tried under keys 0 and 1 before its own.
        accepted(check(NOW, grant(2, NOW, 2_000), grant(1, NOW, 2_000)));
        assertEquals(5, connection.verifications(), "3 for backend 2's grant, 2 for backend 1's");
        Instant renewed = NOW.plusMillis(250);
        accepted(check(renewed, grant(2, renewed, 2_000), grant(1, NOW, 2_000)));
        assertEquals(6, connection.verifications(), "the renewed grant verified once, under backend 2's key");
    }

    @Test
    void aNewGrantIsNotVerifiedWhileTwoVerifiedGrantsAreCurrent() {
        LeaseGrant first = grant(0, NOW, 500);
        LeaseGrant second = grant(1, NOW, 60_000);
        accepted(check(NOW, first, second));
        long verified = connection.verifications();
        accepted(check(NOW, first, second, grant(2, NOW, 2_000)));
        LeaseGrant forged = new LeaseGrant(LeaseGrant.ACTIVE_LEASE, "node-a", 3, NOW.toEpochMilli(), 2_000,
                new Serial(129, 3), Bytes.of(new byte[64]));
        accepted(check(NOW, forged, first, second));
        assertEquals(verified, connection.verifications(), "two current verified grants suffice");
        // Once the first has run out, the third is needed and verified; a forged one still does not count.
        Instant later = NOW.plusMillis(501).plus(SKEW);
        accepted(check(later, first, second, grant(2, NOW.plusMillis(1_000), 2_000)));
        assertTrue(connection.verifications() > verified);
        refused(check(later, first, second, forged), "expired");
        refused(check(NOW, first, forged), "too few signers");
    }
}
