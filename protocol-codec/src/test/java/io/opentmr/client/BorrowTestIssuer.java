package io.opentmr.client;

import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.Serial;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.util.Arrays;

/** A container key of the tests' own: issues borrow tickets signed as a backend signs them. */
final class BorrowTestIssuer {

    static final Serial SERIAL = new Serial(Serial.MASK_SOFTWARE, 3_000_117);

    private final Serial serial;
    private final KeyPair keys;

    BorrowTestIssuer() {
        this(SERIAL);
    }

    BorrowTestIssuer(Serial serial) {
        this.serial = serial;
        try {
            this.keys = KeyPairGenerator.getInstance("Ed25519").generateKeyPair();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    Serial serial() {
        return serial;
    }

    /** The raw 32-byte public key, as CONTAINER_LIST carries it. */
    Bytes publicKey() {
        byte[] encoded = keys.getPublic().getEncoded();
        return Bytes.of(Arrays.copyOfRange(encoded, encoded.length - 32, encoded.length));
    }

    BorrowTicket issue(long ticketId, long firm, long product, String clientId, long expiresAtMillis) {
        return sign(new BorrowTicket(ticketId, firm, product, clientId, expiresAtMillis, serial, Bytes.EMPTY));
    }

    /** Signs whatever fields {@code ticket} has, its issuer included. */
    BorrowTicket sign(BorrowTicket ticket) {
        return ticket.withSignature(signBytes(ticket.signedPayload()));
    }

    /** This key's Ed25519 signature over {@code data}. */
    Bytes signBytes(byte[] data) {
        try {
            Signature signer = Signature.getInstance("Ed25519");
            signer.initSign(keys.getPrivate());
            signer.update(data);
            return Bytes.of(signer.sign());
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }
}
