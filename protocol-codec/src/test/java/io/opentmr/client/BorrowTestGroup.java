package io.opentmr.client;

import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.GroupKeyStatement;
import io.opentmr.protocol.Serial;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A TMR group of the tests' own: a vendor key, three backend container keys, the vendor's statement of them, and
 * tickets of a virtual container signed as a node assembles them from its backends' signatures.
 */
final class BorrowTestGroup {

    static final Serial VIRTUAL = new Serial(BorrowedLicense.VIRTUAL_MASK, 59_885_682);
    static final long CM_ACT_ID = 7;

    final BorrowTestIssuer vendor = new BorrowTestIssuer(new Serial(0, 0));
    final BorrowTestIssuer[] backends = {new BorrowTestIssuer(new Serial(129, 3_000_001)),
            new BorrowTestIssuer(new Serial(129, 3_000_002)), new BorrowTestIssuer(new Serial(129, 3_000_003))};
    final GroupKeyStatement statement;

    BorrowTestGroup(long firm) {
        statement = statement(firm, vendor, vendor, backends);
    }

    /** A statement naming {@code named} as its vendor key, signed by {@code signer}, of {@code members}' keys. */
    static GroupKeyStatement statement(long firm, BorrowTestIssuer named, BorrowTestIssuer signer,
                                       BorrowTestIssuer... members) {
        GroupKeyStatement unsigned = new GroupKeyStatement(firm, CM_ACT_ID, java.util.Arrays.stream(members)
                .map(m -> new GroupKeyStatement.Member(m.serial(), m.publicKey())).toList(), named.publicKey(),
                Bytes.EMPTY);
        return unsigned.withSignature(signer.signBytes(unsigned.signedPayload()));
    }

    Bytes vendorKey() {
        return vendor.publicKey();
    }

    BorrowTicket unsigned(long ticketId, long firm, long product, String client, long expiresAtMillis) {
        return new BorrowTicket(ticketId, firm, product, client, expiresAtMillis, VIRTUAL, Bytes.EMPTY);
    }

    /** The ticket signed by the backends at {@code places} under {@code statement} (null: the older layout). */
    BorrowTicket signed(BorrowTicket unsigned, GroupKeyStatement under, Map<Integer, BorrowTestIssuer> signers) {
        TreeMap<Integer, Bytes> signatures = new TreeMap<>();
        signers.forEach((place, signer) -> signatures.put(place, signer.sign(unsigned).signature()));
        return unsigned.withSignature(new BorrowTicket.GroupSignature(signatures, under).encode());
    }

    /** Signed by backends 1 and 3 under the group's statement: what a node hands out. */
    BorrowTicket issue(long ticketId, long firm, long product, String client, long expiresAtMillis) {
        return signed(unsigned(ticketId, firm, product, client, expiresAtMillis), statement,
                Map.of(0, backends[0], 2, backends[2]));
    }

    List<BorrowTestIssuer> backendList() {
        return List.of(backends);
    }
}
