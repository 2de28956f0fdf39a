package io.opentmr.persistence.log;

import java.nio.file.Path;
import java.util.Objects;
import java.util.function.LongSupplier;

/**
 * What {@link SegmentedLog#open} needs; built from the typed settings, or directly by tests and tools.
 *
 * @param segmentSize     a segment is closed and a new one started before a write would grow it beyond this
 * @param maxBatchBytes   a group commit stops collecting requests at this many bytes
 * @param repair          truncate at damage in the middle instead of refusing to open
 * @param epoch           read once per group commit; stamped on every record of it
 * @param syncer          the fsync seam
 * @param keepSegments    the newest this many segments (the active one included, so at least 1) are never compacted
 *                        or removed
 * @param replicatedTo    the position below which the log is replicated to the twin (exclusive), read before each
 *                        compaction: a segment with a record at or above it is never compacted or removed, since the
 *                        twin's catch-up reads it. {@code Long.MAX_VALUE} while there is no twin.
 * @param preallocate     bytes of zeros the writer puts ahead of the active segment's end whenever a write reaches
 *                        beyond what is already there (never past {@code segmentSize}), so that a group commit's
 *                        fsync rewrites blocks the file already has instead of growing it: on ext4 and most file
 *                        systems a file that grows makes every fdatasync commit the file system's journal too.
 *                        0: off, the file grows with each write
 * @param writeOnCaller   whether an append that finds nothing queued and no batch being written is written and
 *                        fsynced on the caller's thread (it returns once the write is durable; without a commit
 *                        gate its future is then complete) instead of being handed to the writer thread and back: two
 *                        thread wake-ups less per write of an idle log. The caller's thread is then busy for a write
 *                        and an fsync, so it must be one that may block that long. Off: every append goes through
 *                        the writer thread
 */
public record LogOptions(Path directory, long segmentSize, FsyncPolicy fsync, int maxBatchBytes, boolean repair,
        LongSupplier epoch, Syncer syncer, int keepSegments, LongSupplier replicatedTo, long preallocate,
        boolean writeOnCaller) {

    /** Every append through the writer thread. */
    public LogOptions(Path directory, long segmentSize, FsyncPolicy fsync, int maxBatchBytes, boolean repair,
            LongSupplier epoch, Syncer syncer, int keepSegments, LongSupplier replicatedTo, long preallocate) {
        this(directory, segmentSize, fsync, maxBatchBytes, repair, epoch, syncer, keepSegments, replicatedTo,
                preallocate, false);
    }

    /** As before preallocation existed: the active segment grows with each write. */
    public LogOptions(Path directory, long segmentSize, FsyncPolicy fsync, int maxBatchBytes, boolean repair,
            LongSupplier epoch, Syncer syncer, int keepSegments, LongSupplier replicatedTo) {
        this(directory, segmentSize, fsync, maxBatchBytes, repair, epoch, syncer, keepSegments, replicatedTo, 0);
    }

    /** No twin: every durable record counts as replicated. */
    public static final LongSupplier NO_TWIN = () -> Long.MAX_VALUE;

    public LogOptions {
        Objects.requireNonNull(directory, "directory");
        Objects.requireNonNull(fsync, "fsync");
        Objects.requireNonNull(epoch, "epoch");
        Objects.requireNonNull(syncer, "syncer");
        Objects.requireNonNull(replicatedTo, "replicatedTo");
        if (segmentSize < 4096 || segmentSize > RecordCodec.MAX_RECORD_BYTES) {
            throw new IllegalArgumentException("segment size must be between 4 KiB and 1 GiB, got " + segmentSize);
        }
        if (maxBatchBytes < 1) {
            throw new IllegalArgumentException("max batch bytes must be positive");
        }
        if (keepSegments < 1) {
            throw new IllegalArgumentException("keep-segments must be at least 1 (the active segment), got "
                    + keepSegments);
        }
        if (preallocate < 0) {
            throw new IllegalArgumentException("preallocate must be 0 or positive, got " + preallocate);
        }
    }

    /** Defaults for a directory: 64 MiB segments, {@code batch} fsync, epoch 0, only the active segment kept. */
    public static LogOptions defaults(Path directory) {
        return new LogOptions(directory, 64L << 20, FsyncPolicy.BATCH, 4 << 20, false, () -> 0L, Syncer.FORCE, 1,
                NO_TWIN);
    }

    /**
     * Largest record the log accepts for writing: one that fits in a segment. Reading does not use it (see
     * {@link RecordCodec#MAX_RECORD_BYTES}).
     */
    public int maxRecordBytes() {
        return (int) segmentSize;
    }

    public LogOptions withSegmentSize(long bytes) {
        return new LogOptions(directory, bytes, fsync, maxBatchBytes, repair, epoch, syncer, keepSegments,
                replicatedTo, preallocate, writeOnCaller);
    }

    public LogOptions withFsync(FsyncPolicy policy) {
        return new LogOptions(directory, segmentSize, policy, maxBatchBytes, repair, epoch, syncer, keepSegments,
                replicatedTo, preallocate, writeOnCaller);
    }

    public LogOptions withRepair(boolean on) {
        return new LogOptions(directory, segmentSize, fsync, maxBatchBytes, on, epoch, syncer, keepSegments,
                replicatedTo, preallocate, writeOnCaller);
    }

    public LogOptions withEpoch(LongSupplier supplier) {
        return new LogOptions(directory, segmentSize, fsync, maxBatchBytes, repair, supplier, syncer, keepSegments,
                replicatedTo, preallocate, writeOnCaller);
    }

    public LogOptions withSyncer(Syncer s) {
        return new LogOptions(directory, segmentSize, fsync, maxBatchBytes, repair, epoch, s, keepSegments,
                replicatedTo, preallocate, writeOnCaller);
    }

    public LogOptions withKeepSegments(int n) {
        return new LogOptions(directory, segmentSize, fsync, maxBatchBytes, repair, epoch, syncer, n, replicatedTo,
                preallocate, writeOnCaller);
    }

    public LogOptions withReplicatedTo(LongSupplier position) {
        return new LogOptions(directory, segmentSize, fsync, maxBatchBytes, repair, epoch, syncer, keepSegments,
                position, preallocate, writeOnCaller);
    }

    public LogOptions withPreallocate(long bytes) {
        return new LogOptions(directory, segmentSize, fsync, maxBatchBytes, repair, epoch, syncer, keepSegments,
                replicatedTo, bytes, writeOnCaller);
    }

    public LogOptions withWriteOnCaller(boolean on) {
        return new LogOptions(directory, segmentSize, fsync, maxBatchBytes, repair, epoch, syncer, keepSegments,
                replicatedTo, preallocate, on);
    }
}
