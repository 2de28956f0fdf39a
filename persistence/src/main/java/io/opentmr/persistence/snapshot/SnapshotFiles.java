package io.opentmr.persistence.snapshot;

import java.io.IOException;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import java.util.zip.CRC32C;

/**
 * Snapshots as one file each, {@code snapshot-<url-encoded persistence id>-<sequenceNr>-<timestamp>.snap}, written to
 * a temporary file, fsynced and renamed into place, so a crash leaves either the old set or the new one. The file is
 * magic, version, serializer id, manifest, payload and a CRC32C over all of it (docs/journal-format.md).
 */
public final class SnapshotFiles {

    private static final int MAGIC = 0x4F544D53; // "OTMS"
    private static final byte VERSION = 1;
    private static final String PREFIX = "snapshot-";
    private static final String SUFFIX = ".snap";

    /** Identity of a stored snapshot, from its file name. */
    public record Key(String persistenceId, long sequenceNr, long timestamp, Path file) {
    }

    /** A snapshot's serialized form. */
    public record Stored(int serializerId, String manifest, byte[] payload) {
    }

    private final Path dir;

    public SnapshotFiles(Path dir) throws IOException {
        this.dir = dir;
        Files.createDirectories(dir);
    }

    public void save(String persistenceId, long sequenceNr, long timestamp, Stored snapshot) throws IOException {
        byte[] manifest = snapshot.manifest().getBytes(StandardCharsets.UTF_8);
        ByteBuffer buf = ByteBuffer.allocate(4 + 1 + 4 + 4 + manifest.length + 4 + snapshot.payload().length + 4);
        buf.putInt(MAGIC).put(VERSION).putInt(snapshot.serializerId()).putInt(manifest.length).put(manifest)
                .putInt(snapshot.payload().length).put(snapshot.payload());
        CRC32C crc = new CRC32C();
        crc.update(buf.array(), 0, buf.position());
        buf.putInt((int) crc.getValue());
        buf.flip();
        Path target = dir.resolve(fileName(persistenceId, sequenceNr, timestamp));
        Path tmp = dir.resolve(target.getFileName() + ".tmp");
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            while (buf.hasRemaining()) {
                ch.write(buf);
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
        byte[] bytes = Files.readAllBytes(key.file());
        ByteBuffer buf = ByteBuffer.wrap(bytes);
        if (bytes.length < 21 || buf.getInt() != MAGIC || buf.get() != VERSION) {
            throw new IOException("snapshot " + key.file() + " has no valid header");
        }
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
        return new Stored(serializerId, new String(manifest, StandardCharsets.UTF_8), payload);
    }

    /** The id's snapshots, newest (highest sequence number, then timestamp) first. */
    public List<Key> list(String persistenceId) throws IOException {
        String prefix = PREFIX + encode(persistenceId) + "-";
        List<Key> keys = new ArrayList<>();
        try (Stream<Path> files = Files.list(dir)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                String name = p.getFileName().toString();
                if (name.startsWith(prefix) && name.endsWith(SUFFIX)) {
                    Key key = parse(p);
                    if (key != null && key.persistenceId().equals(persistenceId)) {
                        keys.add(key);
                    }
                }
            }
        }
        keys.sort(Comparator.comparingLong(Key::sequenceNr).thenComparingLong(Key::timestamp).reversed());
        return keys;
    }

    public void delete(Key key) throws IOException {
        Files.deleteIfExists(key.file());
    }

    private static Key parse(Path file) {
        String name = file.getFileName().toString();
        String core = name.substring(PREFIX.length(), name.length() - SUFFIX.length());
        int t = core.lastIndexOf('-');
        int s = t > 0 ? core.lastIndexOf('-', t - 1) : -1;
        if (s <= 0) {
            return null;
        }
        try {
            return new Key(URLDecoder.decode(core.substring(0, s), StandardCharsets.UTF_8),
                    Long.parseLong(core.substring(s + 1, t)), Long.parseLong(core.substring(t + 1)), file);
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    private static String fileName(String persistenceId, long sequenceNr, long timestamp) {
        return PREFIX + encode(persistenceId) + "-" + sequenceNr + "-" + timestamp + SUFFIX;
    }

    private static String encode(String persistenceId) {
        return URLEncoder.encode(persistenceId, StandardCharsets.UTF_8);
    }


    private void syncDirectory() {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            // Not every file system lets a directory be fsynced; the rename is then as durable as the OS makes it.
        }
    }
}
