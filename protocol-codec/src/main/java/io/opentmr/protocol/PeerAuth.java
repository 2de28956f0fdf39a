package io.opentmr.protocol;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Optional;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The mutual challenge between a TMR node and a backend on the cluster secret ({@code docs/protocol.md},
 * peer messages): each side proves it knows the secret with an HMAC-SHA256 over both nonces, under a
 * label of its own so that one side's proof can never be replayed as the other's; the node's proof also
 * covers the name it gave in PEER_HELLO.
 */
public final class PeerAuth {

    /** The config key of the secret file, shared by backends and TMR nodes. */
    public static final String SECRET_FILE_KEY = "opentmr.cluster.secret-file";
    public static final int MIN_SECRET_CHARS = 32;
    public static final int NONCE_BYTES = 32;

    private final byte[] secret;

    private PeerAuth(byte[] secret) {
        this.secret = secret;
    }

    /**
     * The cluster secret as configured: {@code secretFile} is the value of {@value #SECRET_FILE_KEY}
     * (a backend and a node read the same key); blank means no secret, so no peers.
     *
     * @throws IllegalArgumentException naming the file and what is wrong with it
     */
    public static Optional<PeerAuth> fromSetting(String secretFile) {
        if (secretFile == null || secretFile.isBlank()) {
            return Optional.empty();
        }
        return Optional.of(fromFile(Path.of(secretFile)));
    }

    /**
     * The secret is the file's content, trimmed; fewer than {@value #MIN_SECRET_CHARS} characters are refused.
     *
     * @throws IllegalArgumentException naming the file and what is wrong with it
     */
    public static PeerAuth fromFile(Path file) {
        String content;
        try {
            content = Files.readString(file, StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read " + file + ": " + e.getMessage());
        }
        if (content.length() < MIN_SECRET_CHARS) {
            throw new IllegalArgumentException(file + " holds " + content.length()
                    + " characters; a cluster secret needs at least " + MIN_SECRET_CHARS);
        }
        return new PeerAuth(content.getBytes(StandardCharsets.UTF_8));
    }

    /** What the backend sends in PEER_CHALLENGE. */
    public byte[] backendProof(byte[] nodeNonce, byte[] backendNonce) {
        return hmac("opentmr-backend", nodeNonce, backendNonce);
    }

    /**
     * What the node sends in PEER_PROOF. It covers the node name of PEER_HELLO (UTF-8, after the two fixed-size
     * nonces), so the name a backend holds the node's leases under is the name the node proved: nobody can
     * relay a node's proof under another name.
     */
    public byte[] nodeProof(byte[] backendNonce, byte[] nodeNonce, String nodeName) {
        return hmac("opentmr-node", backendNonce, nodeNonce, nodeName.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * A value only holders of the secret can compute: HMAC-SHA256 over {@code data} under a label of the
     * caller's own (so that it can never equal a proof). The TMR node derives its handles' resume tokens so.
     */
    public byte[] derive(String label, byte[] data) {
        return hmac(label, data, new byte[0]);
    }

    /** Constant-time comparison, so a wrong proof reveals nothing by its timing. */
    public static boolean matches(byte[] expected, byte[] presented) {
        return MessageDigest.isEqual(expected, presented);
    }

    private byte[] hmac(String label, byte[]... parts) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret, "HmacSHA256"));
            mac.update(label.getBytes(StandardCharsets.US_ASCII));
            for (byte[] part : parts) {
                mac.update(part);
            }
            return mac.doFinal();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is part of every JDK", e);
        }
    }
}
