package io.opentmr.client;

import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Ed25519Keys;
import io.opentmr.protocol.GroupKeyStatement;
import io.opentmr.protocol.Serial;
import java.security.PublicKey;
import java.time.Instant;
import java.util.Objects;

/**
 * A borrow ticket together with the public key of the container that issued it: what a client needs to
 * use a borrowed seat while no server is reachable.
 *
 * <p>Only {@link #of(BorrowTicket, Bytes)} creates one, and it checks the issuer's Ed25519 signature
 * over {@link BorrowTicket#signedPayload()} first, so an instance whose signature does not hold cannot
 * exist: a forged or altered ticket cannot even be stored. {@link #verify(String, Instant)} then decides,
 * each time the program starts offline, whether the ticket still grants access to this client now.
 *
 * <p><b>What the signature proves.</b> That the holder of the private key matching
 * {@link #issuerPublicKey()} issued exactly these fields. Whether that key is the license server's is
 * decided where the key came from: {@link BorrowStore#borrow} takes it from the server's
 * CONTAINER_LIST at borrow time, and a {@link BorrowStore} opened with trusted issuer keys also
 * compares it against those (for a virtual container's ticket: against trusted vendor keys).
 *
 * <p><b>Tickets of a TMR node.</b> A ticket issued by a virtual container (mask 131) is signed by the
 * backends, not by the node, and carries the vendor's signed statement of the group's container keys
 * ({@link GroupKeyStatement}; layout in {@link BorrowTicket.GroupSignature}). For such a ticket the key this
 * class is given is the <em>vendor's</em> public key: the ticket holds when the statement is signed by that key,
 * is for the ticket's firm, and the signatures of at least two distinct containers of the statement hold over
 * the ticket. So no single backend, nor the node, can issue one, and checking it needs the vendor's key alone.
 * A ticket without a statement (issued from a license file of the older format, or by an older node) is
 * refused: nothing the vendor signed tells which keys may sign it.
 *
 * <p><b>Cost.</b> Signatures are checked once, when the instance is created (a virtual container's ticket: one
 * check of the statement and one per backend signature, about 0.8 ms each); {@link #verify(String, Instant)}
 * relies on that and checks only client and expiry.
 *
 * <p>Immutable and thread-safe.
 */
public final class BorrowedLicense {

    /** Length of a raw Ed25519 public key. */
    public static final int PUBLIC_KEY_BYTES = Ed25519Keys.PUBLIC_KEY_BYTES;

    /** Mask of a virtual TMR container, whose tickets carry the signatures of two backends or more. */
    public static final int VIRTUAL_MASK = Serial.MASK_VIRTUAL_TMR;

    private final BorrowTicket ticket;
    private final Bytes issuerPublicKey;

    private BorrowedLicense(BorrowTicket ticket, Bytes issuerPublicKey) {
        this.ticket = ticket;
        this.issuerPublicKey = issuerPublicKey;
    }

    /**
     * A borrowed license for {@code ticket}, once its signature is found to be the issuer's.
     *
     * @param ticket          the ticket from BORROW_OK ({@link LicenseHandle#borrow})
     * @param issuerPublicKey the raw 32-byte Ed25519 public key of the container named by
     *                        {@link BorrowTicket#issuer()}, as CONTAINER_LIST shows it; for a virtual container
     *                        (mask 131) the vendor's public key, which must have signed the group's statement
     * @throws CmException 231 when the key is not an Ed25519 public key or the signature is not the
     *                     key's over the ticket's fields; for a virtual container also when the ticket carries
     *                     no vendor statement of its group's keys, the statement is signed by another vendor key
     *                     or does not hold, or fewer than two of its containers signed the ticket
     */
    public static BorrowedLicense of(BorrowTicket ticket, Bytes issuerPublicKey) {
        Objects.requireNonNull(ticket, "ticket");
        Objects.requireNonNull(issuerPublicKey, "issuerPublicKey");
        if (ticket.issuer().mask() == VIRTUAL_MASK) {
            checkGroup(ticket, issuerPublicKey);
        } else if (!Ed25519Keys.verify(publicKey(ticket, issuerPublicKey), ticket.signedPayload(),
                ticket.signature().toArray())) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                    + " does not carry a valid signature of container " + ticket.issuer()
                    + ": it was altered or not issued by that container");
        }
        return new BorrowedLicense(ticket, issuerPublicKey);
    }

    /**
     * The vendor's statement a virtual container's ticket carries, read but not checked: which vendor key a
     * program must trust for it ({@link BorrowStore} records it).
     *
     * @throws CmException 231 when the ticket is not a virtual container's or carries no readable statement
     */
    public static GroupKeyStatement statementOf(BorrowTicket ticket) {
        if (ticket.issuer().mask() != VIRTUAL_MASK) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                    + " was issued by container " + ticket.issuer() + ", not by a virtual TMR container");
        }
        BorrowTicket.GroupSignature group;
        try {
            group = BorrowTicket.GroupSignature.parse(ticket.signature());
        } catch (IllegalArgumentException e) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                    + " of virtual container " + ticket.issuer() + " has a malformed signature: " + e.getMessage());
        }
        if (group.statement() == null) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                    + " of virtual container " + ticket.issuer() + " carries no vendor-signed statement of its "
                    + "group's keys (issued from a license file without one, or by an older node), so it cannot be "
                    + "checked offline; return it and borrow again once the vendor issued the license anew");
        }
        return group.statement();
    }

    /** The signed ticket, as the server issued it. */
    public BorrowTicket ticket() {
        return ticket;
    }

    /**
     * The issuer's raw Ed25519 public key the signature was checked against; for a virtual container's ticket the
     * vendor's key its group's statement was checked against.
     */
    public Bytes issuerPublicKey() {
        return issuerPublicKey;
    }

    /** The server's id of the borrow, named in RETURN. */
    public long ticketId() {
        return ticket.ticketId();
    }

    /** The firm code of the borrowed product item. */
    public long firmCode() {
        return ticket.firmCode();
    }

    /** The product code of the borrowed product item. */
    public long productCode() {
        return ticket.productCode();
    }

    /** The client the ticket was issued to: {@code host/user} as that client said in HELLO. */
    public String clientId() {
        return ticket.clientId();
    }

    /** The container that issued the ticket. */
    public Serial issuer() {
        return ticket.issuer();
    }

    /** The end of the borrow: from this instant on the ticket grants nothing. */
    public Instant expiresAt() {
        return Instant.ofEpochMilli(ticket.expiresAtMillis());
    }

    /** Whether the borrow has ended at {@code now} (the expiry instant itself counts as ended). */
    public boolean isExpired(Instant now) {
        return now.toEpochMilli() >= ticket.expiresAtMillis();
    }

    /**
     * Checks that the ticket grants offline access to {@code clientId} at {@code now}: the ticket was issued to
     * this client and has not expired. Returns normally when access is granted. Its signatures held when this
     * instance was created (no instance exists otherwise) and it cannot change, so they are not checked again.
     *
     * @param clientId the client asking, {@code host/user} (see {@link BorrowStore#clientId(TmrClientOptions)})
     * @param now      the current time, from the caller's clock
     * @throws CmException 231 for a ticket issued to another client, 35 when the borrow has expired
     */
    public void verify(String clientId, Instant now) {
        Objects.requireNonNull(clientId, "clientId");
        Objects.requireNonNull(now, "now");
        if (!ticket.clientId().equals(clientId)) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + idText() + " was issued to client '"
                    + ticket.clientId() + "', not to '" + clientId + "'");
        }
        if (isExpired(now)) {
            throw new CmException(CmError.EXPIRED, "borrow ticket " + idText() + " for " + ticket.firmCode() + "/"
                    + ticket.productCode() + " expired at " + expiresAt());
        }
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof BorrowedLicense that && ticket.equals(that.ticket)
                && issuerPublicKey.equals(that.issuerPublicKey);
    }

    @Override
    public int hashCode() {
        return Objects.hash(ticket, issuerPublicKey);
    }

    /** The ticket's fields without the signature. */
    @Override
    public String toString() {
        return "BorrowedLicense[ticket " + idText() + " " + ticket.firmCode() + "/" + ticket.productCode() + " for '"
                + ticket.clientId() + "' until " + expiresAt() + " issued by " + ticket.issuer() + "]";
    }

    private String idText() {
        return Long.toUnsignedString(ticket.ticketId());
    }

    /**
     * A virtual container's ticket: the vendor's statement is signed by {@code vendorKey}, is for the ticket's firm,
     * and two distinct members of it signed the ticket.
     */
    private static void checkGroup(BorrowTicket ticket, Bytes vendorKey) {
        String id = Long.toUnsignedString(ticket.ticketId());
        GroupKeyStatement statement = statementOf(ticket);
        if (!statement.vendorKey().equals(vendorKey)) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + id + ": the statement of its group's keys "
                    + "is signed by vendor key " + statement.vendorFingerprint() + ", not by the trusted vendor key "
                    + (vendorKey.length() == PUBLIC_KEY_BYTES ? Ed25519Keys.fingerprint(vendorKey.toArray())
                    : "(" + vendorKey.length() + " bytes, not a key)"));
        }
        if (!statement.signatureHolds()) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + id + ": the vendor's signature over the "
                    + "statement of its group's keys does not hold (altered) under vendor key "
                    + statement.vendorFingerprint());
        }
        if (statement.firmCode() != ticket.firmCode()) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + id + " is for firm " + ticket.firmCode()
                    + ", its group's key statement for firm " + statement.firmCode());
        }
        BorrowTicket.GroupSignature group = BorrowTicket.GroupSignature.parse(ticket.signature());
        byte[] payload = ticket.signedPayload();
        int valid = 0;
        for (var signature : group.signatures().entrySet()) {
            int index = signature.getKey();
            if (index < statement.members().size() && Ed25519Keys.verify(publicKey(ticket,
                    statement.members().get(index).publicKey()), payload, signature.getValue().toArray())) {
                valid++;
            }
        }
        if (valid < 2) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + id + " of virtual container "
                    + ticket.issuer() + " carries valid signatures of " + valid + " of its group's containers "
                    + statement.members().stream().map(GroupKeyStatement.Member::serial).toList() + "; 2 are needed "
                    + "(signed by keys the vendor's statement does not name, or altered)");
        }
    }

    private static PublicKey publicKey(BorrowTicket ticket, Bytes raw) {
        if (raw.length() != PUBLIC_KEY_BYTES) {
            throw new CmException(CmError.ACCESS_DENIED, "container " + ticket.issuer() + " has "
                    + (raw.isEmpty() ? "no public key" : "a public key of " + raw.length() + " bytes, not "
                    + PUBLIC_KEY_BYTES) + ": borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                    + " cannot be verified");
        }
        try {
            return Ed25519Keys.publicKey(raw.toArray());
        } catch (IllegalArgumentException e) {
            throw new CmException(CmError.ACCESS_DENIED, "the public key of container " + ticket.issuer()
                    + " is not an Ed25519 key: borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                    + " cannot be verified");
        }
    }
}
