package io.opentmr.launcher;

import io.opentmr.protocol.PeerAuth;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The files {@code tmr demo} keeps in its directory: the cluster secret and {@code demo.json}. */
final class DemoFiles {

    static final String SECRET_FILE = "cluster.secret";
    static final String MANIFEST_FILE = "demo.json";

    static final String ADMIN_TOKEN_FILE = "admin.token";

    /**
     * One process of the demo as {@code demo.json} lists it.
     *
     * @param admin   the URL of its management HTTP ({@code http://127.0.2.1:7626}), or null
     * @param command how it was started ({@code java … -jar opentmr.jar ARGS}): how {@code tmr bench --failover}
     *                starts a killed node again; empty when not known
     */
    record Component(String name, String role, String address, String admin, long pid, Path log,
                     List<String> command) {

        Component {
            command = List.copyOf(command);
        }

        Component(String name, String role, String address, String admin, long pid, Path log) {
            this(name, role, address, admin, pid, log, List.of());
        }

        Component(String name, String role, String address, long pid, Path log) {
            this(name, role, address, null, pid, log, List.of());
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", name);
            m.put("role", role);
            m.put("address", address);
            m.put("admin", admin);
            m.put("pid", pid);
            m.put("log", log.toString());
            if (!command.isEmpty()) {
                m.put("command", command);
            }
            return m;
        }
    }

    private DemoFiles() {
    }

    /**
     * The cluster secret of the demo: kept when the file exists (and is long enough), else 64 random hex
     * characters in a new file that only its owner can read, created with that mode so the secret is never
     * readable by others, not even for an instant.
     */
    static Path clusterSecret(Path file, SecureRandom random) throws IOException {
        if (Files.exists(file)) {
            PeerAuth.fromFile(file);
            return file;
        }
        byte[] bytes = new byte[32];
        random.nextBytes(bytes);
        Files.createDirectories(file.toAbsolutePath().getParent());
        try {
            Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        } catch (FileAlreadyExistsException raced) {
            PeerAuth.fromFile(file);
            return file;
        }
        Files.writeString(file, HexFormat.of().formatHex(bytes) + "\n", StandardCharsets.US_ASCII,
                StandardOpenOption.TRUNCATE_EXISTING);
        return file;
    }

    /**
     * Writes {@code demo.json}: the components, and whatever else the demo tells scripts ({@code extra}).
     * Written to a temporary file and renamed, so a reader never sees half a file.
     */
    static Path writeManifest(Path dir, List<Component> components, Map<String, Object> extra) throws IOException {
        Map<String, Object> manifest = new LinkedHashMap<>();
        List<Map<String, Object>> list = new ArrayList<>();
        components.forEach(c -> list.add(c.toMap()));
        manifest.put("components", list);
        manifest.putAll(extra);
        Path file = dir.resolve(MANIFEST_FILE);
        Path temp = Files.createTempFile(dir, MANIFEST_FILE, ".tmp");
        try {
            Files.writeString(temp, Output.toJson(manifest) + "\n", StandardCharsets.UTF_8);
            try {
                Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(temp);
        }
        return file;
    }

    /** The components' table for people. */
    static String table(List<Component> components) {
        StringBuilder text = new StringBuilder(String.format("%-10s %-8s %-18s %-22s %-8s %s%n", "NAME", "ROLE",
                "ADDRESS", "ADMIN", "PID", "LOG"));
        for (Component c : components) {
            text.append(String.format("%-10s %-8s %-18s %-22s %-8d %s%n", c.name(), c.role(), c.address(),
                    c.admin() == null ? "-" : c.admin(), c.pid(), c.log()));
        }
        return text.toString();
    }
}
