package io.opentmr.persistence.log;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32C;

/**
 * Reads one segment file through a window of {@value #WINDOW} bytes, so a scan holds at most the window and the
 * record under it, however large the segment. A record larger than the window is only loaded whole once its CRC
 * checks out (computed by streaming it), so a damaged length field cannot make a scan allocate for it.
 *
 * <p>The size is taken when the reader opens: a live journal's later appends are not seen, and a file that shrinks
 * meanwhile reads as if torn there.
 */
final class SegmentReader implements AutoCloseable {

    static final int WINDOW = 1 << 20;

    private final Path file;
    private final FileChannel channel;
    private final long size;
    private byte[] window = new byte[0];
    private long windowStart;
    private int windowLength;

    SegmentReader(Path file) throws IOException {
        this.file = file;
        this.channel = FileChannel.open(file, StandardOpenOption.READ);
        this.size = channel.size();
        if (size > Integer.MAX_VALUE - 16) {
            channel.close();
            throw new IOException("segment " + file + " is larger than 2 GiB");
        }
    }

    int size() {
        return (int) size;
    }

    /** Decodes the record at {@code at}; like {@link RecordCodec#decode}, never throws on bad bytes. */
    RecordCodec.Decoded decode(int at, int maxRecordBytes) {
        int off = ensure(at, RecordCodec.HEADER_SIZE);
        int available = windowLength - off;
        if (available >= RecordCodec.HEADER_SIZE && hasMagic(off)) {
            long total = RecordCodec.HEADER_SIZE + (ByteBuffer.wrap(window).getInt(off + 8) & 0xFFFFFFFFL);
            long inFile = size - at;
            if (total <= maxRecordBytes && total > available && total <= inFile
                    && (total <= WINDOW || crcMatches(at, (int) total))) {
                off = ensure(at, (int) total);
                available = windowLength - off;
            }
        }
        return RecordCodec.decode(window, off, off + available, maxRecordBytes);
    }

    /**
     * Whether every byte from {@code at} to the end of the file is zero: the space the writer preallocated after
     * its last record (see {@link LogOptions#preallocate()}). True for {@code at} at the end.
     */
    boolean zerosFrom(int at) {
        ByteBuffer chunk = ByteBuffer.allocate(64 * 1024);
        try {
            for (long from = at; from < size; ) {
                chunk.clear().limit((int) Math.min(chunk.capacity(), size - from));
                int n = readFully(chunk, from);
                if (n <= 0) {
                    // The file shrank since it was opened (a live journal's roll cut it): nothing more to read.
                    return true;
                }
                byte[] bytes = chunk.array();
                for (int i = 0; i < n; i++) {
                    if (bytes[i] != 0) {
                        return false;
                    }
                }
                from += n;
            }
            return true;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Whether the record magic starts at {@code at}. */
    boolean hasMagicAt(int at) {
        int off = ensure(at, 4);
        return windowLength - off >= 4 && hasMagic(off);
    }

    /** The flags byte of the (decoded) record at {@code at}. */
    int flagsAt(int at) {
        return window[ensure(at, RecordCodec.HEADER_SIZE) + 6];
    }

    /** Copies the {@code length} bytes at {@code at} into {@code dst}; throws if the file ends before them. */
    void copy(int at, int length, byte[] dst, int dstOffset) {
        int off = ensure(at, length);
        if (windowLength - off < length) {
            throw new UncheckedIOException(new IOException("segment " + file + " ends before offset " + at + " + "
                    + length));
        }
        System.arraycopy(window, off, dst, dstOffset, length);
    }

    private boolean hasMagic(int off) {
        return window[off] == 0x4F && window[off + 1] == 0x54 && window[off + 2] == 0x4D && window[off + 3] == 0x52;
    }

    /** Streams the CRC32C of a record too large for the window and compares it with the stored one. */
    private boolean crcMatches(long at, int total) {
        CRC32C crc = new CRC32C();
        ByteBuffer chunk = ByteBuffer.allocate(64 * 1024);
        int stored;
        try {
            ByteBuffer header = ByteBuffer.allocate(RecordCodec.HEADER_SIZE);
            if (readFully(header, at) < RecordCodec.HEADER_SIZE) {
                return false;
            }
            crc.update(header.array(), 4, 8);
            stored = header.getInt(12);
            long from = at + RecordCodec.HEADER_SIZE;
            long end = at + total;
            while (from < end) {
                chunk.clear().limit((int) Math.min(chunk.capacity(), end - from));
                int n = readFully(chunk, from);
                if (n < chunk.limit()) {
                    return false;
                }
                crc.update(chunk.array(), 0, n);
                from += n;
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return (int) crc.getValue() == stored;
    }

    /**
     * Offset in the window of the byte at {@code at}, with {@code length} bytes (or what the file has left) loaded
     * from there.
     */
    private int ensure(long at, int length) {
        int wanted = (int) Math.min(length, size - at);
        if (at >= windowStart && at + wanted <= windowStart + windowLength) {
            return (int) (at - windowStart);
        }
        int capacity = Math.max(wanted, WINDOW);
        if (window.length < capacity || (window.length > WINDOW && capacity == WINDOW)) {
            // Grown for one large record, shrunk back after it.
            window = new byte[capacity];
        }
        try {
            windowLength = readFully(ByteBuffer.wrap(window, 0, (int) Math.min(window.length, size - at)), at);
        } catch (IOException e) {
            throw new UncheckedIOException("reading segment " + file, e);
        }
        windowStart = at;
        return 0;
    }

    /** Reads until {@code buf} is full or the file ends; returns the bytes read. */
    private int readFully(ByteBuffer buf, long at) throws IOException {
        int start = buf.position();
        while (buf.hasRemaining()) {
            int n = FileIo.read(channel, buf, at + buf.position() - start);
            if (n < 0) {
                break;
            }
        }
        return buf.position() - start;
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
