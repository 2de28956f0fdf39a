package io.opentmr.protocol;

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
}
