package io.opentmr.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.GroupKeyStatement;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** The layouts of the vendor's group key statement and of a virtual container's ticket signature. */
class GroupKeyStatementTest {

    private static final long FIRM = 6_000_010;

    private final BorrowTestGroup group = new BorrowTestGroup(FIRM);

    @Test
    void aStatementReadsBackAsWrittenAndItsSignatureHolds() {
        Bytes encoded = group.statement.encode();

        assertEquals(236, encoded.length(), "20 + 4 + 4 + 1 + 3 x 37 + 32 + 64");
        assertEquals(group.statement, GroupKeyStatement.parse(encoded));
        assertTrue(group.statement.signatureHolds());
        assertEquals(2, group.statement.indexOf(group.backends[2].publicKey()));
        assertEquals(-1, group.statement.indexOf(group.vendorKey()));
    }

    @Test
    void everyFlippedBitBreaksTheSignatureOrTheLayout() {
        byte[] encoded = group.statement.encode().toArray();
        for (int bit = 0; bit < encoded.length * 8; bit++) {
            byte[] flipped = encoded.clone();
            flipped[bit / 8] ^= (byte) (1 << (bit % 8));
            GroupKeyStatement read;
            try {
                read = GroupKeyStatement.parse(Bytes.of(flipped));
            } catch (IllegalArgumentException malformed) {
                continue;
            }
            assertFalse(read.signatureHolds(), "bit " + bit);
        }
    }

    @Test
    void truncatedOrLongerBytesAreRefused() {
        byte[] encoded = group.statement.encode().toArray();
        for (int length = 0; length < encoded.length; length++) {
            int cut = length;
            assertThrows(IllegalArgumentException.class, () -> GroupKeyStatement.parse(Bytes.of(Arrays.copyOf(encoded,
                    cut))), "cut at " + cut);
        }
        assertThrows(IllegalArgumentException.class, () -> GroupKeyStatement.parse(Bytes.of(Arrays.copyOf(encoded,
                encoded.length + 1))));
        assertThrows(IllegalStateException.class, () -> group.statement.withSignature(Bytes.EMPTY).encode(),
                "an unsigned statement is not written");
    }

    @Test
    void aGroupSignatureReadsBackWithOrWithoutItsStatement() {
        TreeMap<Integer, Bytes> two = new TreeMap<>(Map.of(0, Bytes.of(new byte[64]), 2, Bytes.of(new byte[64])));
        BorrowTicket.GroupSignature with = new BorrowTicket.GroupSignature(two, group.statement);
        BorrowTicket.GroupSignature without = new BorrowTicket.GroupSignature(two, null);

        assertEquals(1 + 2 * 65 + 2 + 236, with.encode().length());
        assertEquals(with, BorrowTicket.GroupSignature.parse(with.encode()));
        assertEquals(1 + 2 * 65, without.encode().length(), "the layout before statements");
        assertEquals(without, BorrowTicket.GroupSignature.parse(without.encode()));
        byte[] encoded = with.encode().toArray();
        for (int length = 0; length < encoded.length; length++) {
            if (length == 1 + 2 * 65) {
                continue;
            }
            int cut = length;
            assertThrows(IllegalArgumentException.class, () -> BorrowTicket.GroupSignature.parse(Bytes.of(
                    Arrays.copyOf(encoded, cut))), "cut at " + cut);
        }
        byte[] descending = without.encode().toArray();
        descending[1] = 2;
        descending[66] = 0;
        assertThrows(IllegalArgumentException.class, () -> BorrowTicket.GroupSignature.parse(Bytes.of(descending)));
    }
}
