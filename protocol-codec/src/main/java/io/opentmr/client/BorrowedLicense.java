package io.opentmr.client;

import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Serial;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.X509EncodedKeySpec;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
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
 * compares it against those.
 *
 * <p><b>Tickets of a TMR node.</b> A ticket issued by a virtual container (mask 131) is signed by the
 * backends, not by the node: the container's public key as CONTAINER_LIST shows it is the group's three
 * container keys (3 × 32 bytes, by backend) and the ticket's signature is {@code u8 n}, then {@code n} times
 * {@code u8 index, 64-byte Ed25519 signature} (index into those keys). It holds when the signatures of at
 * least two distinct keys hold, so no single backend (nor the node) can issue one.
 *
 * <p>Immutable and thread-safe.
 */
public final class BorrowedLicense {

    /** Length of a raw Ed25519 public key. */
    public static final int PUBLIC_KEY_BYTES = 32;

    /** DER prefix of an X.509 SubjectPublicKeyInfo for Ed25519; the raw key follows it. */
    private static final byte[] X509_PREFIX = HexFormat.of().parseHex("302a300506032b6570032100");

    /** Mask of a virtual TMR container, whose tickets carry the signatures of two backends or more. */
    public static final int VIRTUAL_MASK = 131;
    /** Length of one backend signature of a virtual container's ticket: index byte and Ed25519 signature. */
    private static final int GROUP_SIGNATURE_BYTES = 1 + 64;

    private final BorrowTicket ticket;
    private final Bytes issuerPublicKey;
    /** The issuer's key, or for a virtual container the group's (null where a group key is unknown). */
    private final List<PublicKey> keys;

    private BorrowedLicense(BorrowTicket ticket, Bytes issuerPublicKey, List<PublicKey> keys) {
        this.ticket = ticket;
        this.issuerPublicKey = issuerPublicKey;
        this.keys = keys;
    }

    /**
     * A borrowed license for {@code ticket}, once its signature is found to be the issuer's.
     *
     * @param ticket          the ticket from BORROW_OK ({@link LicenseHandle#borrow})
     * @param issuerPublicKey the raw 32-byte Ed25519 public key of the container named by
     *                        {@link BorrowTicket#issuer()}, as CONTAINER_LIST shows it
     * @throws CmException 231 when the key is not an Ed25519 public key or the signature is not the
     *                     key's over the ticket's fields
     */
    public static BorrowedLicense of(BorrowTicket ticket, Bytes issuerPublicKey) {
        Objects.requireNonNull(ticket, "ticket");
        Objects.requireNonNull(issuerPublicKey, "issuerPublicKey");
        List<PublicKey> key = keys(ticket, issuerPublicKey);
        if (!signatureHolds(ticket, key)) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                    + " does not carry a valid signature of container " + ticket.issuer()
                    + ": it was altered or not issued by that container");
        }
        return new BorrowedLicense(ticket, issuerPublicKey, key);
    }

    /** The signed ticket, as the server issued it. */
    public BorrowTicket ticket() {
        return ticket;
    }

    /** The issuer's raw Ed25519 public key the signature was checked against. */
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
     * Checks that the ticket grants offline access to {@code clientId} at {@code now}: the signature
     * holds (checked again, so this call is a complete decision by itself), the ticket was issued to
     * this client, and it has not expired. Returns normally when access is granted.
     *
     * @param clientId the client asking, {@code host/user} (see {@link BorrowStore#clientId(TmrClientOptions)})
     * @param now      the current time, from the caller's clock
     * @throws CmException 231 for a signature that does not hold or a ticket issued to another client,
     *                     35 when the borrow has expired
     */
    public void verify(String clientId, Instant now) {
        Objects.requireNonNull(clientId, "clientId");
        Objects.requireNonNull(now, "now");
        if (!signatureHolds(ticket, keys)) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + idText()
                    + " does not carry a valid signature of container " + ticket.issuer());
        }
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

    private static List<PublicKey> keys(BorrowTicket ticket, Bytes raw) {
        if (ticket.issuer().mask() != VIRTUAL_MASK || raw.isEmpty()) {
            // (An empty key is refused as "no public key" for any container.)
            return List.of(publicKey(ticket, raw));
        }
        if (raw.length() % PUBLIC_KEY_BYTES != 0) {
            throw new CmException(CmError.ACCESS_DENIED, "virtual container " + ticket.issuer() + " lists "
                    + raw.length() + " bytes of group keys, not a multiple of " + PUBLIC_KEY_BYTES
                    + ": borrow ticket " + Long.toUnsignedString(ticket.ticketId()) + " cannot be verified");
        }
        byte[] all = raw.toArray();
        List<PublicKey> group = new ArrayList<>();
        for (int at = 0; at < all.length; at += PUBLIC_KEY_BYTES) {
            byte[] one = Arrays.copyOfRange(all, at, at + PUBLIC_KEY_BYTES);
            // A backend whose key the node did not know when it listed: all zeros, matching no signature.
            group.add(Arrays.equals(one, new byte[PUBLIC_KEY_BYTES]) ? null : publicKey(ticket, Bytes.of(one)));
        }
        return java.util.Collections.unmodifiableList(group);
    }

    private static PublicKey publicKey(BorrowTicket ticket, Bytes raw) {
        if (raw.length() != PUBLIC_KEY_BYTES) {
            throw new CmException(CmError.ACCESS_DENIED, "container " + ticket.issuer() + " has "
                    + (raw.isEmpty() ? "no public key" : "a public key of " + raw.length() + " bytes, not "
                    + PUBLIC_KEY_BYTES) + ": borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                    + " cannot be verified");
        }
        byte[] encoded = Arrays.copyOf(X509_PREFIX, X509_PREFIX.length + PUBLIC_KEY_BYTES);
        System.arraycopy(raw.toArray(), 0, encoded, X509_PREFIX.length, PUBLIC_KEY_BYTES);
        try {
            return KeyFactory.getInstance("Ed25519").generatePublic(new X509EncodedKeySpec(encoded));
        } catch (GeneralSecurityException | RuntimeException e) {
            throw new CmException(CmError.ACCESS_DENIED, "the public key of container " + ticket.issuer()
                    + " is not an Ed25519 key: borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                    + " cannot be verified");
        }
    }

    /**
     * The issuer's signature holds; for a virtual container, the signatures of two distinct group keys or more
     * hold (a malformed list holds nothing).
     */
    private static boolean signatureHolds(BorrowTicket ticket, List<PublicKey> keys) {
        if (ticket.issuer().mask() != VIRTUAL_MASK) {
            return signatureHolds(ticket, keys.get(0), ticket.signature().toArray());
        }
        byte[] blob = ticket.signature().toArray();
        if (blob.length == 0 || blob.length != 1 + (blob[0] & 0xFF) * GROUP_SIGNATURE_BYTES) {
            return false;
        }
        java.util.BitSet valid = new java.util.BitSet();
        for (int at = 1; at < blob.length; at += GROUP_SIGNATURE_BYTES) {
            int index = blob[at] & 0xFF;
            if (index < keys.size() && keys.get(index) != null && !valid.get(index) && signatureHolds(ticket,
                    keys.get(index), Arrays.copyOfRange(blob, at + 1, at + GROUP_SIGNATURE_BYTES))) {
                valid.set(index);
            }
        }
        return valid.cardinality() >= 2;
    }

    /** Malformed keys and signatures make the JDK throw instead of answering false; either way it does not hold. */
    private static boolean signatureHolds(BorrowTicket ticket, PublicKey key, byte[] signature) {
        try {
            Signature verifier = Signature.getInstance("Ed25519");
            verifier.initVerify(key);
            verifier.update(ticket.signedPayload());
            return verifier.verify(signature);
        } catch (GeneralSecurityException | RuntimeException e) {
            return false;
        }
    }
}
