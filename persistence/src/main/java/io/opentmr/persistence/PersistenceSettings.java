package io.opentmr.persistence;

import com.typesafe.config.Config;
import io.opentmr.persistence.log.FsyncPolicy;
import io.opentmr.persistence.log.LogOptions;
import io.opentmr.persistence.log.Syncer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * The {@code opentmr.persistence} section of the configuration, read once when the actor system first uses the
 * journal (see reference.conf for what each key means).
 */
public record PersistenceSettings(
        Path directory,
        long segmentSize,
        FsyncPolicy fsync,
        int maxBatchBytes,
        boolean repair,
        int keepSegments,
        Path snapshotDirectory,
        Duration queryRefreshInterval,
        int queryBatchSize,
        long preallocate,
        boolean writeOnCaller) {

    public static final String PATH = "opentmr.persistence";
    /** The dispatcher of replay and snapshot file I/O (blocking), apart from the plugin actors' own threads. */
    public static final String IO_DISPATCHER = PATH + ".io-dispatcher";

    public PersistenceSettings {
        if (segmentSize < 4096 || segmentSize > (1L << 30)) {
            throw new IllegalArgumentException(PATH + ".segment-size must be between 4 KiB and 1 GiB, got "
                    + segmentSize);
        }
        if (maxBatchBytes < 1) {
            throw new IllegalArgumentException(PATH + ".max-batch-bytes must be positive");
        }
        if (keepSegments < 1) {
            throw new IllegalArgumentException(PATH + ".compaction.keep-segments must be at least 1, got "
                    + keepSegments);
        }
        if (queryRefreshInterval.isNegative() || queryRefreshInterval.isZero()) {
            throw new IllegalArgumentException(PATH + ".query.refresh-interval must be positive");
        }
        if (preallocate < 0) {
            throw new IllegalArgumentException(PATH + ".preallocate must be 0 or positive, got " + preallocate);
        }
        if (queryBatchSize < 1) {
            throw new IllegalArgumentException(PATH + ".query.batch-size must be positive");
        }
    }

    /** Reads {@code opentmr.persistence} from the root configuration. */
    public static PersistenceSettings fromConfig(Config root) {
        Config c = root.getConfig(PATH);
        Path dir = Path.of(c.getString("dir"));
        String snapshots = c.getString("snapshot-dir");
        return new PersistenceSettings(
                dir,
                c.getBytes("segment-size"),
                FsyncPolicy.parse(c.getString("fsync")),
                Math.toIntExact(c.getBytes("max-batch-bytes")),
                c.getBoolean("repair"),
                c.getInt("compaction.keep-segments"),
                snapshots.isEmpty() ? dir.resolve("snapshots") : Path.of(snapshots),
                c.getDuration("query.refresh-interval"),
                c.getInt("query.batch-size"),
                c.getBytes("preallocate"),
                c.getBoolean("write-on-caller"));
    }

    /**
     * Options for the log in {@link #directory()}, with the epoch read from {@code epoch} at each group commit and the
     * replicated position from {@code replicatedTo} before each compaction.
     */
    public LogOptions logOptions(LongSupplier epoch, LongSupplier replicatedTo) {
        return new LogOptions(directory, segmentSize, fsync, maxBatchBytes, repair, epoch, Syncer.FORCE, keepSegments,
                replicatedTo, preallocate, writeOnCaller);
    }
}
