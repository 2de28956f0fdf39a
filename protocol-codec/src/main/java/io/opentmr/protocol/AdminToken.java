package io.opentmr.protocol;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.Optional;
import java.util.Set;

/**
 * The installation's admin token, read from a file only its owner can read ({@value #TOKEN_FILE_KEY}, the
 * launchers' {@code --admin-token-file}). One token serves both doors of a server: the admin messages of the
 * wire protocol (LICENSE_CONTEXT, LICENSE_UPDATE from another host) and the write routes of management HTTP
 * ({@code Authorization: Bearer TOKEN}). A TMR node presents it to its backends when it imports license files
 * for an operator.
 */
public final class AdminToken {

    /** The config key of the token file, shared by backends and TMR nodes. */
    public static final String TOKEN_FILE_KEY = "opentmr.admin.token-file";
    public static final int MIN_TOKEN_CHARS = 16;

    private final String value;
    private final byte[] bytes;

    private AdminToken(String value) {
        this.value = value;
        this.bytes = value.getBytes(StandardCharsets.UTF_8);
    }

    /**
     * A token given as text, as it is (the older {@code opentmr.backend.admin-token} setting, which has no minimum
     * length; tests).
     */
    public static AdminToken of(String value) {
        if (value == null || value.isEmpty()) {
            throw new IllegalArgumentException("an admin token must not be empty");
        }
        return new AdminToken(value);
    }

    /**
     * The token as configured: {@code file} is the value of {@value #TOKEN_FILE_KEY}; blank means none.
     *
     * @throws IllegalArgumentException naming the file and what is wrong with it
     */
    public static Optional<AdminToken> fromSetting(String file) {
        if (file == null || file.isBlank()) {
            return Optional.empty();
        }
        return Optional.of(fromFile(Path.of(file)));
    }

    /**
     * The file's content, trimmed. Refused: an unreadable file, fewer than {@value #MIN_TOKEN_CHARS} characters,
     * or (where the file system has POSIX permissions) a file that its group or others may read or write.
     *
     * @throws IllegalArgumentException naming the file and what is wrong with it
     */
    public static AdminToken fromFile(Path file) {
        String content;
        try {
            content = Files.readString(file, StandardCharsets.UTF_8).strip();
            Set<PosixFilePermission> permissions = posix(file);
            if (permissions != null) {
                Set<PosixFilePermission> open = Set.of(PosixFilePermission.GROUP_READ, PosixFilePermission.GROUP_WRITE,
                        PosixFilePermission.OTHERS_READ, PosixFilePermission.OTHERS_WRITE);
                if (permissions.stream().anyMatch(open::contains)) {
                    throw new IllegalArgumentException(file + " may be read or written by others ("
                            + PosixFilePermissions.toString(permissions) + "); an admin token file must be mode 0600: "
                            + "chmod 600 " + file);
                }
            }
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read " + file + ": " + e.getMessage());
        }
        if (content.length() < MIN_TOKEN_CHARS) {
            throw new IllegalArgumentException(file + " holds " + content.length()
                    + " characters; an admin token needs at least " + MIN_TOKEN_CHARS);
        }
        return new AdminToken(content);
    }

    private static Set<PosixFilePermission> posix(Path file) throws IOException {
        try {
            return Files.getPosixFilePermissions(file);
        } catch (UnsupportedOperationException e) {
            return null;
        }
    }

    /**
     * Writes a new random token (32 bytes, hex) to {@code file}, mode 0600, unless the file exists; returns the
     * token the file holds either way.
     */
    public static AdminToken createIfMissing(Path file) throws IOException {
        if (!Files.exists(file)) {
            byte[] random = new byte[32];
            new SecureRandom().nextBytes(random);
            Path dir = file.toAbsolutePath().getParent();
            Files.createDirectories(dir);
            Path temporary = Files.createTempFile(dir, ".admin-token", ".tmp",
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            try {
                Files.writeString(temporary, HexFormat.of().formatHex(random) + "\n", StandardCharsets.UTF_8);
                // Whole or not at all: a reader never sees half a token.
                Files.move(temporary, file, StandardCopyOption.ATOMIC_MOVE);
            } finally {
                Files.deleteIfExists(temporary);
            }
        }
        return fromFile(file);
    }

    /** The token itself, to present to a server. */
    public String value() {
        return value;
    }

    /** Whether {@code presented} is this token, compared in constant time. */
    public boolean matches(String presented) {
        return presented != null && MessageDigest.isEqual(bytes, presented.getBytes(StandardCharsets.UTF_8));
    }

    @Override
    public String toString() {
        return "AdminToken[hidden]";
    }
}
