package io.opentmr.protocol;

import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * Ed25519 public keys as they travel (raw, 32 bytes) and signature checks, as the JDK provides them: what the SDK
 * needs to check tickets and the vendor's statements offline, and what the servers share with it.
 */
public final class Ed25519Keys {

    /** Length of a raw Ed25519 public key. */
    public static final int PUBLIC_KEY_BYTES = 32;
    /** Length of an Ed25519 signature. */
    public static final int SIGNATURE_BYTES = 64;

    /** DER prefix of an X.509 SubjectPublicKeyInfo for Ed25519; the raw key follows it. */
    private static final byte[] X509_PREFIX = HexFormat.of().parseHex("302a300506032b6570032100");

    private Ed25519Keys() {
    }

    /**
     * The JDK key for a raw one.
     *
     * @throws IllegalArgumentException when {@code raw} is not 32 bytes or not a point of the curve's encoding
     */
    public static PublicKey publicKey(byte[] raw) {
        if (raw.length != PUBLIC_KEY_BYTES) {
            throw new IllegalArgumentException("an Ed25519 public key has 32 bytes, not " + raw.length);
        }
        byte[] encoded = Arrays.copyOf(X509_PREFIX, X509_PREFIX.length + PUBLIC_KEY_BYTES);
        System.arraycopy(raw, 0, encoded, X509_PREFIX.length, PUBLIC_KEY_BYTES);
        try {
            return KeyFactory.getInstance("Ed25519").generatePublic(new X509EncodedKeySpec(encoded));
        } catch (GeneralSecurityException | RuntimeException e) {
            throw new IllegalArgumentException("not a valid Ed25519 public key", e);
        }
    }

    /** Whether {@code signature} is {@code key}'s over {@code data}; malformed input is simply false. */
    public static boolean verify(PublicKey key, byte[] data, byte[] signature) {
        try {
            Signature verifier = Signature.getInstance("Ed25519");
            verifier.initVerify(key);
            verifier.update(data);
            return verifier.verify(signature);
        } catch (GeneralSecurityException | RuntimeException e) {
            return false;
        }
    }

    /** A short name for a raw public key, for logs and error texts: the first 8 bytes of its SHA-256, in hex. */
    public static String fingerprint(byte[] rawPublicKey) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(rawPublicKey), 0, 8);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("no SHA-256", e);
        }
    }
}
