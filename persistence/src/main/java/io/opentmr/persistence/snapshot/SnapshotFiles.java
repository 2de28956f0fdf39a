package io.opentmr.persistence.snapshot;

import io.opentmr.persistence.Serialized;
import io.opentmr.persistence.log.FileIo;
import java.io.IOException;
import java.net.URLEncoder;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.function.BiConsumer;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.CRC32C;

/**
 * Snapshots as one file each, {@code snapshot-<url-encoded persistence id>-<sequenceNr>-<timestamp>.snap}, written to
 * a temporary file, fsynced and renamed into place, so a crash leaves either the old set or the new one. A persistence
 * id whose encoded form would make the name too long for a file system ({@value #MAX_ENCODED_ID} bytes) is named by
 * {@code ~} and the hex SHA-256 of its UTF-8 bytes instead. The file is magic, version, serializer id, manifest,
 * payload, (version 2) the snapshot's metadata, and a CRC32C over all of it (docs/journal-format.md).
 */
public final class SnapshotFiles {

    private static final int MAGIC = 0x4F544D53; // "OTMS"
    private static final byte VERSION = 2;
    private static final byte VERSION_1 = 1;
    /** Longest URL-encoded persistence id kept in a file name: the name then stays well below 255 bytes. */
    static final int MAX_ENCODED_ID = 160;
    private static final Pattern SEQ_AND_TIME = Pattern.compile("(\\d+)-(\\d+)");
    private static final String PREFIX = "snapshot-";
    private static final String SUFFIX = ".snap";

    /** Identity of a stored snapshot, from its file name. */
    public record Key(String persistenceId, long sequenceNr, long timestamp, Path file) {
    }

    /** A snapshot's serialized form, and its serialized metadata (Pekko's {@code SnapshotMetadata.metadata}) or null. */
    public record Stored(Serialized snapshot, Serialized metadata) {
    }

    /** A damaged newest snapshot falls back to older ones, but not endlessly: this many are tried at most. */
    public static final int MAX_LOAD_ATTEMPTS = 3;

    /** A snapshot file and what {@link #loadNewest} made of it. */
    public record Loaded<T>(Key key, T value) {
    }

    /** What {@link #loadNewest} makes of a stored snapshot (deserializes it); throws if it cannot. */
    @FunctionalInterface
    public interface Reader<T> {
        T read(Key key, Stored stored) throws Exception;
    }

    private final Path dir;
    private final boolean readOnly;

    /** The snapshot files of {@code dir}, which is created if missing (the snapshot store's). */
    public SnapshotFiles(Path dir) throws IOException {
        this(dir, false);
        Files.createDirectories(dir);
    }

    private SnapshotFiles(Path dir, boolean readOnly) {
        this.dir = dir;
        this.readOnly = readOnly;
    }

    /**
     * The snapshot files of {@code dir} for reading only (the journal tools, beside a live node): nothing is created,
     * a missing directory holds no snapshot, and saving or deleting is refused.
     */
    public static SnapshotFiles readOnly(Path dir) {
        return new SnapshotFiles(dir, true);
    }

    private void checkWritable() {
        if (readOnly) {
            throw new IllegalStateException("the snapshot files of " + dir + " were opened for reading only");
        }
    }

    /**
     * The snapshot recovery starts from: of {@code newestFirst} (as {@link #list} orders them), the newest that
     * {@code matches} and that {@code reader} can read. A damaged or unreadable one is passed to {@code failed} and
     * an older one tried, up to {@value #MAX_LOAD_ATTEMPTS} in all. The snapshot store and the journal tools both
     * choose with it, so a replay starts where the node's recovery does.
     */
    public <T> Optional<Loaded<T>> loadNewest(List<Key> newestFirst, Predicate<Key> matches, Reader<T> reader,
            BiConsumer<Key, Exception> failed) {
        int attempts = 0;
        for (Key key : newestFirst) {
            if (!matches.test(key)) {
                continue;
            }
            if (attempts++ == MAX_LOAD_ATTEMPTS) {
                break;
            }
            try {
                return Optional.of(new Loaded<>(key, reader.read(key, read(key))));
            } catch (Exception e) {
                failed.accept(key, e);
            }
        }
        return Optional.empty();
    }

    public void save(String persistenceId, long sequenceNr, long timestamp, Stored stored) throws IOException {
        checkWritable();
        Serialized snapshot = stored.snapshot();
        Serialized metadata = stored.metadata();
        byte[] manifest = snapshot.manifest().getBytes(StandardCharsets.UTF_8);
        byte[] metadataManifest = metadata == null ? new byte[0] : metadata.manifest().getBytes(StandardCharsets.UTF_8);
        int metadataBytes = metadata == null ? 4 : 4 + 4 + 4 + metadataManifest.length + metadata.bytes().length;
        ByteBuffer buf = ByteBuffer.allocate(4 + 1 + 4 + 4 + manifest.length + 4 + snapshot.bytes().length
                + metadataBytes + 4);
        buf.putInt(MAGIC).put(VERSION).putInt(snapshot.serializerId()).putInt(manifest.length).put(manifest)
                .putInt(snapshot.bytes().length).put(snapshot.bytes());
        if (metadata == null) {
            buf.putInt(-1);
        } else {
            buf.putInt(metadata.bytes().length).putInt(metadata.serializerId()).putInt(metadataManifest.length)
                    .put(metadataManifest).put(metadata.bytes());
        }
        CRC32C crc = new CRC32C();
        crc.update(buf.array(), 0, buf.position());
        buf.putInt((int) crc.getValue());
        buf.flip();
        Path target = dir.resolve(fileName(persistenceId, sequenceNr, timestamp));
        Path tmp = dir.resolve(target.getFileName() + ".tmp");
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            while (buf.hasRemaining()) {
                FileIo.write(ch, buf);
            }
            ch.force(false);
        }
        try {
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
        }
        syncDirectory();
    }

    /** Reads a snapshot file; throws if it is damaged. */
    public Stored read(Key key) throws IOException {
        byte[] bytes = FileIo.readAll(key.file());
        ByteBuffer buf = ByteBuffer.wrap(bytes);
        byte version = bytes.length < 21 ? 0 : bytes[4];
        if (buf.getInt() != MAGIC || (version != VERSION && version != VERSION_1)) {
            throw new IOException("snapshot " + key.file() + " has no valid header");
        }
        buf.get();
        CRC32C crc = new CRC32C();
        crc.update(bytes, 0, bytes.length - 4);
        if ((int) crc.getValue() != ByteBuffer.wrap(bytes, bytes.length - 4, 4).getInt()) {
            throw new IOException("snapshot " + key.file() + " fails its CRC32C check");
        }
        int serializerId = buf.getInt();
        byte[] manifest = new byte[buf.getInt()];
        buf.get(manifest);
        byte[] payload = new byte[buf.getInt()];
        buf.get(payload);
        Serialized metadata = null;
        if (version != VERSION_1) {
            int metadataLength = buf.getInt();
            if (metadataLength >= 0) {
                int metadataSerializer = buf.getInt();
                byte[] metadataManifest = new byte[buf.getInt()];
                buf.get(metadataManifest);
                byte[] metadataBytes = new byte[metadataLength];
                buf.get(metadataBytes);
                metadata = new Serialized(metadataSerializer, new String(metadataManifest, StandardCharsets.UTF_8),
                        metadataBytes);
            }
        }
        return new Stored(new Serialized(serializerId, new String(manifest, StandardCharsets.UTF_8), payload),
                metadata);
    }

    /** The id's snapshots, newest (highest sequence number, then timestamp) first. */
    public List<Key> list(String persistenceId) throws IOException {
        String prefix = PREFIX + nameOf(persistenceId) + "-";
        List<Key> keys = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            // Only a read-only instance gets here (the store's creates its directory): a journal without snapshots.
            return keys;
        }
        try (Stream<Path> files = Files.list(dir)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                String name = p.getFileName().toString();
                if (name.startsWith(prefix) && name.endsWith(SUFFIX)) {
                    // Exactly "<seq>-<time>" after the prefix: the files of id "a-1" also start with "snapshot-a-".
                    Matcher m = SEQ_AND_TIME.matcher(name.substring(prefix.length(), name.length() - SUFFIX.length()));
                    if (m.matches()) {
                        try {
                            keys.add(new Key(persistenceId, Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), p));
                        } catch (NumberFormatException e) {
                            // Digits beyond a long: not a file we wrote.
                        }
                    }
                }
            }
        }
        keys.sort(Comparator.comparingLong(Key::sequenceNr).thenComparingLong(Key::timestamp).reversed());
        return keys;
    }

    /**
     * Moves every snapshot file into a new subdirectory {@code set-aside-<millis>} of this one, where no recovery
     * looks (it lists this directory only) and an operator still finds them: for snapshots that may stand for events
     * no longer in the journal (a log about to be cut back to a replication leader's). Returns how many were moved.
     */
    public int setAside(long nowMillis) throws IOException {
        checkWritable();
        List<Path> snapshots = new ArrayList<>();
        try (Stream<Path> files = Files.list(dir)) {
            files.filter(p -> p.getFileName().toString().endsWith(SUFFIX) && Files.isRegularFile(p))
                    .forEach(snapshots::add);
        }
        if (snapshots.isEmpty()) {
            return 0;
        }
        Path aside = dir.resolve("set-aside-" + nowMillis);
        Files.createDirectories(aside);
        for (Path file : snapshots) {
            Files.move(file, aside.resolve(file.getFileName()), java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        }
        syncDirectory(aside);
        syncDirectory(dir);
        return snapshots.size();
    }

    public void delete(Key key) throws IOException {
        checkWritable();
        Files.deleteIfExists(key.file());
    }

    private static String fileName(String persistenceId, long sequenceNr, long timestamp) {
        return PREFIX + nameOf(persistenceId) + "-" + sequenceNr + "-" + timestamp + SUFFIX;
    }

    /** The persistence id as it appears in file names: URL-encoded, or {@code ~} and its SHA-256 if that is long. */
    private static String nameOf(String persistenceId) {
        String encoded = URLEncoder.encode(persistenceId, StandardCharsets.UTF_8);
        if (encoded.length() <= MAX_ENCODED_ID) {
            return encoded;
        }
        try {
            // URLEncoder never emits '~', so a hashed name cannot equal an encoded one.
            return "~" + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                    .digest(persistenceId.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is a required JDK algorithm", e);
        }
    }


    private void syncDirectory() {
        syncDirectory(dir);
    }

    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            // Not every file system lets a directory be fsynced; the rename is then as durable as the OS makes it.
        }
    }
}
