package io.opentmr.license;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.LongRange;
import net.jqwik.api.constraints.Size;
import org.junit.jupiter.api.Test;

class CryptTransformTest {

    private static final HexFormat HEX = HexFormat.of();
    private static final byte[] SECRET = HEX.parseHex("000102030405060708090a0b0c0d0e0f");

    /** The vectors in docs/protocol.md are the specification: this implementation must reproduce them. */
    @Test
    void reproducesTheDocumentedTestVectors() throws IOException {
        String doc = Files.readString(Path.of(System.getProperty("basedir", ".")).resolve("../docs/protocol.md"));
        Matcher row = Pattern.compile("(?m)^\\| crypt 0x([0-9A-F]{8}) \\| ([0-9a-f]*|\\(empty\\)) \\| ([0-9a-f]+) \\|$")
                .matcher(doc);
        int vectors = 0;
        while (row.find()) {
            long code = Long.parseLong(row.group(1), 16);
            byte[] data = row.group(2).equals("(empty)") ? new byte[0] : HEX.parseHex(row.group(2));
            byte[] expected = HEX.parseHex(row.group(3));
            assertArrayEquals(expected, CryptTransform.encrypt(SECRET, code, data), "ENCRYPT vector " + row.group(0));
            assertArrayEquals(data, CryptTransform.decrypt(SECRET, code, expected), "DECRYPT vector " + row.group(0));
            vectors++;
        }
        assertEquals(3, vectors, "docs/protocol.md lists three CRYPT test vectors");
    }

    @Property(tries = 300)
    void decryptUndoesEncrypt(@ForAll @Size(16) byte[] secret, @ForAll @LongRange(min = 0, max = 0xFFFF_FFFFL) long code,
                              @ForAll @Size(max = 100) byte[] data) {
        assertArrayEquals(data, CryptTransform.decrypt(secret, code, CryptTransform.encrypt(secret, code, data)));
    }

    @Test
    void anotherCodeOrSecretGivesAnotherResult() {
        byte[] data = "challenge".getBytes();
        byte[] base = CryptTransform.encrypt(SECRET, 7, data);
        assertFalse(HEX.formatHex(base).equals(HEX.formatHex(CryptTransform.encrypt(SECRET, 8, data))));
        byte[] otherSecret = SECRET.clone();
        otherSecret[0] ^= 1;
        assertFalse(HEX.formatHex(base).equals(HEX.formatHex(CryptTransform.encrypt(otherSecret, 7, data))));
    }

    @Test
    void dataThatWasNotEncryptedSoIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> CryptTransform.decrypt(SECRET, 1, new byte[15]));
        assertThrows(IllegalArgumentException.class,
                () -> CryptTransform.decrypt(SECRET, 2, CryptTransform.encrypt(SECRET, 1, new byte[20])));
    }
}
