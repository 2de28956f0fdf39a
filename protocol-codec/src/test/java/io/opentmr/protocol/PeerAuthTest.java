package io.opentmr.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The cluster secret as a backend or a node reads it from its setting. */
class PeerAuthTest {

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
        assertArrayEquals(PeerAuth.fromFile(file).nodeProof(nonce, nonce), fromSetting.nodeProof(nonce, nonce));
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
}
