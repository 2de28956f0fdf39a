package io.opentmr.persistence.log;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * File reads and writes of heap buffers in calls of at most {@link #MAX_CALL_BYTES}. The JDK copies a heap buffer
 * through a temporary direct buffer as large as the call, and keeps that buffer for the thread's later calls; one
 * read of a 19 MB record on each of a dispatcher's threads (a standby following a log with a checkpoint of 100 000
 * handles) took the direct memory of a 256 MiB heap and stopped the JVM with {@code OutOfMemoryError: Cannot reserve
 * ... bytes of direct buffer memory}. In slices, each thread keeps at most {@link #MAX_CALL_BYTES}.
 *
 * <p>Direct buffers go through unchanged. Like the {@link FileChannel} calls they wrap, each call may transfer fewer
 * bytes than asked: callers loop.
 */
public final class FileIo {

    /** The most a read or write call transfers from or to a heap buffer (and so the temporary buffer it needs). */
    public static final int MAX_CALL_BYTES = 256 * 1024;

    private FileIo() {
    }

    /** As {@link FileChannel#read(ByteBuffer, long)}, at most {@link #MAX_CALL_BYTES} into a heap buffer. */
    public static int read(FileChannel channel, ByteBuffer dst, long position) throws IOException {
        return sliced(dst, slice -> channel.read(slice, position));
    }

    /** As {@link FileChannel#write(ByteBuffer, long)}, at most {@link #MAX_CALL_BYTES} from a heap buffer. */
    public static int write(FileChannel channel, ByteBuffer src, long position) throws IOException {
        return sliced(src, slice -> channel.write(slice, position));
    }

    /** As {@link FileChannel#write(ByteBuffer)} (at the channel's position), at most {@link #MAX_CALL_BYTES}. */
    public static int write(FileChannel channel, ByteBuffer src) throws IOException {
        return sliced(src, channel::write);
    }

    private interface Transfer {
        int apply(ByteBuffer buffer) throws IOException;
    }

    /** {@code transfer} on {@code buffer} with its limit lowered to a slice (a heap buffer's), then restored. */
    private static int sliced(ByteBuffer buffer, Transfer transfer) throws IOException {
        if (buffer.isDirect() || buffer.remaining() <= MAX_CALL_BYTES) {
            return transfer.apply(buffer);
        }
        int limit = buffer.limit();
        buffer.limit(buffer.position() + MAX_CALL_BYTES);
        try {
            return transfer.apply(buffer);
        } finally {
            buffer.limit(limit);
        }
    }

    /** The whole file, read in slices ({@code Files.readAllBytes} reads it in one call, so through one buffer). */
    public static byte[] readAll(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size > Integer.MAX_VALUE - 16) {
                throw new IOException(file + " has " + size + " bytes, more than one array holds");
            }
            ByteBuffer buf = ByteBuffer.allocate((int) size);
            while (buf.hasRemaining()) {
                if (read(channel, buf, buf.position()) < 0) {
                    throw new IOException(file + " ended at " + buf.position() + " of " + size + " bytes while read");
                }
            }
            return buf.array();
        }
    }
}
