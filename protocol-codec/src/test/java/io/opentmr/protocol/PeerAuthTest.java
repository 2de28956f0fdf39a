package io.opentmr.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The challenge's proofs are the HMACs docs/protocol.md spells out, byte for byte. */
class PeerAuthTest {

    private static final String SECRET = "a-cluster-secret-of-more-than-32-characters";

    @TempDir
    Path dir;

    private PeerAuth auth() throws Exception {
        Path file = dir.resolve("secret");
        Files.writeString(file, "  " + SECRET + "\n");
        return PeerAuth.fromFile(file);
    }

    private static byte[] hmac(byte[]... parts) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(SECRET.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
        for (byte[] part : parts) {
            mac.update(part);
        }
        return mac.doFinal();
    }

    private static byte[] nonce(int fill) {
        byte[] nonce = new byte[PeerAuth.NONCE_BYTES];
        java.util.Arrays.fill(nonce, (byte) fill);
        return nonce;
    }

    @Test
    void theNodesProofCoversBothNoncesAndItsName() throws Exception {
        PeerAuth auth = auth();
        byte[] backendNonce = nonce(0xB0);
        byte[] nodeNonce = nonce(0x0A);
        assertArrayEquals(hmac("opentmr-node".getBytes(StandardCharsets.US_ASCII), backendNonce, nodeNonce,
                "node-a".getBytes(StandardCharsets.UTF_8)), auth.nodeProof(backendNonce, nodeNonce, "node-a"));
        assertFalse(PeerAuth.matches(auth.nodeProof(backendNonce, nodeNonce, "node-a"),
                auth.nodeProof(backendNonce, nodeNonce, "node-b")), "another name, another proof");
    }

    @Test
    void theBackendsProofCoversBothNoncesUnderItsOwnLabel() throws Exception {
        PeerAuth auth = auth();
        byte[] backendNonce = nonce(0xB0);
        byte[] nodeNonce = nonce(0x0A);
        assertArrayEquals(hmac("opentmr-backend".getBytes(StandardCharsets.US_ASCII), nodeNonce, backendNonce),
                auth.backendProof(nodeNonce, backendNonce));
    }
}
