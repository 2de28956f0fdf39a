package io.opentmr.backend;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.opentmr.license.Ed25519;
import io.opentmr.protocol.Serial;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyPair;
import java.security.SecureRandom;
import java.util.Base64;

/**
 * Who a backend's container is: its serial, CmActId and Ed25519 key pair. Created once, on the first
 * start, and kept in {@code DATA_DIR/container.json} (mode 0600, it holds the private key): the
 * serial and key must never change, or issued licenses and lease grants no longer match.
 */
public record ContainerIdentity(Serial serial, long cmActId, KeyPair keys) {

    public static final String FILE = "container.json";
    private static final ObjectMapper JSON = JsonMapper.builder().build();

    private record Stored(String serial, long cmActId, String privateKey, String publicKey) {
    }

    public byte[] rawPublicKey() {
        return Ed25519.raw(keys.getPublic());
    }

    /**
     * Loads the identity from {@code dataDir}, or creates a software container (mask 129, random
     * number) with {@code cmActId} when there is none yet.
     *
     * @throws com.typesafe.config.ConfigException.BadValue if the stored CmActId differs from the configured one
     */
    public static ContainerIdentity loadOrCreate(Path dataDir, long cmActId, SecureRandom random) throws IOException {
        Path file = dataDir.resolve(FILE);
        if (Files.exists(file)) {
            Stored stored = JSON.readValue(file.toFile(), Stored.class);
            if (stored.cmActId() != cmActId) {
                throw new com.typesafe.config.ConfigException.BadValue("opentmr.backend.cm-act-id", "container "
                        + stored.serial() + " in " + file + " has CmActId " + stored.cmActId()
                        + " but the configuration says " + cmActId + "; a container's CmActId never changes");
            }
            Base64.Decoder base64 = Base64.getDecoder();
            KeyPair keys = new KeyPair(Ed25519.publicKey(base64.decode(stored.publicKey())),
                    Ed25519.privateKey(base64.decode(stored.privateKey())));
            return new ContainerIdentity(Serial.parse(stored.serial()), stored.cmActId(), keys);
        }
        Files.createDirectories(dataDir);
        // Numbers of 8 digits, like the serials users know; never 0.
        Serial serial = new Serial(Serial.MASK_SOFTWARE, 10_000_000L + random.nextInt(89_999_999));
        KeyPair keys = Ed25519.generate();
        Base64.Encoder base64 = Base64.getEncoder();
        Stored stored = new Stored(serial.toString(), cmActId, base64.encodeToString(keys.getPrivate().getEncoded()),
                base64.encodeToString(Ed25519.raw(keys.getPublic())));
        Path temp = dataDir.resolve(FILE + ".new");
        Files.deleteIfExists(temp);
        Files.createFile(temp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        JSON.writerWithDefaultPrettyPrinter().writeValue(temp.toFile(), stored);
        // Durable before it is named: a crash must leave either no identity or the whole one.
        try (java.nio.channels.FileChannel channel = java.nio.channels.FileChannel.open(temp,
                java.nio.file.StandardOpenOption.WRITE)) {
            channel.force(true);
        }
        Files.move(temp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        try (java.nio.channels.FileChannel directory = java.nio.channels.FileChannel.open(dataDir,
                java.nio.file.StandardOpenOption.READ)) {
            directory.force(true);
        }
        return new ContainerIdentity(serial, cmActId, keys);
    }
}
