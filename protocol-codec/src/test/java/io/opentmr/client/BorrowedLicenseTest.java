package io.opentmr.client;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Serial;
import java.time.Instant;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

/** The signature, client and expiry checks of one borrowed license. */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class BorrowedLicenseTest {

    private static final long FIRM = 6_000_010;
    private static final long PRODUCT = 42;
    private static final String CLIENT = "ws-17/anna";
    private static final Instant NOW = Instant.parse("2026-11-23T12:00:00Z");
    private static final Instant EXPIRY = NOW.plusSeconds(7 * 24 * 3600);

    private final BorrowTestIssuer issuer = new BorrowTestIssuer();
    private final BorrowTicket ticket = issuer.issue(77, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli());

    @Test
    void aValidTicketGrantsAccessUntilItsExpiry() {
        BorrowedLicense license = BorrowedLicense.of(ticket, issuer.publicKey());

        assertDoesNotThrow(() -> license.verify(CLIENT, NOW));
        assertDoesNotThrow(() -> license.verify(CLIENT, EXPIRY.minusMillis(1)));
        assertEquals(77, license.ticketId());
        assertEquals(FIRM, license.firmCode());
        assertEquals(PRODUCT, license.productCode());
        assertEquals(CLIENT, license.clientId());
        assertEquals(EXPIRY, license.expiresAt());
        assertEquals(issuer.serial(), license.issuer());
        assertEquals(ticket, license.ticket());
        assertEquals(issuer.publicKey(), license.issuerPublicKey());
        assertFalse(license.isExpired(NOW));
    }

    @Test
    void aVirtualContainersTicketHoldsWithTheSignaturesOfTwoDistinctGroupKeys() {
        Serial virtual = new Serial(BorrowedLicense.VIRTUAL_MASK, 59_885_682);
        BorrowTestIssuer[] backends = {new BorrowTestIssuer(virtual), new BorrowTestIssuer(virtual),
                new BorrowTestIssuer(virtual)};
        byte[] group = new byte[96];
        for (int i = 0; i < 3; i++) {
            System.arraycopy(backends[i].publicKey().toArray(), 0, group, 32 * i, 32);
        }
        BorrowTicket unsigned = new BorrowTicket(5, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli(), virtual, Bytes.EMPTY);
        java.util.function.IntFunction<Bytes> signatureOf = i -> backends[i].sign(unsigned).signature();
        java.util.TreeMap<Integer, Bytes> two = new java.util.TreeMap<>(java.util.Map.of(0, signatureOf.apply(0),
                2, signatureOf.apply(2)));
        BorrowTicket signed = unsigned.withSignature(BorrowTicket.groupSignature(two));

        BorrowedLicense license = BorrowedLicense.of(signed, Bytes.of(group));
        assertDoesNotThrow(() -> license.verify(CLIENT, NOW));

        java.util.TreeMap<Integer, Bytes> one = new java.util.TreeMap<>(java.util.Map.of(0, signatureOf.apply(0)));
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(unsigned.withSignature(
                BorrowTicket.groupSignature(one)), Bytes.of(group)));
        // One backend's signature given under two indexes counts once.
        java.util.TreeMap<Integer, Bytes> twice = new java.util.TreeMap<>(java.util.Map.of(0, signatureOf.apply(0),
                1, signatureOf.apply(0)));
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(unsigned.withSignature(
                BorrowTicket.groupSignature(twice)), Bytes.of(group)));
        BorrowTicket longer = new BorrowTicket(5, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli() + 1, virtual,
                signed.signature());
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(longer, Bytes.of(group)));
        // A key the node did not know (zeros) matches no signature: the two others must hold.
        byte[] oneUnknown = group.clone();
        Arrays.fill(oneUnknown, 0, 32, (byte) 0);
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(signed, Bytes.of(oneUnknown)));
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(signed, backends[0].publicKey()));
    }

    @Test
    void anExpiredTicketIsRefusedWith35() {
        BorrowedLicense license = BorrowedLicense.of(ticket, issuer.publicKey());

        assertTrue(license.isExpired(EXPIRY));
        assertCode(CmError.EXPIRED, () -> license.verify(CLIENT, EXPIRY));
        assertCode(CmError.EXPIRED, () -> license.verify(CLIENT, EXPIRY.plusSeconds(3600)));
    }

    @Test
    void aTicketOfAnotherClientIsRefusedWith231() {
        BorrowedLicense license = BorrowedLicense.of(ticket, issuer.publicKey());

        CmException refused = assertCode(CmError.ACCESS_DENIED, () -> license.verify("ws-18/anna", NOW));
        assertTrue(refused.text().contains("ws-17/anna"), refused.text());
        assertCode(CmError.ACCESS_DENIED, () -> license.verify("ws-17/ann", NOW));
    }

    @Test
    void anAlteredFieldBreaksTheSignature() {
        Bytes key = issuer.publicKey();
        Bytes signature = ticket.signature();
        BorrowTicket[] altered = {
            new BorrowTicket(77, FIRM, PRODUCT, CLIENT, EXPIRY.plusSeconds(86_400).toEpochMilli(), issuer.serial(), signature),
            new BorrowTicket(78, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli(), issuer.serial(), signature),
            new BorrowTicket(77, FIRM + 1, PRODUCT, CLIENT, EXPIRY.toEpochMilli(), issuer.serial(), signature),
            new BorrowTicket(77, FIRM, PRODUCT + 1, CLIENT, EXPIRY.toEpochMilli(), issuer.serial(), signature),
            new BorrowTicket(77, FIRM, PRODUCT, "ws-18/anna", EXPIRY.toEpochMilli(), issuer.serial(), signature),
            new BorrowTicket(77, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli(), new Serial(129, 3_000_118), signature),
        };
        for (BorrowTicket forged : altered) {
            assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(forged, key));
        }
    }

    @Test
    void aTicketSignedByAnotherKeyIsRefused() {
        BorrowTestIssuer impostor = new BorrowTestIssuer(issuer.serial());
        BorrowTicket forged = impostor.issue(77, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli());

        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(forged, issuer.publicKey()));
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(ticket, impostor.publicKey()));
    }

    @Test
    void malformedSignaturesAndKeysAreRefusedNotThrown() {
        Bytes key = issuer.publicKey();
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(ticket.withSignature(Bytes.EMPTY), key));
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(ticket.withSignature(Bytes.of(new byte[64])), key));
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(ticket.withSignature(Bytes.of(new byte[3])), key));
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(ticket, Bytes.EMPTY));
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(ticket, Bytes.of(new byte[31])));
        byte[] ones = new byte[32];
        Arrays.fill(ones, (byte) 0xFF);
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(ticket, Bytes.of(ones)));
    }

    @Test
    void equalLicensesAndATextWithoutTheSignature() {
        BorrowedLicense one = BorrowedLicense.of(ticket, issuer.publicKey());
        BorrowedLicense two = BorrowedLicense.of(ticket, issuer.publicKey());

        assertEquals(one, two);
        assertEquals(one.hashCode(), two.hashCode());
        assertTrue(one.toString().contains("6000010/42"), one.toString());
        assertFalse(one.toString().contains(ticket.signature().toHex().substring(0, 16)), one.toString());
    }

    static CmException assertCode(CmError expected, Executable call) {
        CmException e = assertThrows(CmException.class, call);
        assertEquals(expected.code(), e.code(), e.getMessage());
        return e;
    }
}
