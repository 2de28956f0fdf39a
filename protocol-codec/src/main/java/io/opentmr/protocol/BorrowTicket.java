package io.opentmr.protocol;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * A borrowed seat: lets the named client use the product offline until {@code expiresAtMillis},
 * checked against the issuing server's public key.
 *
 * @param ticketId        the server's id for the borrow, named in RETURN
 * @param firmCode        firm code
 * @param productCode     product code
 * @param clientId        the client the ticket is for (host and user)
 * @param expiresAtMillis end of the borrow, epoch milliseconds
 * @param issuer          serial of the container (or virtual container) that issued it
 * @param signature       Ed25519 signature by the issuer's key over the fields above
 */
public record BorrowTicket(
        long ticketId,
        long firmCode,
        long productCode,
        String clientId,
        long expiresAtMillis,
        Serial issuer,
        Bytes signature) {

    public BorrowTicket {
        Check.u32(firmCode, "firmCode");
        Check.u32(productCode, "productCode");
        Check.string(clientId, "clientId");
        Check.nonNegative(expiresAtMillis, "expiresAtMillis");
        Check.notNull(issuer, "issuer");
        Check.notNull(signature, "signature");
    }

    /**
     * The bytes the issuer signs and a holder verifies: {@code "opentmr-borrow/1"}, then ticketId (u64),
     * firmCode, productCode (u32), clientId (u16 length + UTF-8), expiresAt (i64), issuer mask (u8) and
     * number (u32). Documented in {@code docs/protocol.md}.
     */
    public byte[] signedPayload() {
        byte[] label = "opentmr-borrow/1".getBytes(StandardCharsets.US_ASCII);
        byte[] client = clientId.getBytes(StandardCharsets.UTF_8);
        ByteBuffer out = ByteBuffer.allocate(label.length + 8 + 4 + 4 + 2 + client.length + 8 + 1 + 4);
        out.put(label).putLong(ticketId).putInt((int) firmCode).putInt((int) productCode)
                .putShort((short) client.length).put(client).putLong(expiresAtMillis)
                .put((byte) issuer.mask()).putInt((int) issuer.number());
        return out.array();
    }

    /**
     * The signature of a ticket issued by a virtual container (mask 131): {@code u8 n}, then per signature
     * {@code u8 index} (the backend's place among the group keys the container lists) and its 64-byte Ed25519
     * signature over {@link #signedPayload()}, by ascending index. Documented in {@code docs/protocol.md}.
     */
    public static Bytes groupSignature(java.util.SortedMap<Integer, Bytes> byIndex) {
        ByteBuffer out = ByteBuffer.allocate(1 + byIndex.size() * (1 + 64));
        out.put((byte) byIndex.size());
        byIndex.forEach((index, signature) -> {
            if (signature.length() != 64 || index < 0 || index > 255) {
                throw new IllegalArgumentException("signature " + index + ": an Ed25519 signature of 64 bytes by a "
                        + "group key index 0..255, not " + signature.length() + " bytes");
            }
            out.put(index.byteValue()).put(signature.toArray());
        });
        return Bytes.of(out.array());
    }

    /** The same ticket with its signature. */
    public BorrowTicket withSignature(Bytes newSignature) {
        return new BorrowTicket(ticketId, firmCode, productCode, clientId, expiresAtMillis, issuer, newSignature);
    }
}
