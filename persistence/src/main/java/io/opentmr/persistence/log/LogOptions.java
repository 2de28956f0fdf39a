package io.opentmr.persistence.log;

import java.nio.file.Path;
import java.util.Objects;
import java.util.function.LongSupplier;

/**
 * What {@link SegmentedLog#open} needs; built from the typed settings, or directly by tests and tools.
 *
 * @param segmentSize         a segment is closed and a new one started before a write would grow it beyond this
 * @param maxBatchBytes       a group commit stops collecting requests at this many bytes
 * @param writeQueueCapacity  requests waiting for the writer; a full queue blocks the caller (back-pressure)
 * @param repair              truncate at damage in the middle instead of refusing to open
 * @param epoch               read once per group commit; stamped on every record of it
 * @param syncer              the fsync seam
 */
public record LogOptions(Path directory, long segmentSize, FsyncPolicy fsync, int maxBatchBytes,
        int writeQueueCapacity, boolean repair, LongSupplier epoch, Syncer syncer) {

    public LogOptions {
        Objects.requireNonNull(directory, "directory");
        Objects.requireNonNull(fsync, "fsync");
        Objects.requireNonNull(epoch, "epoch");
        Objects.requireNonNull(syncer, "syncer");
        if (segmentSize < 4096 || segmentSize > RecordCodec.MAX_RECORD_BYTES) {
            throw new IllegalArgumentException("segment size must be between 4 KiB and 1 GiB, got " + segmentSize);
        }
        if (maxBatchBytes < 1 || writeQueueCapacity < 1) {
            throw new IllegalArgumentException("max batch bytes and write queue capacity must be positive");
        }
    }

    /** Defaults for a directory: 64 MiB segments, {@code batch} fsync, epoch 0. */
    public static LogOptions defaults(Path directory) {
        return new LogOptions(directory, 64L << 20, FsyncPolicy.BATCH, 4 << 20, 4096, false, () -> 0L,
                Syncer.FORCE);
    }

    /**
     * Largest record the log accepts for writing: one that fits in a segment. Reading does not use it (see
     * {@link RecordCodec#MAX_RECORD_BYTES}).
     */
    public int maxRecordBytes() {
        return (int) segmentSize;
    }

    public LogOptions withSegmentSize(long bytes) {
        return new LogOptions(directory, bytes, fsync, maxBatchBytes, writeQueueCapacity, repair, epoch, syncer);
    }

    public LogOptions withFsync(FsyncPolicy policy) {
        return new LogOptions(directory, segmentSize, policy, maxBatchBytes, writeQueueCapacity, repair, epoch,
                syncer);
    }

    public LogOptions withRepair(boolean on) {
        return new LogOptions(directory, segmentSize, fsync, maxBatchBytes, writeQueueCapacity, on, epoch, syncer);
    }

    public LogOptions withEpoch(LongSupplier supplier) {
        return new LogOptions(directory, segmentSize, fsync, maxBatchBytes, writeQueueCapacity, repair, supplier,
                syncer);
    }

    public LogOptions withSyncer(Syncer s) {
        return new LogOptions(directory, segmentSize, fsync, maxBatchBytes, writeQueueCapacity, repair, epoch, s);
    }
}
