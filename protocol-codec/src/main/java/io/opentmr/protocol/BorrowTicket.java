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
     * The signature of a ticket issued by a virtual container (mask 131): the backends' signatures over
     * {@link #signedPayload()} and the vendor's statement of the group's keys they are checked against.
     *
     * <p>Encoded as {@code u8 n}, then per signature {@code u8 index} (the signing container's place among the
     * statement's members) and its 64-byte Ed25519 signature, by ascending index; then {@code u16 length} and the
     * statement ({@link GroupKeyStatement#encode()}). A ticket issued before statements existed ends after the
     * signatures ({@code statement} null): it cannot be checked with the vendor's key. Documented in
     * {@code docs/protocol.md}.
     *
     * @param signatures by index among the statement's members
     * @param statement  the vendor's statement, or null when the ticket carries none
     */
    public record GroupSignature(java.util.SortedMap<Integer, Bytes> signatures, GroupKeyStatement statement) {

        public GroupSignature {
            signatures = java.util.Collections.unmodifiableSortedMap(new java.util.TreeMap<>(signatures));
            if (signatures.isEmpty() || signatures.size() > 255) {
                throw new IllegalArgumentException("a group signature holds 1..255 signatures, not "
                        + signatures.size());
            }
            signatures.forEach((index, signature) -> {
                if (signature.length() != Ed25519Keys.SIGNATURE_BYTES || index < 0 || index > 255) {
                    throw new IllegalArgumentException("signature " + index + ": an Ed25519 signature of 64 bytes "
                            + "by a group key index 0..255, not " + signature.length() + " bytes");
                }
            });
        }

        public Bytes encode() {
            Bytes statementBytes = statement == null ? Bytes.EMPTY : statement.encode();
            ByteBuffer out = ByteBuffer.allocate(1 + signatures.size() * (1 + Ed25519Keys.SIGNATURE_BYTES)
                    + (statement == null ? 0 : 2 + statementBytes.length()));
            out.put((byte) signatures.size());
            signatures.forEach((index, signature) -> out.put(index.byteValue()).put(signature.unsafeArray()));
            if (statement != null) {
                out.putShort((short) statementBytes.length()).put(statementBytes.unsafeArray());
            }
            return Bytes.wrap(out.array());
        }

        /**
         * Reads a virtual container's ticket signature; no signature is checked here.
         *
         * @throws IllegalArgumentException for bytes of another layout (repeated or descending indices included)
         */
        public static GroupSignature parse(Bytes bytes) {
            ByteBuffer in = ByteBuffer.wrap(bytes.unsafeArray());
            try {
                int n = in.get() & 0xFF;
                java.util.TreeMap<Integer, Bytes> signatures = new java.util.TreeMap<>();
                int last = -1;
                for (int i = 0; i < n; i++) {
                    int index = in.get() & 0xFF;
                    if (index <= last) {
                        throw new IllegalArgumentException("group signature indices are not ascending: " + index
                                + " after " + last);
                    }
                    last = index;
                    byte[] signature = new byte[Ed25519Keys.SIGNATURE_BYTES];
                    in.get(signature);
                    signatures.put(index, Bytes.wrap(signature));
                }
                GroupKeyStatement statement = null;
                if (in.hasRemaining()) {
                    int length = in.getShort() & 0xFFFF;
                    if (length != in.remaining()) {
                        throw new IllegalArgumentException("the group key statement claims " + length + " bytes, "
                                + in.remaining() + " follow");
                    }
                    byte[] statementBytes = new byte[length];
                    in.get(statementBytes);
                    statement = GroupKeyStatement.parse(Bytes.wrap(statementBytes));
                }
                return new GroupSignature(signatures, statement);
            } catch (java.nio.BufferUnderflowException e) {
                throw new IllegalArgumentException("the group signature is truncated");
            }
        }
    }

    /** The same ticket with its signature. */
    public BorrowTicket withSignature(Bytes newSignature) {
        return new BorrowTicket(ticketId, firmCode, productCode, clientId, expiresAtMillis, issuer, newSignature);
    }
}
