package io.opentmr.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Optional;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The cluster secret as a backend or a node reads it from its setting, and the challenge's proofs: the HMACs
 * docs/protocol.md spells out, byte for byte.
 */
class PeerAuthTest {

    private static final String SECRET = "a-cluster-secret-of-more-than-32-characters";

    @TempDir
    Path dir;

    @Test
    void aBlankSettingMeansNoSecret() {
        assertEquals(Optional.empty(), PeerAuth.fromSetting(""));
        assertEquals(Optional.empty(), PeerAuth.fromSetting("  "));
    }

    @Test
    void theSettingNamesTheFileWhoseTrimmedContentIsTheSecret() throws Exception {
        Path file = Files.writeString(dir.resolve("secret"), "  " + "s".repeat(40) + "\n", StandardCharsets.UTF_8);
        PeerAuth fromSetting = PeerAuth.fromSetting(file.toString()).orElseThrow();
        byte[] nonce = new byte[PeerAuth.NONCE_BYTES];
        assertArrayEquals(PeerAuth.fromFile(file).nodeProof(nonce, nonce, "node-a"),
                fromSetting.nodeProof(nonce, nonce, "node-a"));
    }

    @Test
    void aShortOrMissingSecretIsRefusedNamingTheFile() throws Exception {
        Path shortSecret = Files.writeString(dir.resolve("short"), "too short", StandardCharsets.UTF_8);
        IllegalArgumentException tooShort = assertThrows(IllegalArgumentException.class,
                () -> PeerAuth.fromSetting(shortSecret.toString()));
        assertTrue(tooShort.getMessage().contains(shortSecret.toString()), tooShort.getMessage());
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
                () -> PeerAuth.fromSetting(dir.resolve("absent").toString()));
        assertTrue(missing.getMessage().contains("absent"), missing.getMessage());
    }

    private PeerAuth auth() throws Exception {
        Path file = dir.resolve("cluster.secret");
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
        Arrays.fill(nonce, (byte) fill);
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
