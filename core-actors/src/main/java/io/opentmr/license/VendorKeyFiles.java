package io.opentmr.license;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyPair;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.util.Base64;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The vendor's key pair on disk: {@code vendor.key} (private, PKCS#8, mode 0600) and
 * {@code vendor.pub} (raw 32-byte public key). Both are one base64 line after a comment line.
 */
public final class VendorKeyFiles {

    public static final String PRIVATE_FILE = "vendor.key";
    public static final String PUBLIC_FILE = "vendor.pub";

    private VendorKeyFiles() {
    }

    /** Creates a new key pair in {@code dir}; refuses to overwrite an existing one. */
    public static KeyPair generate(Path dir) throws IOException {
        Files.createDirectories(dir);
        Path privatePath = dir.resolve(PRIVATE_FILE);
        Path publicPath = dir.resolve(PUBLIC_FILE);
        if (Files.exists(privatePath) || Files.exists(publicPath)) {
            throw new FileAlreadyExistsException(privatePath.toString(), null,
                    "a vendor key already exists there; move it away first, a lost key cannot be recovered");
        }
        KeyPair pair = Ed25519.generate();
        Files.createFile(privatePath, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        Files.writeString(privatePath, "# OpenTMR vendor private key (Ed25519, PKCS#8). Keep it secret.\n"
                + Base64.getEncoder().encodeToString(pair.getPrivate().getEncoded()) + "\n",
                StandardCharsets.US_ASCII, StandardOpenOption.TRUNCATE_EXISTING);
        Files.writeString(publicPath, "# OpenTMR vendor public key (Ed25519, raw), fingerprint "
                + Ed25519.fingerprint(Ed25519.raw(pair.getPublic())) + "\n"
                + Base64.getEncoder().encodeToString(Ed25519.raw(pair.getPublic())) + "\n", StandardCharsets.US_ASCII);
        return pair;
    }

    public static PrivateKey readPrivate(Path file) throws IOException {
        return Ed25519.privateKey(decode(file));
    }

    public static PublicKey readPublic(Path file) throws IOException {
        return Ed25519.publicKey(decode(file));
    }

    private static byte[] decode(Path file) throws IOException {
        List<String> lines = Files.readAllLines(file, StandardCharsets.US_ASCII);
        String base64 = lines.stream().map(String::strip).filter(l -> !l.isEmpty() && !l.startsWith("#"))
                .collect(Collectors.joining());
        try {
            return Base64.getDecoder().decode(base64);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + " is not a key file: its content is not base64", e);
        }
    }
}
