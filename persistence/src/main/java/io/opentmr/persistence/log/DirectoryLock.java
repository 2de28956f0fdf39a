package io.opentmr.persistence.log;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * An OS lock on {@code LOCK} in the journal directory. The kernel drops it when the process dies, so a process
 * restarted after kill -9 gets it at once; there is no stale lock file to clean up. The file holds the owner's pid
 * only to make the error message useful.
 *
 * <p>Within one JVM the OS lock cannot tell owners apart, and worse: closing <em>any</em> channel on {@code LOCK}
 * drops every POSIX lock this process holds on it. So a second open in the same JVM is refused by a JVM-wide set of
 * locked directories (by real path) before it opens a channel, and never touches the owner's lock.
 */
public final class DirectoryLock implements AutoCloseable {

    static final String FILE_NAME = "LOCK";

    /** Real paths of the directories locked by this JVM. */
    private static final Set<Path> LOCKED_HERE = ConcurrentHashMap.newKeySet();

    private final Path realDir;
    private final FileChannel channel;
    private final FileLock lock;
    private boolean closed;

    private DirectoryLock(Path realDir, FileChannel channel, FileLock lock) {
        this.realDir = realDir;
        this.channel = channel;
        this.lock = lock;
    }

    /**
     * Locks {@code dir} (which must exist) for this process; throws {@link JournalLockedException} if another process
     * or another owner in this JVM holds it. {@code what} names the directory in errors ("journal", "snapshot").
     */
    public static DirectoryLock acquire(Path dir, String what) throws IOException {
        Path realDir = dir.toRealPath();
        if (!LOCKED_HERE.add(realDir)) {
            throw alreadyOpenHere(dir, what);
        }
        boolean acquired = false;
        try {
            DirectoryLock lock = lockFile(dir, realDir, what);
            acquired = true;
            return lock;
        } finally {
            if (!acquired) {
                LOCKED_HERE.remove(realDir);
            }
        }
    }

    /** Called only while this JVM holds no lock on the directory, so closing the channel on failure is harmless. */
    private static DirectoryLock lockFile(Path dir, Path realDir, String what) throws IOException {
        Path file = realDir.resolve(FILE_NAME);
        FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
        FileLock lock;
        try {
            lock = channel.tryLock();
        } catch (OverlappingFileLockException e) {
            // Cannot happen while LOCKED_HERE guards the directory, unless code outside this class locks LOCK.
            channel.close();
            throw alreadyOpenHere(dir, what);
        } catch (IOException e) {
            channel.close();
            throw e;
        }
        if (lock == null) {
            String owner = readOwner(channel);
            channel.close();
            throw new JournalLockedException(what + " directory " + dir + " is locked by another process"
                    + (owner.isEmpty() ? "" : " (pid " + owner + ")") + "; a directory has one owner");
        }
        try {
            channel.truncate(0);
            channel.write(ByteBuffer.wrap(
                    Long.toString(ProcessHandle.current().pid()).getBytes(StandardCharsets.UTF_8)), 0);
        } catch (IOException e) {
            channel.close();
            throw e;
        }
        return new DirectoryLock(realDir, channel, lock);
    }

    private static JournalLockedException alreadyOpenHere(Path dir, String what) {
        return new JournalLockedException(what + " directory " + dir
                + " is already open in this process; a directory has one owner");
    }

    private static String readOwner(FileChannel channel) {
        try {
            ByteBuffer buf = ByteBuffer.allocate(32);
            channel.read(buf, 0);
            return new String(buf.array(), 0, buf.position(), StandardCharsets.UTF_8).trim();
        } catch (IOException e) {
            return "";
        }
    }

    /** The locked directory's real path. */
    public Path directory() {
        return realDir;
    }

    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        try {
            lock.release();
        } finally {
            try {
                channel.close();
            } finally {
                // Only once this JVM's channel is closed may another open here take the directory.
                LOCKED_HERE.remove(realDir);
            }
        }
    }
}
