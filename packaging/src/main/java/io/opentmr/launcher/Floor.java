package io.opentmr.launcher;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import org.HdrHistogram.Histogram;

/**
 * {@code tmr bench --floor DIR}: the floor of one client's ACCESS+RELEASE pair on a backend, and how far the
 * backend's p50 is above it (DESIGN §8: at most {@value #TARGET} ×).
 *
 * <p>A backend answers each of the two requests once its journal write is durable, so no backend can answer a pair
 * faster than <b>two durable writes and two round trips</b>. Both are measured in the same run as the backend:
 * <ul>
 *   <li>the durable write: {@value #RECORD}-byte records written one after the other into a file in {@code DIR} (give
 *       the backend's data directory, or one on the same disk), each followed by {@link FileChannel#force
 *       force(false)} (fdatasync), over space written with zeros and synced first, as the journal preallocates its
 *       segment ({@code persistence/README.md}); p50 of {@value #SYNCS} of them (at most {@link #MAX_PROBE});</li>
 *   <li>the two round trips: the p50 of a pair of the same client (the same SDK, one connection) against the
 *       in-process echo server, which answers from canned replies with no work: every cost of the client, the
 *       loopback and a server's network path.</li>
 * </ul>
 * floor = 2 × fsync p50 + echo pair p50.
 */
final class Floor {

    /** DESIGN §8: a one-client pair's p50 on a backend at most this many times the floor. */
    static final double TARGET = 1.5;
    static final int RECORD = 256;
    static final int SYNCS = 2000;
    static final Duration MAX_PROBE = Duration.ofSeconds(5);
    /** Zeros written and synced ahead of the records, as a journal segment is preallocated. */
    static final int AHEAD = RECORD * SYNCS;

    private Floor() {
    }

    /** The durable writes measured in one directory. */
    record Fsync(Path dir, long count, double p50Ms, double p99Ms) {
    }

    /**
     * Writes and syncs {@value #SYNCS} records (or as many as {@link #MAX_PROBE} allows) into a new file in
     * {@code dir}, deleted afterwards.
     */
    static Fsync fsync(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new IOException("--floor " + dir + " is not a directory");
        }
        Path file = Files.createTempFile(dir, "tmr-bench-floor-", ".tmp");
        Histogram latency = new Histogram(3);
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ByteBuffer zeros = ByteBuffer.allocate(AHEAD);
            while (zeros.hasRemaining()) {
                channel.write(zeros);
            }
            channel.force(true);
            ByteBuffer record = ByteBuffer.allocate(RECORD);
            long deadline = System.nanoTime() + MAX_PROBE.toNanos();
            for (int i = 0; i < SYNCS && System.nanoTime() - deadline < 0; i++) {
                record.clear();
                record.putLong(0, i);
                long start = System.nanoTime();
                while (record.hasRemaining()) {
                    channel.write(record, (long) i * RECORD + record.position());
                }
                channel.force(false);
                latency.recordValue(Math.max(1, System.nanoTime() - start));
            }
        } finally {
            Files.deleteIfExists(file);
        }
        return new Fsync(dir, latency.getTotalCount(), latency.getValueAtPercentile(50) / 1e6,
                latency.getValueAtPercentile(99) / 1e6);
    }

    /** The backend's one-client pair against the floor measured beside it. */
    record Verdict(Fsync fsync, double echoPairP50Ms, double serverPairP50Ms) {

        double floorMs() {
            return 2 * fsync.p50Ms() + echoPairP50Ms;
        }

        double ratio() {
            return floorMs() > 0 ? serverPairP50Ms / floorMs() : Double.NaN;
        }

        boolean met() {
            return ratio() <= TARGET;
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("dir", fsync.dir().toString());
            m.put("fsyncs", fsync.count());
            m.put("fsyncP50Ms", BenchCommand.Result.round(fsync.p50Ms()));
            m.put("fsyncP99Ms", BenchCommand.Result.round(fsync.p99Ms()));
            m.put("echoPairP50Ms", BenchCommand.Result.round(echoPairP50Ms));
            m.put("floorMs", BenchCommand.Result.round(floorMs()));
            m.put("pairP50Ms", BenchCommand.Result.round(serverPairP50Ms));
            m.put("ratio", BenchCommand.Result.round(ratio()));
            m.put("ratioAtMost", TARGET);
            m.put("met", met());
            return m;
        }

        String text() {
            return String.format(java.util.Locale.ROOT, "floor of a one-client pair: 2 × fsync p50 %.3f ms (%d "
                            + "fdatasyncs of %d bytes in %s; p99 %.3f ms) + echo pair p50 %.3f ms = %.3f ms%n"
                            + "server pair p50 %.3f ms = %.2f × the floor (backend target: at most %s ×: %s)",
                    fsync.p50Ms(), fsync.count(), RECORD, fsync.dir(), fsync.p99Ms(), echoPairP50Ms, floorMs(),
                    serverPairP50Ms, ratio(), BenchCommand.Result.round(TARGET), met() ? "met" : "NOT met");
        }
    }
}
