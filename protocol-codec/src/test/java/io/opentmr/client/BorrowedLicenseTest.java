package io.opentmr.client;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.GroupKeyStatement;
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
    void aVirtualContainersTicketHoldsWithTheVendorKeyAloneAndTwoSignaturesOfTheStatedKeys() {
        BorrowTestGroup group = new BorrowTestGroup(FIRM);
        BorrowTicket signed = group.issue(5, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli());

        BorrowedLicense license = BorrowedLicense.of(signed, group.vendorKey());
        assertDoesNotThrow(() -> license.verify(CLIENT, NOW));
        assertEquals(group.vendorKey(), license.issuerPublicKey());
        assertEquals(group.statement, BorrowedLicense.statementOf(signed));
        BorrowTicket allThree = group.signed(signed.withSignature(Bytes.EMPTY), group.statement,
                java.util.Map.of(0, group.backends[0], 1, group.backends[1], 2, group.backends[2]));
        assertDoesNotThrow(() -> BorrowedLicense.of(allThree, group.vendorKey()));
        // The container keys are no trust anchor: only the vendor's key is.
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(signed, group.backends[0].publicKey()));
    }

    @Test
    void aVirtualContainersTicketWithoutTheVendorsStatementIsRefused() {
        BorrowTestGroup group = new BorrowTestGroup(FIRM);
        BorrowTicket unsigned = group.unsigned(5, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli());
        // The layout of tickets issued before statements existed: the backends' signatures only.
        BorrowTicket older = group.signed(unsigned, null, java.util.Map.of(0, group.backends[0], 2, group.backends[2]));

        CmException refused = assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(older, group.vendorKey()));
        assertTrue(refused.text().contains("no vendor-signed statement"), refused.text());
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(unsigned.withSignature(Bytes.of(new byte[3])),
                group.vendorKey()));
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(unsigned, group.vendorKey()));
    }

    @Test
    void aStatementOfAnotherVendorKeyOrAlteredIsRefused() {
        BorrowTestGroup group = new BorrowTestGroup(FIRM);
        BorrowTicket unsigned = group.unsigned(5, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli());
        java.util.Map<Integer, BorrowTestIssuer> two = java.util.Map.of(0, group.backends[0], 2, group.backends[2]);
        BorrowTestIssuer otherVendor = new BorrowTestIssuer(new Serial(0, 0));

        // Signed by another vendor key, which it names: valid in itself, but not the vendor this program trusts.
        BorrowTicket otherVendors = group.signed(unsigned, BorrowTestGroup.statement(FIRM, otherVendor, otherVendor,
                group.backends), two);
        CmException refused = assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(otherVendors,
                group.vendorKey()));
        assertTrue(refused.text().contains("not by the trusted vendor key"), refused.text());
        // Naming the trusted vendor key but signed by another.
        BorrowTicket forgedStatement = group.signed(unsigned, BorrowTestGroup.statement(FIRM, group.vendor,
                otherVendor, group.backends), two);
        refused = assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(forgedStatement, group.vendorKey()));
        assertTrue(refused.text().contains("does not hold"), refused.text());
        // The vendor's statement with one member's key swapped after signing.
        BorrowTestIssuer planted = new BorrowTestIssuer(group.backends[1].serial());
        java.util.List<GroupKeyStatement.Member> members = new java.util.ArrayList<>(group.statement.members());
        members.set(1, new GroupKeyStatement.Member(planted.serial(), planted.publicKey()));
        GroupKeyStatement swapped = new GroupKeyStatement(FIRM, BorrowTestGroup.CM_ACT_ID, members,
                group.vendorKey(), group.statement.signature());
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(group.signed(unsigned, swapped,
                java.util.Map.of(0, group.backends[0], 1, planted)), group.vendorKey()));
        // The vendor's statement of another firm's group.
        BorrowTicket otherFirm = group.signed(unsigned, BorrowTestGroup.statement(FIRM + 1, group.vendor,
                group.vendor, group.backends), two);
        refused = assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(otherFirm, group.vendorKey()));
        assertTrue(refused.text().contains("firm"), refused.text());
    }

    @Test
    void signaturesByKeysTheStatementDoesNotNameAreRefused() {
        BorrowTestGroup group = new BorrowTestGroup(FIRM);
        BorrowTicket unsigned = group.unsigned(5, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli());
        BorrowTestIssuer strangerA = new BorrowTestIssuer(group.backends[0].serial());
        BorrowTestIssuer strangerB = new BorrowTestIssuer(group.backends[1].serial());

        CmException refused = assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(group.signed(unsigned,
                group.statement, java.util.Map.of(0, strangerA, 1, strangerB)), group.vendorKey()));
        assertTrue(refused.text().contains("valid signatures of 0"), refused.text());
        // One genuine backend and one stranger: one signature is not enough.
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(group.signed(unsigned, group.statement,
                java.util.Map.of(0, group.backends[0], 1, strangerB)), group.vendorKey()));
        // One backend's signature given under two places counts once.
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(group.signed(unsigned, group.statement,
                java.util.Map.of(0, group.backends[0], 1, group.backends[0])), group.vendorKey()));
        // A place beyond the statement's members.
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(group.signed(unsigned, group.statement,
                java.util.Map.of(0, group.backends[0], 7, group.backends[2])), group.vendorKey()));
        // A field changed after the backends signed.
        BorrowTicket signed = group.issue(5, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli());
        BorrowTicket longer = new BorrowTicket(5, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli() + 1,
                BorrowTestGroup.VIRTUAL, signed.signature());
        assertCode(CmError.ACCESS_DENIED, () -> BorrowedLicense.of(longer, group.vendorKey()));
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
