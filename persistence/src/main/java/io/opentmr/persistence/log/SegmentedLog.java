package io.opentmr.persistence.log;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A directory of append-only segment files with an in-memory index, written by one thread with group commit.
 *
 * <p>Writers hand encoded records to a bounded queue; the writer thread takes what is queued (up to
 * {@code maxBatchBytes}), stamps positions and the epoch, writes it with one {@code write} and, unless the policy is
 * {@code never}, one fsync, then publishes it to the index and completes the callers' futures. So nothing is
 * acknowledged or visible to readers before it is durable. The design follows Ratis' SegmentedRaftLogWorker: one
 * writer, a bounded queue, fsync per batch.
 *
 * <p>Readers (replay, queries, replication) read the index under a read lock and the files with positional reads,
 * concurrently with the writer, through a channel of their own per segment: an interrupted reader closes that one
 * (reopened by the next read), never the writer's.
 */
public final class SegmentedLog implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(SegmentedLog.class);
    private static final WriteRequest CLOSE = new WriteRequest(List.of(), null);
    /** Retries of a raw read whose segment was replaced (compacted) or removed while it read. */
    private static final int READ_ATTEMPTS = 10;
    /** How long close() waits for the writer to finish what is queued, and again after interrupting it. */
    private static final long CLOSE_WAIT_MILLIS = 5_000;

    private final LogOptions options;
    private final Path dir;
    private final DirectoryLock lock;
    private final ReadWriteLock indexLock = new ReentrantReadWriteLock();
    private final TreeMap<Long, Segment> segments = new TreeMap<>();
    private final Map<String, PidIndex> pids = new HashMap<>();
    private final List<String> pidOrder = new ArrayList<>();
    private final Map<String, LongArray> tags = new HashMap<>();
    /**
     * Runs of epochs: the position where each run of records with one epoch starts, and that epoch. A few entries
     * (one per change of writer); what replication's handshake asks about. Under the index lock.
     */
    private final TreeMap<Long, Long> epochRuns = new TreeMap<>();
    /** Called with each durable batch; its stage holds the writers' acknowledgement (replication). */
    private volatile CommitGate commitGate;
    /** Entries in {@link #tags}, and events deleted since the tag index was last pruned of deleted positions. */
    private long tagEntries;
    private long deletedSincePrune;
    private final BlockingQueue<WriteRequest> queue;
    private final Thread writer;
    /**
     * Held while a batch is written, by the writer thread or by a caller writing its own request ({@link #append}):
     * one writer of the files at a time, and what one wrote is visible to the next.
     */
    private final ReentrantLock writing = new ReentrantLock();
    /** Requests queued and not yet written (taken or not): a caller writes its own only when there are none. */
    private final AtomicInteger unwritten = new AtomicInteger();
    /** Compacts segments in the background (see {@link #compactNow}); woken when records die or a segment rolls. */
    private final Thread compactor;
    private final Semaphore compactionWanted = new Semaphore(0);
    /** One compaction pass at a time: the background thread's or a caller's of {@link #compactNow}. */
    private final Object compactionLock = new Object();
    /** Set by the writer when a batch deleted records or rolled a segment; the compactor is woken after it. */
    private boolean recordsDied;
    private final LongAdder compactions = new LongAdder();
    /** Next position the writer assigns; only the writer thread moves it. */
    private volatile long nextPosition;
    /** Next position after the last record in the index: readers see everything below it. */
    private volatile long published;
    private volatile boolean closed;
    /** close() gave up waiting for a caller's write and closed the files under it. Under the index lock. */
    private boolean closedUnderWrite;
    private volatile IOException failure;
    /** Written by the writer thread only; read by the compactor too. */
    private volatile Segment active;
    /** Segments the current batch rolled: sealed once its records are indexed. Writer thread only. */
    private final List<Segment> rolled = new ArrayList<>();
    private byte[] batchBuffer = new byte[64 * 1024];
    /** A request of another kind than its batch's, taken from the queue: it starts the next batch. Writer only. */
    private WriteRequest held;
    private final LongAdder writeCount = new LongAdder();
    private final LongAdder fsyncCount = new LongAdder();
    private final LongAdder recordCount = new LongAdder();

    /** Counters since open: group commits, fsyncs and records written. For metrics and the benchmark. */
    public record Stats(long writes, long fsyncs, long records) {
    }

    public Stats stats() {
        return new Stats(writeCount.sum(), fsyncCount.sum(), recordCount.sum());
    }

    /**
     * Holds back the acknowledgement of a durable batch: the twin's leader ships it and completes the stage once the
     * follower has it too (or it gave up waiting). Called on the writer thread after the batch is durable here and in
     * the index, in position order; it must not block. A stage that fails, or a gate that throws, acknowledges the
     * batch anyway (the records are durable here) and is logged.
     */
    @FunctionalInterface
    public interface CommitGate {
        CompletionStage<?> committed(long firstPosition, long nextPosition);
    }

    /** Sets (or, with null, removes) the gate of every later batch. */
    public void setCommitGate(CommitGate gate) {
        this.commitGate = gate;
    }

    /** The epoch the next group commit stamps on its records. */
    public long currentEpoch() {
        return options.epoch().getAsLong();
    }

    /** Encoded records of one atomic write: all of them reach the log, or none does. */
    public static final class Group {
        private final List<Entry> entries;
        private final int bytes;

        private Group(List<Entry> entries) {
            this.entries = entries;
            // A tombstone is encoded by the writer; 64 bytes is a fair guess of its size for batching.
            this.bytes = entries.stream().mapToInt(e -> e.bytes == null ? 64 : e.bytes.length).sum();
        }
    }

    /**
     * Where a request ended up. {@code endOffset} is the end of its last record in {@code lastSegment}: durable
     * once that segment is synced at least that far. Positions are -1 for a request that wrote nothing.
     */
    public record Appended(long firstPosition, long lastPosition, Path lastSegment, long endOffset) {
    }

    private record Entry(RecordType type, String pid, long sequenceNr, List<String> tags, byte[] bytes) {
    }

    /** What a request asks the writer to do; requests of one kind are batched together. */
    private enum Kind { APPEND, REPLICATED, TRUNCATE }

    private static final class WriteRequest {
        final Kind kind;
        final List<Group> groups;
        final CompletableFuture<Appended> done;
        final int bytes;
        /** REPLICATED: the leader's records, and the position its chunk starts at; TRUNCATE: the position. */
        final byte[] replicated;
        final long from;
        Appended result;

        /** Why the writer refused this request alone (the others of its batch are written), or null. */
        RuntimeException refused;

        WriteRequest(List<Group> groups, CompletableFuture<Appended> done) {
            this.kind = Kind.APPEND;
            this.groups = groups;
            this.done = done;
            this.bytes = groups.stream().mapToInt(g -> g.bytes).sum();
            this.replicated = null;
            this.from = -1;
        }

        WriteRequest(Kind kind, long from, byte[] replicated, CompletableFuture<Appended> done) {
            this.kind = kind;
            this.groups = List.of();
            this.done = done;
            this.bytes = replicated == null ? 0 : replicated.length;
            this.replicated = replicated;
            this.from = from;
        }
    }

    private static final class Segment {
        final Path path;
        final long firstPosition;
        final IntArray offsets = new IntArray();
        /**
         * Positions of the records, once they are not consecutive (compaction left gaps); null while record i has
         * position {@code firstPosition + i}, which keeps the index of an ordinary segment at 4 bytes a record.
         */
        private LongArray positions;
        /** Indexes of records deleted or superseded by a tombstone. */
        final BitSet dead = new BitSet();
        /** The writer's channel; null for a compacted segment. Readers never touch it. */
        FileChannel channel;
        /** Readers' channel, opened on demand and reopened after an interrupted reader closed it. */
        private FileChannel readChannel;
        /** Set once the segment left the log (deleted, replaced by its compacted copy, or the log closed). */
        private boolean gone;
        volatile long size;
        /**
         * The writer's: bytes the file holds, at least {@link #size}; the rest after {@code size} is zeros it
         * preallocated ({@link LogOptions#preallocate()}).
         */
        long allocated;
        int live;
        /** Bytes of the records not deleted; what compaction would keep. */
        long liveBytes;
        private int lastLength;
        /** Compaction of this segment failed once; not tried again until the log is reopened. */
        boolean compactionFailed;
        /**
         * Closed and every record of it indexed (set under the write lock): only then may compaction copy it. A
         * segment rolled in the middle of a batch gets the batch's records indexed only after the batch.
         */
        boolean sealed;

        Segment(Path path, long firstPosition) {
            this.path = path;
            this.firstPosition = firstPosition;
        }

        int count() {
            return offsets.size();
        }

        long positionAt(int i) {
            return positions == null ? firstPosition + i : positions.get(i);
        }

        /** Index of the record at {@code position}, or -1 if the segment has none there. */
        int indexOf(long position) {
            if (positions == null) {
                long i = position - firstPosition;
                return i >= 0 && i < count() ? (int) i : -1;
            }
            int i = positions.lowerBound(position);
            return i < positions.size() && positions.get(i) == position ? i : -1;
        }

        /** Index of the first record at or after {@code position}. */
        int lowerBound(long position) {
            if (positions == null) {
                return (int) Math.max(0, Math.min(count(), position - firstPosition));
            }
            return positions.lowerBound(position);
        }

        int lengthAt(int i) {
            return i + 1 < count() ? offsets.get(i + 1) - offsets.get(i) : lastLength;
        }

        void add(int offset, long position, int length) {
            if (positions == null && position != firstPosition + count()) {
                positions = new LongArray();
                for (int i = 0; i < count(); i++) {
                    positions.add(firstPosition + i);
                }
            }
            if (positions != null) {
                positions.add(position);
            }
            offsets.add(offset);
            lastLength = length;
            live++;
            liveBytes += length;
        }

        void markDead(int i) {
            if (!dead.get(i)) {
                dead.set(i);
                live--;
                liveBytes -= lengthAt(i);
            }
        }

        /** The readers' channel; throws {@link ClosedChannelException} once the segment is gone. */
        synchronized FileChannel readChannel() throws IOException {
            if (gone) {
                throw new ClosedChannelException();
            }
            if (readChannel == null || !readChannel.isOpen()) {
                readChannel = FileChannel.open(path, StandardOpenOption.READ);
            }
            return readChannel;
        }

        synchronized boolean gone() {
            return gone;
        }

        /** Closes both channels; later reads find nothing. */
        synchronized void closeChannels() throws IOException {
            gone = true;
            try {
                if (readChannel != null) {
                    readChannel.close();
                }
            } finally {
                if (channel != null) {
                    channel.close();
                }
            }
        }
    }

    private static final class PidIndex {
        final LongArray sequenceNrs = new LongArray();
        final LongArray positions = new LongArray();
        long highest;
        long deletedTo;
        long tombstonePosition = -1;
    }

    private SegmentedLog(LogOptions options, DirectoryLock lock) {
        this.options = options;
        this.dir = options.directory();
        this.lock = lock;
        this.queue = new LinkedBlockingQueue<>();
        this.writer = new Thread(this::runWriter, "opentmr-journal-writer-" + dir.getFileName());
        this.writer.setDaemon(true);
        this.compactor = new Thread(this::runCompactor, "opentmr-journal-compactor-" + dir.getFileName());
        this.compactor.setDaemon(true);
    }

    /**
     * Opens (creating if needed) and locks the directory, truncates a torn tail, rebuilds the index. Refuses damage in
     * the middle with {@link JournalCorruptedException} unless {@code repair} is set.
     */
    public static SegmentedLog open(LogOptions options) throws IOException {
        Files.createDirectories(options.directory());
        DirectoryLock lock = DirectoryLock.acquire(options.directory(), "journal");
        SegmentedLog log = null;
        try {
            log = new SegmentedLog(options, lock);
            log.recover();
            log.writer.start();
            log.compactor.start();
            log.compactionWanted.release();
            return log;
        } catch (IOException | RuntimeException e) {
            if (log != null) {
                log.closeSegmentsAfterFailedOpen(e);
            }
            lock.close();
            throw e;
        }
    }

    /** Closes the segment channels recovery opened before it failed; their errors are added to {@code cause}. */
    private void closeSegmentsAfterFailedOpen(Exception cause) {
        for (Segment s : segments.values()) {
            try {
                s.closeChannels();
            } catch (IOException e) {
                cause.addSuppressed(e);
            }
        }
    }

    private void recover() throws IOException {
        for (Path leftover : LogScanner.compactionLeftovers(dir)) {
            // A compaction interrupted before its rename: the segment it copied is still in place.
            LOG.info("journal {}: removing {} of an interrupted compaction", dir, leftover.getFileName());
            Files.deleteIfExists(leftover);
        }
        Map<Path, Segment> byPath = new HashMap<>();
        for (Path file : LogScanner.segmentFiles(dir)) {
            Segment s = new Segment(file, LogScanner.firstPositionOf(file));
            byPath.put(file, s);
            segments.put(s.firstPosition, s);
        }
        LogScanner.Result scan = LogScanner.scan(dir, RecordCodec.MAX_RECORD_BYTES, true,
                (file, offset, length, record) -> index(byPath.get(file), offset, length, record));
        for (LogScanner.Damage damage : scan.damages()) {
            if (!damage.tail() && !options.repair()) {
                throw new JournalCorruptedException(damage.file(), damage.offset(), damage.reason());
            }
            truncateAt(damage, byPath);
        }
        for (LogScanner.SegmentInfo info : scan.segments()) {
            byPath.get(info.path()).size = info.validEnd();
        }
        nextPosition = scan.nextPosition();
        // Segments the scan never reached were dropped by truncateAt; an empty one before the last can only be left
        // by a repair that truncated a segment at offset 0.
        List<Segment> ordered = new ArrayList<>(segments.values());
        for (int i = 0; i < ordered.size() - 1; i++) {
            Segment s = ordered.get(i);
            if (s.count() == 0) {
                LOG.info("journal {}: removing empty segment {}", dir, s.path.getFileName());
                segments.remove(s.firstPosition);
                Files.deleteIfExists(s.path);
            }
        }
        if (segments.isEmpty()) {
            active = createSegment(nextPosition);
        } else {
            for (Segment s : segments.values()) {
                s.channel = FileChannel.open(s.path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            }
            active = segments.lastEntry().getValue();
        }
        for (Segment s : segments.values()) {
            s.sealed = s != active;
            // Only the last segment may end in zeros (the scan checked they are all zeros); a new one has none.
            s.allocated = s == active ? Math.max(s.size, s.channel.size()) : s.size;
        }
        if (nextPosition < active.firstPosition) {
            // The active segment's name is the position of its first record: never write below it (a repair that
            // emptied the first segment after a gap leaves the scan nothing else to go on).
            LOG.info("journal {}: next position {} raised to {}, the first position of segment {}", dir, nextPosition,
                    active.firstPosition, active.path.getFileName());
            nextPosition = active.firstPosition;
        }
        published = nextPosition;
        removeDeadSegments();
        LOG.info("journal {}: opened, {} segments, {} persistence ids, next position {}, fsync {}", dir,
                segments.size(), pids.size(), nextPosition, options.fsync());
    }

    private void truncateAt(LogScanner.Damage damage, Map<Path, Segment> byPath) throws IOException {
        Segment damaged = byPath.get(damage.file());
        try (FileChannel ch = FileChannel.open(damage.file(), StandardOpenOption.WRITE)) {
            long before = ch.size();
            ch.truncate(damage.offset());
            ch.force(true);
            if (damage.tail()) {
                LOG.warn("journal {}: truncated torn tail of {} at offset {} ({} bytes dropped): {}", dir,
                        damage.file().getFileName(), damage.offset(), before - damage.offset(), damage.reason());
            } else {
                LOG.warn("journal {}: REPAIR truncated {} at offset {} ({} bytes dropped): {}", dir,
                        damage.file().getFileName(), damage.offset(), before - damage.offset(), damage.reason());
            }
        }
        for (Segment later : new ArrayList<>(segments.tailMap(damaged.firstPosition, false).values())) {
            LOG.warn("journal {}: REPAIR removed segment {} after the damage", dir, later.path.getFileName());
            segments.remove(later.firstPosition);
            Files.deleteIfExists(later.path);
        }
        syncDirectory();
    }

    // ---------------------------------------------------------------------------------------------- writing

    /**
     * Encodes the records of one atomic write; throws {@link IllegalArgumentException} if the format cannot hold one
     * or if together they exceed {@code segment-size} (an atomic write never spans segments, and a segment must stay
     * within the int offsets of the index).
     */
    public Group encode(List<LogRecord> records) {
        if (records.isEmpty()) {
            throw new IllegalArgumentException("an atomic write needs at least one record");
        }
        List<Entry> entries = new ArrayList<>(records.size());
        long total = 0;
        for (int i = 0; i < records.size(); i++) {
            LogRecord r = records.get(i);
            if (r.type() != RecordType.EVENT) {
                throw new IllegalArgumentException("only events are appended directly");
            }
            byte[] bytes = RecordCodec.encode(r, options.maxRecordBytes());
            if (i < records.size() - 1) {
                RecordCodec.markGroupContinues(bytes);
            }
            entries.add(new Entry(RecordType.EVENT, r.persistenceId(), r.sequenceNr(), r.tags(), bytes));
            total += bytes.length;
            if (total > options.segmentSize()) {
                throw new IllegalArgumentException("atomic write of " + records.size() + " events of "
                        + r.persistenceId() + " exceeds segment-size (" + options.segmentSize() + " bytes, reached "
                        + total + " at event " + (i + 1) + "); the events of one atomic write must fit in a segment");
            }
        }
        return new Group(entries);
    }

    /**
     * Queues groups for the next group commit. The future completes when they are written and, unless fsync is
     * {@code never}, durable. Never waits for other writes: the queue has no count bound, so the caller (the journal
     * actor) never parks a dispatcher thread for back-pressure. Its callers bound it: Pekko sends a persistent
     * actor's next write only once the previous one is acknowledged, so the queue holds at most one batch per
     * persistent actor. The future completes on the thread that wrote the request (the writer's, or the caller's
     * below) or, with a commit gate, when the gate's stage completes: dependent actions must be short.
     *
     * <p>With {@link LogOptions#writeOnCaller()}, a request that finds nothing queued, no batch being written and no
     * failure is written, fsynced and indexed on the caller's thread instead; without a commit gate the future is
     * complete when this returns. The caller's thread is busy for one write and one fsync, never waiting for anyone
     * else's.
     */
    public CompletableFuture<Appended> append(List<Group> groups) {
        WriteRequest request = new WriteRequest(List.copyOf(groups), new CompletableFuture<>());
        // Not from within a write (a completion callback appending again): that one would write in the middle of it.
        if (options.writeOnCaller() && unwritten.get() == 0 && !Thread.currentThread().isInterrupted()
                && !writing.isHeldByCurrentThread() && writing.tryLock()) {
            try {
                // Nothing queued or being written, and no other writer: this request is next in any order, and
                // writing it here saves two thread hand-offs (to the writer and back) of an idle log.
                if (unwritten.get() == 0 && refusal() == null) {
                    // An Error fails the request and the log in write(), and goes on up to the caller.
                    write(List.of(request));
                    return request.done;
                }
            } finally {
                writing.unlock();
            }
        }
        return enqueue(request);
    }

    /** Deletes every event of {@code persistenceId} up to {@code toSequenceNr} by appending a durable tombstone. */
    public CompletableFuture<Appended> delete(String persistenceId, long toSequenceNr) {
        try {
            // Refused here, for this request only: the writer encodes the tombstone, and must never fail on it.
            RecordCodec.encode(LogRecord.tombstone(persistenceId, toSequenceNr, 0L), options.maxRecordBytes());
        } catch (IllegalArgumentException e) {
            return CompletableFuture.failedFuture(e);
        }
        Entry tombstone = new Entry(RecordType.TOMBSTONE, persistenceId, toSequenceNr, List.of(), null);
        return enqueue(new WriteRequest(List.of(new Group(List.of(tombstone))), new CompletableFuture<>()));
    }

    /**
     * Appends records the twin's leader wrote (replication, follower side): {@code records} are encoded records as
     * the leader's log holds them, with its positions and epochs, in position order and ending with a complete atomic
     * write; {@code from} is the leader's position where they start (records it compacted away leave gaps, which the
     * log keeps). They are written with the same bytes (only flag bit 1, the first record of a write, is this log's
     * own), fsynced once with whatever else is queued, and indexed. Completes with the next position, or fails if
     * {@code from} is not this log's next position or the bytes are not such records (then every later chunk of the
     * same group commit is refused too, so a refused chunk never leaves a hole).
     */
    public CompletableFuture<Long> appendReplicated(long from, byte[] records) {
        return enqueue(new WriteRequest(Kind.REPLICATED, from, records.clone(), new CompletableFuture<>()))
                .thenApply(a -> a.lastPosition() + 1);
    }

    /**
     * Removes every record at or above {@code position} (truncate-after {@code position - 1}): what a returning
     * follower does with a suffix the leader does not have. Runs on the writer thread, after what is queued before it.
     * Segments wholly above the position go first, newest first, each removal made durable before the next; then the
     * segment holding the position is cut and fsynced; then the index is rebuilt from disk as an open would. A crash
     * at any point leaves a longer prefix of the old log, which opens as a valid log. Completes with the next position
     * (at most {@code position}; less if the cut fell inside an atomic write, which goes whole).
     */
    public CompletableFuture<Long> truncateFrom(long position) {
        if (position < 0) {
            return CompletableFuture.failedFuture(new IllegalArgumentException("negative position " + position));
        }
        return enqueue(new WriteRequest(Kind.TRUNCATE, position, null, new CompletableFuture<>()))
                .thenApply(a -> a.lastPosition() + 1);
    }

    private CompletableFuture<Appended> enqueue(WriteRequest request) {
        IOException refused = refusal();
        if (refused != null) {
            return CompletableFuture.failedFuture(refused);
        }
        unwritten.incrementAndGet();
        queue.add(request);
        // Raced with close() or with the writer stopping: it may never take the request. The writer sets failure
        // (close() sets closed) before it drains the queue, so either it drains this request or we remove it here.
        refused = refusal();
        if (refused != null && queue.remove(request)) {
            unwritten.decrementAndGet();
            request.done.completeExceptionally(refused);
        }
        return request.done;
    }

    /** Why a write is refused now, or null if the writer takes it. */
    private IOException refusal() {
        IOException failed = failure;
        if (failed != null) {
            return new IOException("journal " + dir + " failed earlier: " + failed.getMessage(), failed);
        }
        if (closed) {
            return new IOException("journal " + dir + " is closed");
        }
        if (!writer.isAlive()) {
            return new IOException("journal " + dir + ": writer thread is not running");
        }
        return null;
    }

    private void runWriter() {
        List<WriteRequest> batch = new ArrayList<>();
        IOException stopped = null;
        try {
            writeUntilClosed(batch);
        } catch (InterruptedException e) {
            stopped = new IOException("journal " + dir + ": writer thread interrupted; writes are refused until the "
                    + "journal is reopened", e);
        } catch (Throwable t) {
            // An Error (out of memory, a bug): the writer cannot go on, and a writer that vanishes silently would
            // leave every caller waiting. Fail everything instead.
            stopped = new IOException("journal " + dir + ": writer thread died (" + t + "); writes are refused "
                    + "until the journal is reopened", t);
        } finally {
            if (stopped != null) {
                if (failure == null) {
                    failure = stopped;
                }
                LOG.error("journal {}: writer thread stopped, journal stopped accepting writes: {}", dir,
                        stopped.getMessage(), stopped);
            }
            // failure (or closed) is set before the drain: see enqueue().
            IOException cause = failure != null ? failure : new IOException("journal " + dir + " is closed");
            fail(batch, cause);
            if (held != null && held != CLOSE) {
                held.done.completeExceptionally(cause);
            }
            for (WriteRequest r; (r = queue.poll()) != null; ) {
                if (r != CLOSE) {
                    r.done.completeExceptionally(cause);
                }
            }
        }
    }

    private void writeUntilClosed(List<WriteRequest> batch) throws InterruptedException {
        boolean closing = false;
        while (!closing) {
            batch.clear();
            try {
                WriteRequest first = held != null ? held : queue.take();
                held = null;
                if (first == CLOSE) {
                    break;
                }
                batch.add(first);
                int bytes = first.bytes;
                // always: one request per fsync, by definition of the policy; a truncation is a batch of its own.
                while (options.fsync() != FsyncPolicy.ALWAYS && first.kind != Kind.TRUNCATE
                        && bytes < options.maxBatchBytes()) {
                    WriteRequest next = queue.poll();
                    if (next == null) {
                        break;
                    }
                    if (next == CLOSE) {
                        closing = true;
                        break;
                    }
                    if (next.kind != first.kind) {
                        held = next;
                        break;
                    }
                    batch.add(next);
                    bytes += next.bytes;
                }
                writing.lock();
                try {
                    write(batch);
                } finally {
                    writing.unlock();
                    unwritten.addAndGet(-batch.size());
                }
            } catch (RuntimeException e) {
                // Only from taking the lock: write() handles its own failures.
                fail(batch, e);
            }
        }
        batch.clear();
    }

    /** Writes one batch (all of one kind), holding {@link #writing}; a failure fails the batch and the journal. */
    private void write(List<WriteRequest> batch) {
        WriteRequest first = batch.get(0);
        try {
            if (failure != null) {
                fail(batch, failure);
            } else if (first.kind == Kind.APPEND) {
                writeBatch(batch);
            } else if (first.kind == Kind.REPLICATED) {
                writeReplicated(batch);
            } else {
                truncate(first);
            }
        } catch (IOException | RuntimeException e) {
            IOException io = e instanceof IOException ioe ? ioe : new IOException(e);
            // After a failed write or fsync the file state is unknown (and Linux may have dropped the dirty
            // pages): refuse everything from now on; a restart recovers from what is on disk.
            failure = io;
            LOG.error("journal {}: write failed, journal stopped accepting writes: {}", dir, io.toString(), io);
            fail(batch, io);
        } catch (Error e) {
            // An Error (out of memory, a bug) may have left positions or files half done: refused from now on, set
            // before the lock is released so that no caller writes after it. The Error goes on up.
            IOException io = new IOException("journal " + dir + ": a write died (" + e + "); writes are refused "
                    + "until the journal is reopened", e);
            failure = io;
            LOG.error("journal {}: {}", dir, io.getMessage(), e);
            fail(batch, io);
            throw e;
        }
    }

    private static void fail(List<WriteRequest> batch, Throwable cause) {
        for (WriteRequest r : batch) {
            r.done.completeExceptionally(cause);
        }
    }

    /** A record written in this batch, waiting to enter the index once the batch is durable. */
    private record Written(Segment segment, int offset, int length, Entry entry, long position, long epoch) {
    }

    private void writeBatch(List<WriteRequest> batch) throws IOException {
        long epoch = options.epoch().getAsLong();
        List<Written> written = new ArrayList<>();
        Map<String, long[]> pending = new HashMap<>();
        int buffered = 0;
        for (WriteRequest request : batch) {
            long firstPosition = -1;
            long lastPosition = -1;
            for (Group group : request.groups) {
                List<Entry> entries = group.entries;
                if (entries.get(0).type == RecordType.TOMBSTONE) {
                    Entry t;
                    try {
                        t = tombstoneFor(entries.get(0), pending);
                    } catch (IllegalArgumentException e) {
                        // A tombstone is a request of its own: refuse it, write the rest of the batch.
                        request.refused = e;
                        continue;
                    }
                    if (t == null) {
                        continue;
                    }
                    entries = List.of(t);
                }
                int groupBytes = entries.stream().mapToInt(e -> e.bytes.length).sum();
                // A group never spans segments, so a crash cannot leave half of it in a closed segment.
                if (active.size + buffered + groupBytes > options.segmentSize() && active.size + buffered > 0) {
                    flush(buffered);
                    buffered = 0;
                    sync();
                    roll();
                }
                for (Entry e : entries) {
                    long position = nextPosition++;
                    buffered = ensureBuffer(buffered, e.bytes.length);
                    System.arraycopy(e.bytes, 0, batchBuffer, buffered, e.bytes.length);
                    RecordCodec.stamp(batchBuffer, buffered, epoch, position);
                    written.add(new Written(active, (int) (active.size + buffered), e.bytes.length, e, position, epoch));
                    buffered += e.bytes.length;
                    if (firstPosition < 0) {
                        firstPosition = position;
                    }
                    lastPosition = position;
                    long[] p = pending.computeIfAbsent(e.pid, k -> new long[2]);
                    if (e.type == RecordType.EVENT) {
                        p[0] = Math.max(p[0], e.sequenceNr);
                    } else {
                        p[1] = Math.max(p[1], e.sequenceNr);
                    }
                }
            }
            request.result = new Appended(firstPosition, lastPosition, active.path, active.size + buffered);
        }
        flush(buffered);
        sync();
        publish(written);
        acknowledge(List.copyOf(batch), written.isEmpty() ? -1 : written.get(0).position);
    }

    /** Puts a durable batch into the index and makes it visible to readers. */
    private void publish(List<Written> written) throws IOException {
        recordCount.add(written.size());
        indexLock.writeLock().lock();
        try {
            if (closedUnderWrite) {
                throw new IOException("journal " + dir + " was closed while this write was under way");
            }
            for (Written w : written) {
                index(w.segment, w.offset, w.length, w.entry.type, w.entry.pid, w.entry.sequenceNr,
                        w.entry.tags, w.position, w.epoch);
            }
            for (Segment r : rolled) {
                r.sealed = true;
            }
            rolled.clear();
            removeDeadSegments();
            published = nextPosition;
        } finally {
            indexLock.writeLock().unlock();
        }
        if (recordsDied) {
            recordsDied = false;
            if (compactionWanted.availablePermits() == 0) {
                compactionWanted.release();
            }
        }
    }

    /**
     * Completes the requests of a durable batch, at once or, with a commit gate, when its stage completes. {@code
     * firstPosition} is -1 if the batch wrote nothing (nothing to wait for).
     */
    private void acknowledge(List<WriteRequest> batch, long firstPosition) {
        CommitGate gate = commitGate;
        if (gate == null || firstPosition < 0) {
            complete(batch);
            return;
        }
        long next = nextPosition;
        CompletionStage<?> held;
        try {
            held = gate.committed(firstPosition, next);
        } catch (RuntimeException e) {
            LOG.error("journal {}: commit gate failed for positions {}..{}; acknowledged as durable here: {}", dir,
                    firstPosition, next - 1, e.toString(), e);
            complete(batch);
            return;
        }
        held.whenComplete((ok, e) -> {
            if (e != null) {
                LOG.error("journal {}: commit gate failed for positions {}..{}; acknowledged as durable here: {}",
                        dir, firstPosition, next - 1, e.toString());
            }
            complete(batch);
        });
    }

    private static void complete(List<WriteRequest> batch) {
        for (WriteRequest request : batch) {
            if (request.refused != null) {
                request.done.completeExceptionally(request.refused);
            } else {
                request.done.complete(request.result);
            }
        }
    }

    /** A record of a replicated chunk, checked; {@code groupBytes} is set on the first record of each atomic write. */
    private record Incoming(int offset, int length, LogRecord record, boolean compacted, int groupBytes) {
    }

    private void writeReplicated(List<WriteRequest> batch) throws IOException {
        List<Written> written = new ArrayList<>();
        int buffered = 0;
        long expected = nextPosition;
        boolean refusing = false;
        for (WriteRequest request : batch) {
            List<Incoming> records;
            try {
                if (refusing) {
                    throw new IllegalArgumentException("an earlier chunk of the same group commit was refused");
                }
                records = checkChunk(request, expected);
            } catch (IllegalArgumentException e) {
                request.refused = e;
                refusing = true;
                continue;
            }
            byte[] bytes = request.replicated;
            for (Incoming in : records) {
                long position = in.record().position();
                if (in.groupBytes() > 0) {
                    // A gap the leader's compaction left inside a segment is allowed there (its records carry the
                    // compacted flag); any other gap is where the leader removed whole segments: start a segment
                    // named for the record, as the leader's was.
                    boolean gap = position > nextPosition && !in.compacted();
                    boolean full = active.size + buffered + in.groupBytes() > options.segmentSize()
                            && active.size + buffered > 0;
                    if (gap || full) {
                        flush(buffered);
                        buffered = 0;
                        sync();
                        nextPosition = position;
                        if (active.size == 0) {
                            replaceEmptyActive();
                        } else {
                            roll();
                        }
                    }
                }
                buffered = ensureBuffer(buffered, in.length());
                System.arraycopy(bytes, in.offset(), batchBuffer, buffered, in.length());
                RecordCodec.clearWriteStart(batchBuffer, buffered);
                LogRecord r = in.record();
                Entry entry = new Entry(r.type(), r.persistenceId(), r.sequenceNr(), r.tags(), null);
                written.add(new Written(active, (int) (active.size + buffered), in.length(), entry, position,
                        r.epoch()));
                buffered += in.length();
                nextPosition = position + 1;
            }
            expected = nextPosition;
            request.result = new Appended(records.get(0).record().position(), nextPosition - 1, active.path,
                    active.size + buffered);
        }
        flush(buffered);
        sync();
        publish(written);
        // A follower's writes are acknowledged to the leader, never gated.
        complete(List.copyOf(batch));
    }

    /** Decodes and checks a replicated chunk that should start at {@code expected}; throws what is wrong with it. */
    private static List<Incoming> checkChunk(WriteRequest request, long expected) {
        if (request.from != expected) {
            throw new IllegalArgumentException("chunk starts at position " + request.from + " but the log is at "
                    + expected);
        }
        byte[] b = request.replicated;
        List<Incoming> out = new ArrayList<>();
        long previous = request.from - 1;
        int groupStart = -1;
        int groupBytes = 0;
        for (int off = 0; off < b.length; ) {
            RecordCodec.Decoded d = RecordCodec.decode(b, off, b.length, RecordCodec.MAX_RECORD_BYTES);
            if (!d.ok()) {
                throw new IllegalArgumentException("record at byte " + off + " of the chunk from position "
                        + request.from + ": " + d.problem());
            }
            LogRecord r = d.record();
            if (r.position() <= previous || (groupStart >= 0 && r.position() != previous + 1)) {
                throw new IllegalArgumentException("position " + r.position() + " after " + previous
                        + " in the chunk from position " + request.from);
            }
            if (groupStart < 0) {
                groupStart = out.size();
                groupBytes = 0;
            }
            groupBytes += d.length();
            out.add(new Incoming(off, d.length(), r, RecordCodec.isCompacted(b, off), 0));
            if (r.lastOfGroup()) {
                Incoming first = out.get(groupStart);
                out.set(groupStart, new Incoming(first.offset(), first.length(), first.record(), first.compacted(),
                        groupBytes));
                groupStart = -1;
            }
            previous = r.position();
            off += d.length();
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException("empty chunk at position " + request.from);
        }
        if (groupStart >= 0) {
            throw new IllegalArgumentException("chunk from position " + request.from + " ends inside an atomic write");
        }
        return out;
    }

    /** The active segment is empty and named below the next record: replaces it by one named for the record. */
    private void replaceEmptyActive() throws IOException {
        Segment empty = active;
        indexLock.writeLock().lock();
        try {
            segments.remove(empty.firstPosition);
            rolled.remove(empty);
        } finally {
            indexLock.writeLock().unlock();
        }
        empty.closeChannels();
        Files.deleteIfExists(empty.path);
        active = createSegment(nextPosition);
    }

    private void truncate(WriteRequest request) throws IOException {
        long position = request.from;
        long before = nextPosition;
        synchronized (compactionLock) {
            indexLock.writeLock().lock();
            try {
                for (Segment s : segments.values()) {
                    s.closeChannels();
                }
                Truncation.truncateFrom(dir, position, options.fsync() != FsyncPolicy.NEVER, Truncation.NO_CRASH);
                segments.clear();
                pids.clear();
                pidOrder.clear();
                tags.clear();
                epochRuns.clear();
                tagEntries = 0;
                deletedSincePrune = 0;
                rolled.clear();
                recover();
            } finally {
                indexLock.writeLock().unlock();
            }
        }
        LOG.warn("journal {}: truncated from position {}: next position {} (was {})", dir, position, nextPosition,
                before);
        request.result = new Appended(-1, nextPosition - 1, active.path, active.size);
        request.done.complete(request.result);
    }

    /** The tombstone to write, with its sequence number capped at the highest written one; null if a no-op. */
    private Entry tombstoneFor(Entry requested, Map<String, long[]> pending) {
        long highest;
        long deletedTo;
        indexLock.readLock().lock();
        try {
            PidIndex p = pids.get(requested.pid);
            highest = p == null ? 0 : p.highest;
            deletedTo = p == null ? 0 : p.deletedTo;
        } finally {
            indexLock.readLock().unlock();
        }
        long[] inBatch = pending.get(requested.pid);
        if (inBatch != null) {
            highest = Math.max(highest, inBatch[0]);
            deletedTo = Math.max(deletedTo, inBatch[1]);
        }
        // Capping keeps the highest sequence number recoverable from the tombstone alone, after every event of the
        // id is gone with its segments (Pekko requires the highest sequence number to survive deletion).
        long to = Math.min(requested.sequenceNr, highest);
        if (to <= deletedTo) {
            return null;
        }
        byte[] bytes = RecordCodec.encode(LogRecord.tombstone(requested.pid, to, System.currentTimeMillis()),
                options.maxRecordBytes());
        return new Entry(RecordType.TOMBSTONE, requested.pid, to, List.of(), bytes);
    }

    private int ensureBuffer(int used, int extra) {
        if (used + extra > batchBuffer.length) {
            batchBuffer = Arrays.copyOf(batchBuffer, Math.max(batchBuffer.length * 2, used + extra));
        }
        return used;
    }

    private void sync() throws IOException {
        if (options.fsync() != FsyncPolicy.NEVER) {
            options.syncer().sync(active.path, active.channel, active.size);
            fsyncCount.increment();
        }
    }

    private void flush(int length) throws IOException {
        if (length > 0) {
            writeCount.increment();
            // Recovery tells a torn last write from damage before it by this mark: see LogScanner.
            RecordCodec.markWriteStart(batchBuffer, 0);
        }
        preallocate(active.size + length);
        ByteBuffer buf = ByteBuffer.wrap(batchBuffer, 0, length);
        long at = active.size;
        while (buf.hasRemaining()) {
            at += FileIo.write(active.channel, buf, at);
        }
        active.size = at;
        active.allocated = Math.max(active.allocated, at);
    }

    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(64 * 1024);

    /**
     * Writes zeros from the active segment's allocated end on, {@code preallocate} bytes past {@code end} (at most
     * up to segment-size), when a write up to {@code end} would grow the file. The batch's own fsync makes them
     * durable with it; later fsyncs then rewrite blocks the file has, and no longer commit a size change.
     */
    private void preallocate(long end) throws IOException {
        if (options.preallocate() == 0 || end <= active.allocated) {
            return;
        }
        long target = Math.max(end, Math.min(end + options.preallocate(), options.segmentSize()));
        for (long at = active.allocated; at < target; ) {
            ByteBuffer zeros = ZEROS.duplicate();
            zeros.limit((int) Math.min(zeros.capacity(), target - at));
            at += active.channel.write(zeros, at);
        }
        active.allocated = Math.max(active.allocated, target);
    }

    /**
     * Cuts the preallocated zeros off a segment that stops being the active one, durably: only the last segment
     * may end in zeros (recovery takes zeros anywhere else for damage).
     */
    private void trimPreallocated(Segment s) throws IOException {
        if (s.allocated > s.size) {
            s.channel.truncate(s.size);
            if (options.fsync() != FsyncPolicy.NEVER) {
                options.syncer().sync(s.path, s.channel, s.size);
            }
            s.allocated = s.size;
        }
    }

    private void roll() throws IOException {
        // Before the next segment exists: a crash between the two must not leave zeros in a segment that is not last.
        trimPreallocated(active);
        Segment next = createSegment(nextPosition);
        LOG.info("journal {}: segment {} closed at {} bytes, writing {}", dir, active.path.getFileName(),
                active.size, next.path.getFileName());
        // No dead-segment sweep here: the closed segment's records of this batch are not indexed yet.
        rolled.add(active);
        active = next;
        // The closed segment may be worth compacting now.
        recordsDied = true;
    }

    private Segment createSegment(long firstPosition) throws IOException {
        Segment s = new Segment(dir.resolve(LogScanner.segmentName(firstPosition)), firstPosition);
        s.channel = FileChannel.open(s.path, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
        s.channel.truncate(0);
        if (options.fsync() != FsyncPolicy.NEVER) {
            // The new file's directory entry must be durable before records in it are acknowledged.
            syncDirectory();
        }
        indexLock.writeLock().lock();
        try {
            segments.put(firstPosition, s);
        } finally {
            indexLock.writeLock().unlock();
        }
        return s;
    }

    private void syncDirectory() throws IOException {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            // Some file systems cannot open a directory for fsync; the file's own fsync is then all we can do.
            LOG.debug("journal {}: directory fsync not supported: {}", dir, e.toString());
        }
    }

    // ---------------------------------------------------------------------------------------------- index

    private void index(Segment segment, int offset, int length, LogRecord r) {
        index(segment, offset, length, r.type(), r.persistenceId(), r.sequenceNr(), r.tags(), r.position(),
                r.epoch());
    }

    /** Adds a durable record to the index. Caller holds the write lock (or is recovering, single-threaded). */
    private void index(Segment segment, int offset, int length, RecordType type, String pid, long seq,
            List<String> recordTags, long position, long epoch) {
        segment.add(offset, position, length);
        Map.Entry<Long, Long> run = epochRuns.lastEntry();
        if (run == null || run.getValue() != epoch) {
            epochRuns.put(position, epoch);
        }
        PidIndex p = pids.get(pid);
        if (p == null) {
            p = new PidIndex();
            pids.put(pid, p);
            pidOrder.add(pid);
        }
        p.highest = Math.max(p.highest, seq);
        if (type == RecordType.EVENT) {
            p.sequenceNrs.add(seq);
            p.positions.add(position);
            for (String tag : recordTags) {
                tags.computeIfAbsent(tag, k -> new LongArray()).add(position);
                tagEntries++;
            }
        } else {
            int deleted = p.sequenceNrs.lowerBound(seq + 1);
            for (int i = 0; i < deleted; i++) {
                markDead(p.positions.get(i));
            }
            deletedSincePrune += deleted;
            p.sequenceNrs.dropFirst(deleted);
            p.positions.dropFirst(deleted);
            if (p.tombstonePosition >= 0) {
                // The newer tombstone supersedes the older one.
                markDead(p.tombstonePosition);
            }
            p.tombstonePosition = position;
            p.deletedTo = Math.max(p.deletedTo, seq);
        }
    }

    private Segment segmentOf(long position) {
        return segments.floorEntry(position).getValue();
    }

    private void markDead(long position) {
        Segment s = segmentOf(position);
        int i = s.indexOf(position);
        if (i >= 0) {
            s.markDead(i);
            recordsDied = true;
        }
    }

    /** Whether the record at {@code position} is in the log and not deleted. Caller holds a lock of the index. */
    private boolean isLive(long position) {
        Map.Entry<Long, Segment> e = segments.floorEntry(position);
        if (e == null) {
            return false;
        }
        Segment s = e.getValue();
        int i = s.indexOf(position);
        return i >= 0 && !s.dead.get(i);
    }

    /**
     * Removes closed segments whose every record is deleted or superseded, unless they are kept (the newest
     * {@code keep-segments}, or not replicated yet). Caller holds the write lock.
     */
    private void removeDeadSegments() {
        List<Segment> dead = new ArrayList<>();
        for (Segment s : unprotectedSegments()) {
            if (s.live == 0) {
                dead.add(s);
            }
        }
        for (Segment s : dead) {
            segments.remove(s.firstPosition);
            try {
                s.closeChannels();
                Files.deleteIfExists(s.path);
                LOG.info("journal {}: removed segment {}: every record in it is deleted", dir, s.path.getFileName());
            } catch (IOException e) {
                LOG.warn("journal {}: could not remove dead segment {}: {}", dir, s.path.getFileName(), e.toString());
            }
        }
        if (deletedSincePrune > 0 && deletedSincePrune * 2 >= tagEntries) {
            // Deleted events stay out of tag queries anyway; pruning bounds the index and the entries a query has
            // to step over. Amortised: a full pass only after deletions of at least half as many events.
            for (LongArray positions : tags.values()) {
                tagEntries -= positions.retainIf(this::isLive);
            }
            tags.values().removeIf(positions -> positions.size() == 0);
            deletedSincePrune = 0;
        } else if (!dead.isEmpty()) {
            // Tag entries of removed segments are never read again; drop the prefix that lies before the log.
            long lowest = segments.isEmpty() ? Long.MAX_VALUE : segments.firstKey();
            for (LongArray positions : tags.values()) {
                int gone = positions.lowerBound(lowest);
                if (gone > 0) {
                    positions.dropFirst(gone);
                    tagEntries -= gone;
                }
            }
        }
    }


    // ---------------------------------------------------------------------------------------------- compaction

    /**
     * Closed segments compaction and removal may touch, oldest first: not among the newest {@code keep-segments}, not
     * the active one, and wholly below the replicated position (the twin's catch-up reads the rest). Caller holds a
     * lock of the index.
     */
    private List<Segment> unprotectedSegments() {
        List<Segment> all = new ArrayList<>(segments.values());
        long replicated = options.replicatedTo().getAsLong();
        List<Segment> out = new ArrayList<>();
        for (int i = 0; i < all.size() - options.keepSegments(); i++) {
            Segment s = all.get(i);
            if (s == active) {
                break;
            }
            if (s.count() > 0 && s.positionAt(s.count() - 1) >= replicated) {
                // Later segments hold later positions: none of them is replicated either.
                break;
            }
            out.add(s);
        }
        return out;
    }

    /** What compaction would rewrite next: an unprotected segment whose live records take less than half of it. */
    private Segment compactionCandidate() {
        indexLock.readLock().lock();
        try {
            for (Segment s : unprotectedSegments()) {
                if (s.sealed && s.live > 0 && s.liveBytes * 2 < s.size && !s.compactionFailed) {
                    return s;
                }
            }
            return null;
        } finally {
            indexLock.readLock().unlock();
        }
    }

    private void runCompactor() {
        try {
            while (!closed) {
                compactionWanted.acquire();
                compactionWanted.drainPermits();
                compactNow();
            }
        } catch (InterruptedException e) {
            // close() gave up waiting for a compaction: what it wrote is a leftover the next open removes.
        } catch (Throwable t) {
            LOG.error("journal {}: compactor stopped; deleted records keep their disk space until the journal is "
                    + "reopened: {}", dir, t.toString(), t);
        }
    }

    /**
     * Compacts every segment that qualifies, on the calling thread (the background compactor calls it too, and waits
     * while a caller's pass runs). Returns the number of segments rewritten. Compaction failures are logged and leave
     * the segment as it was.
     */
    public int compactNow() {
        synchronized (compactionLock) {
            int done = 0;
            for (Segment s; !closed && (s = compactionCandidate()) != null; ) {
                try {
                    if (compact(s)) {
                        done++;
                    }
                } catch (IOException | RuntimeException e) {
                    s.compactionFailed = true;
                    LOG.warn("journal {}: compaction of {} failed, the segment stays as it is: {}", dir,
                            s.path.getFileName(), e.toString());
                }
            }
            return done;
        }
    }

    /** A live record to copy: where it is in the old segment and its position. */
    private record Live(int index, long position, int offset, int length) {
    }

    /**
     * Rewrites {@code s} with only its live records, each unchanged but for the compacted flag (so position, epoch
     * and everything else stay), into a temporary file that replaces the segment by an atomic rename. A crash before
     * the rename leaves the old segment and a leftover the next open removes; after it, the new one.
     */
    private boolean compact(Segment s) throws IOException {
        List<Live> live = new ArrayList<>();
        indexLock.readLock().lock();
        try {
            if (s.gone() || segments.get(s.firstPosition) != s) {
                return false;
            }
            for (int i = 0; i < s.count(); i++) {
                if (!s.dead.get(i)) {
                    live.add(new Live(i, s.positionAt(i), s.offsets.get(i), s.lengthAt(i)));
                }
            }
        } finally {
            indexLock.readLock().unlock();
        }
        long before = s.size;
        Path tmp = LogScanner.compactionFile(s.path);
        Segment copy = new Segment(s.path, s.firstPosition);
        try (SegmentReader in = new SegmentReader(s.path);
                FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                        StandardOpenOption.TRUNCATE_EXISTING)) {
            byte[] buffer = new byte[SegmentReader.WINDOW];
            int buffered = 0;
            long written = 0;
            for (Live r : live) {
                if (closed) {
                    return false;
                }
                if (buffered + r.length() > buffer.length) {
                    written += writeFully(out, buffer, buffered, written);
                    buffered = 0;
                    if (r.length() > buffer.length) {
                        buffer = new byte[r.length()];
                    }
                }
                in.copy(r.offset(), r.length(), buffer, buffered);
                RecordCodec.markCompacted(buffer, buffered, copy.count() == 0);
                copy.add((int) (written + buffered), r.position(), r.length());
                buffered += r.length();
            }
            written += writeFully(out, buffer, buffered, written);
            if (options.fsync() != FsyncPolicy.NEVER) {
                out.force(false);
            }
            copy.size = written;
        } catch (NoSuchFileException e) {
            // Removed meanwhile (every record deleted): nothing to compact.
            Files.deleteIfExists(tmp);
            return false;
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        indexLock.writeLock().lock();
        try {
            if (closed || segments.get(s.firstPosition) != s) {
                // Removed while we copied (or the log is closing): the copy must not bring it back.
                Files.deleteIfExists(tmp);
                return false;
            }
            // Records deleted while we copied are copied but dead.
            for (int j = 0; j < live.size(); j++) {
                if (s.dead.get(live.get(j).index())) {
                    copy.markDead(j);
                }
            }
            try {
                Files.move(tmp, s.path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (IOException e) {
                // No atomic rename here: the segment stays as it was, never half replaced.
                Files.deleteIfExists(tmp);
                throw e;
            }
            copy.sealed = true;
            segments.put(copy.firstPosition, copy);
            try {
                s.closeChannels();
            } catch (IOException e) {
                LOG.debug("journal {}: closing the replaced {}: {}", dir, s.path.getFileName(), e.toString());
            }
        } finally {
            indexLock.writeLock().unlock();
        }
        if (options.fsync() != FsyncPolicy.NEVER) {
            syncDirectory();
        }
        compactions.increment();
        LOG.info("journal {}: compacted segment {}: {} -> {} bytes, {} live records kept", dir,
                s.path.getFileName(), before, copy.size, live.size());
        return true;
    }

    private static int writeFully(FileChannel out, byte[] bytes, int length, long at) throws IOException {
        ByteBuffer buf = ByteBuffer.wrap(bytes, 0, length);
        while (buf.hasRemaining()) {
            FileIo.write(out, buf, at + buf.position());
        }
        return length;
    }

    /** Bytes of the segment files, and of the live records in them; for metrics and the tests of the bound. */
    public record DiskUsage(long segmentBytes, long liveBytes, int segments, long compactions) {
    }

    public DiskUsage diskUsage() {
        indexLock.readLock().lock();
        try {
            long size = 0;
            long live = 0;
            for (Segment s : segments.values()) {
                size += s.size;
                live += s.liveBytes;
            }
            return new DiskUsage(size, live, segments.size(), compactions.sum());
        } finally {
            indexLock.readLock().unlock();
        }
    }

    // ---------------------------------------------------------------------------------------------- reading

    /** Highest sequence number ever written for the id (kept after deletion), 0 if none. */
    public long highestSequenceNr(String persistenceId) {
        indexLock.readLock().lock();
        try {
            PidIndex p = pids.get(persistenceId);
            return p == null ? 0 : p.highest;
        } finally {
            indexLock.readLock().unlock();
        }
    }

    /** Sequence number up to which the id's events are deleted, 0 if none. */
    public long deletedTo(String persistenceId) {
        indexLock.readLock().lock();
        try {
            PidIndex p = pids.get(persistenceId);
            return p == null ? 0 : p.deletedTo;
        } finally {
            indexLock.readLock().unlock();
        }
    }

    /** Positions replay looks up in the index at a time: its memory does not grow with the id's events. */
    private static final int REPLAY_PAGE = 4096;

    /**
     * Live (not deleted) events of the id with {@code from <= sequenceNr <= to}, at most {@code max}, in order. Reads
     * one record at a time, and the index a page of positions at a time.
     */
    public void replay(String persistenceId, long from, long to, long max, Consumer<LogRecord> consumer) {
        long remaining = max;
        long next = from;
        while (remaining > 0 && next <= to) {
            LongArray positions = new LongArray();
            long lastSeq;
            indexLock.readLock().lock();
            try {
                PidIndex p = pids.get(persistenceId);
                if (p == null) {
                    return;
                }
                lastSeq = -1;
                for (int i = p.sequenceNrs.lowerBound(next); i < p.sequenceNrs.size() && positions.size() < remaining
                        && positions.size() < REPLAY_PAGE; i++) {
                    if (p.sequenceNrs.get(i) > to) {
                        break;
                    }
                    positions.add(p.positions.get(i));
                    lastSeq = p.sequenceNrs.get(i);
                }
            } finally {
                indexLock.readLock().unlock();
            }
            if (positions.size() == 0) {
                return;
            }
            for (int i = 0; i < positions.size(); i++) {
                LogRecord r = read(positions.get(i));
                // null: deleted meanwhile and its segment removed; a replay may miss events deleted while it runs.
                if (r != null) {
                    consumer.accept(r);
                }
            }
            remaining -= positions.size();
            if (lastSeq == Long.MAX_VALUE) {
                return;
            }
            next = lastSeq + 1;
        }
    }

    /**
     * A page of a tag query: the live events found, and the position up to which the tag index was scanned. The
     * next page starts after {@code scannedTo}, which may lie beyond the last record returned (deleted events are
     * skipped, not returned); it equals the requested position when there was nothing (yet) to scan.
     */
    public record TagPage(List<LogRecord> records, long scannedTo) {
    }

    /** Live events carrying {@code tag} with a position above {@code afterPosition}, at most {@code max}. */
    public TagPage eventsByTag(String tag, long afterPosition, int max) {
        LongArray positions = new LongArray();
        long scannedTo = afterPosition;
        indexLock.readLock().lock();
        try {
            LongArray all = tags.get(tag);
            if (all != null) {
                // Bounds the time the read lock is held when a run of deleted events is not pruned yet.
                long budget = Math.max(1024L, 8L * max);
                for (int i = all.lowerBound(afterPosition + 1); i < all.size() && positions.size() < max
                        && budget-- > 0; i++) {
                    long position = all.get(i);
                    scannedTo = position;
                    if (isLive(position)) {
                        positions.add(position);
                    }
                }
            }
        } finally {
            indexLock.readLock().unlock();
        }
        List<LogRecord> out = new ArrayList<>(positions.size());
        for (int i = 0; i < positions.size(); i++) {
            LogRecord r = read(positions.get(i));
            // Deleted since the index was read: skipped, and still scanned past.
            if (r != null && r.sequenceNr() > deletedTo(r.persistenceId())) {
                out.add(r);
            }
        }
        return new TagPage(out, scannedTo);
    }

    /** Entries of the tag index (positions under all tags); for tests of its pruning. */
    long tagIndexEntries() {
        indexLock.readLock().lock();
        try {
            return tags.values().stream().mapToLong(LongArray::size).sum();
        } finally {
            indexLock.readLock().unlock();
        }
    }

    /** Persistence ids in the order they were first written, starting at index {@code from}, at most {@code max}. */
    public List<String> persistenceIds(int from, int max) {
        indexLock.readLock().lock();
        try {
            int end = Math.min(pidOrder.size(), from + max);
            return from >= end ? List.of() : List.copyOf(pidOrder.subList(from, end));
        } finally {
            indexLock.readLock().unlock();
        }
    }

    /**
     * Every record (events and tombstones, deleted or not, while their segment exists) with a position of at least
     * {@code position}, at most {@code max}, in position order: what replication to the twin ships.
     */
    public List<LogRecord> readFrom(long position, int max) {
        LongArray locations = new LongArray();
        indexLock.readLock().lock();
        try {
            Long start = segments.floorKey(position);
            for (Segment s : segments.tailMap(start == null ? position : start, true).values()) {
                for (int i = s.lowerBound(position); i < s.count() && locations.size() < max; i++) {
                    locations.add(s.positionAt(i));
                }
            }
        } finally {
            indexLock.readLock().unlock();
        }
        List<LogRecord> out = new ArrayList<>(locations.size());
        for (int i = 0; i < locations.size(); i++) {
            LogRecord r = read(locations.get(i));
            if (r != null) {
                out.add(r);
            }
        }
        return out;
    }

    /**
     * Records as stored, for shipping to the twin: {@code bytes} holds every record still in the log from
     * {@code from} on, below {@code next}, whole and in order, ending with a complete atomic write.
     */
    public record Chunk(long from, long next, byte[] bytes) {
        public boolean isEmpty() {
            return bytes.length == 0;
        }
    }

    /**
     * The records from {@code from} on as stored, about {@code maxBytes} of them: fewer to end at an atomic write's
     * end, more if the first atomic write alone is larger. Empty (next = from) when there is none yet.
     */
    public Chunk readChunk(long from, int maxBytes) {
        for (long limit = Math.max(1, maxBytes); ; limit = limit * 2) {
            Chunk raw = readRaw(from, limit);
            if (raw.isEmpty()) {
                return raw;
            }
            Chunk whole = RecordCodec.wholeGroups(raw.bytes(), from, maxBytes);
            // The index holds whole atomic writes only: a chunk without one was cut by the limit.
            if (!whole.isEmpty() || raw.next() >= published) {
                return whole;
            }
        }
    }

    /** One span of consecutive records in a segment. */
    private record Span(Segment segment, int start, int end) {
    }

    /** Whole records from {@code from} on, at least one and no more than {@code limit} bytes beyond the first. */
    private Chunk readRaw(long from, long limit) {
        for (int attempt = 1; ; attempt++) {
            List<Span> spans = new ArrayList<>();
            long total = 0;
            long last = -1;
            indexLock.readLock().lock();
            try {
                Long start = segments.floorKey(from);
                outer:
                for (Segment s : segments.tailMap(start == null ? from : start, true).values()) {
                    int i = s.lowerBound(from);
                    int spanStart = -1;
                    int spanEnd = -1;
                    for (; i < s.count(); i++) {
                        int length = s.lengthAt(i);
                        if (total > 0 && total + length > limit) {
                            if (spanStart >= 0) {
                                spans.add(new Span(s, spanStart, spanEnd));
                            }
                            break outer;
                        }
                        if (spanStart < 0) {
                            spanStart = s.offsets.get(i);
                        }
                        spanEnd = s.offsets.get(i) + length;
                        total += length;
                        last = s.positionAt(i);
                    }
                    if (spanStart >= 0) {
                        spans.add(new Span(s, spanStart, spanEnd));
                    }
                }
            } finally {
                indexLock.readLock().unlock();
            }
            if (total > Integer.MAX_VALUE - 16) {
                throw new IllegalStateException("chunk of " + total + " bytes");
            }
            byte[] bytes = new byte[(int) total];
            try {
                int at = 0;
                for (Span span : spans) {
                    ByteBuffer buf = ByteBuffer.wrap(bytes, at, span.end() - span.start());
                    FileChannel ch = span.segment().readChannel();
                    while (buf.hasRemaining()) {
                        int n = FileIo.read(ch, buf, span.start() + (buf.position() - at));
                        if (n < 0) {
                            throw new IOException("unexpected end of segment " + span.segment().path.getFileName());
                        }
                    }
                    at += span.end() - span.start();
                }
                return new Chunk(from, last < 0 ? from : last + 1, bytes);
            } catch (ClosedChannelException e) {
                // Compacted or removed meanwhile (or a reader's interrupt closed the channel): look it up again.
                if (closed || e instanceof ClosedByInterruptException || Thread.currentThread().isInterrupted()
                        || attempt >= READ_ATTEMPTS) {
                    throw new UncheckedIOException(new IOException("journal " + dir + ": read from position " + from
                            + " failed", e));
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /** Epoch of the newest record, -1 if the log has none. */
    public long lastEpoch() {
        indexLock.readLock().lock();
        try {
            Map.Entry<Long, Long> run = epochRuns.lastEntry();
            return run == null ? -1 : run.getValue();
        } finally {
            indexLock.readLock().unlock();
        }
    }

    /** Epoch of the record at {@code position}, -1 if the log has no record there. */
    public long epochAt(long position) {
        indexLock.readLock().lock();
        try {
            Map.Entry<Long, Segment> e = segments.floorEntry(position);
            if (e == null || e.getValue().indexOf(position) < 0) {
                return -1;
            }
            Map.Entry<Long, Long> run = epochRuns.floorEntry(position);
            return run == null ? -1 : run.getValue();
        } finally {
            indexLock.readLock().unlock();
        }
    }

    /** The newest epoch of the log not above {@code epoch}, -1 if none. */
    public long newestEpochUpTo(long epoch) {
        indexLock.readLock().lock();
        try {
            long newest = -1;
            for (long e : epochRuns.values()) {
                if (e <= epoch) {
                    newest = Math.max(newest, e);
                }
            }
            return newest;
        } finally {
            indexLock.readLock().unlock();
        }
    }

    /** Position of the first record with an epoch above {@code epoch}; the next position if there is none. */
    public long firstPositionAbove(long epoch) {
        indexLock.readLock().lock();
        try {
            for (Map.Entry<Long, Long> run : epochRuns.entrySet()) {
                if (run.getValue() > epoch) {
                    return run.getKey();
                }
            }
            return published;
        } finally {
            indexLock.readLock().unlock();
        }
    }

    /** Position where the newest run of one epoch starts; the next position if the log is empty. */
    public long startOfLastEpoch() {
        indexLock.readLock().lock();
        try {
            Map.Entry<Long, Long> run = epochRuns.lastEntry();
            return run == null ? published : run.getKey();
        } finally {
            indexLock.readLock().unlock();
        }
    }

    /** Position the next record will get; every record below it that is still in the log is readable. */
    public long nextPosition() {
        return published;
    }

    /** The record at {@code position}, or null if it is no longer in the log. */
    public LogRecord read(long position) {
        // A reader interrupted while reading closes the readers' channel of the segment (Java's interruptible
        // channels), under other readers too: they reopen it and try again. A segment gone meanwhile was removed
        // (the record is deleted) or replaced by its compacted copy (the record is there): look it up again. Only
        // this reader's own interrupt or a closed log end the read.
        for (int attempt = 1; ; attempt++) {
            Segment s;
            int offset;
            int length;
            indexLock.readLock().lock();
            try {
                Map.Entry<Long, Segment> e = segments.floorEntry(position);
                if (e == null) {
                    return null;
                }
                s = e.getValue();
                int i = s.indexOf(position);
                if (i < 0) {
                    return null;
                }
                offset = s.offsets.get(i);
                length = s.lengthAt(i);
            } finally {
                indexLock.readLock().unlock();
            }
            try {
                return readAt(s, offset, length, position);
            } catch (ClosedChannelException e) {
                if (s.gone() && closed) {
                    throw new UncheckedIOException(new IOException("journal " + dir + " is closed", e));
                }
                if (e instanceof ClosedByInterruptException || Thread.currentThread().isInterrupted()
                        || attempt >= 10) {
                    throw new UncheckedIOException(new IOException("journal " + dir + ": read of position "
                            + position + " in " + s.path.getFileName() + " interrupted", e));
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    private LogRecord readAt(Segment s, int offset, int length, long position) throws IOException {
        FileChannel ch = s.readChannel();
        int n = length;
        if (n < 0) {
            ByteBuffer header = ByteBuffer.allocate(RecordCodec.HEADER_SIZE);
            readFully(ch, header, offset);
            n = RecordCodec.encodedLength(header.array(), 0);
        }
        ByteBuffer buf = ByteBuffer.allocate(n);
        readFully(ch, buf, offset);
        RecordCodec.Decoded d = RecordCodec.decode(buf.array(), 0, n, RecordCodec.MAX_RECORD_BYTES);
        if (!d.ok()) {
            throw new UncheckedIOException(new IOException("journal " + dir + ": record at position " + position
                    + " in " + s.path.getFileName() + " offset " + offset + " unreadable: " + d.problem()));
        }
        return d.record();
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long at) throws IOException {
        while (buf.hasRemaining()) {
            int n = FileIo.read(ch, buf, at + buf.position());
            if (n < 0) {
                throw new IOException("unexpected end of segment");
            }
        }
    }

    public Path directory() {
        return dir;
    }

    /**
     * Writes what is queued, fsyncs, closes the files and releases the directory lock. Waits a bounded time for the
     * writer: one stuck in a write or fsync is interrupted, and its requests fail. Safe for concurrent callers: each
     * returns once the log is closed. An interrupt of the closing thread (before or during the call) does not cut
     * these waits short, nor the final fsync (an interrupted thread's fsync would close the file instead); the
     * thread's interrupt status is set again when it returns.
     */
    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        boolean interrupted = Thread.interrupted();
        try {
            compactionWanted.release();
            // Waits for a compaction under way: it ends at its next record, or at its swap, once it sees closed.
            interrupted |= join(compactor);
            if (compactor.isAlive()) {
                LOG.warn("journal {}: compactor did not stop within {} ms; interrupting it", dir, CLOSE_WAIT_MILLIS);
                compactor.interrupt();
                interrupted |= join(compactor);
            }
            queue.add(CLOSE);
            interrupted |= join(writer);
            if (writer.isAlive()) {
                LOG.error("journal {}: writer thread did not finish within {} ms (stuck in a write or fsync?); "
                        + "interrupting it, its pending writes fail", dir, CLOSE_WAIT_MILLIS);
                writer.interrupt();
                interrupted |= join(writer);
            }
            // A caller may be writing its own request (write-on-caller): the files close after it, if it ends in
            // time.
            boolean locked = false;
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CLOSE_WAIT_MILLIS);
            while (!locked && deadline - System.nanoTime() > 0) {
                try {
                    locked = writing.tryLock(deadline - System.nanoTime(), TimeUnit.NANOSECONDS);
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (!locked) {
                LOG.error("journal {}: a caller's write did not finish within {} ms (stuck in a write or fsync?); "
                        + "closing the files under it, that write fails", dir, CLOSE_WAIT_MILLIS);
            }
            try {
                closeFiles(!locked);
            } finally {
                if (locked) {
                    writing.unlock();
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Waits up to {@link #CLOSE_WAIT_MILLIS} for {@code thread} to end, through interrupts; whether one came. */
    private static boolean join(Thread thread) {
        boolean interrupted = false;
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CLOSE_WAIT_MILLIS);
        while (thread.isAlive() && deadline - System.nanoTime() > 0) {
            try {
                TimeUnit.NANOSECONDS.timedJoin(thread, deadline - System.nanoTime());
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        return interrupted;
    }

    /** @param underWrite a caller's write may still be under way: the active segment is neither trimmed nor forced. */
    private void closeFiles(boolean underWrite) throws IOException {
        IOException first = null;
        for (WriteRequest r; (r = queue.poll()) != null; ) {
            if (r != CLOSE) {
                r.done.completeExceptionally(new IOException("journal " + dir + " is closed"));
            }
        }
        indexLock.writeLock().lock();
        try {
            // A write still under way must not be acknowledged: its files are closed, and trimming them may have
            // cut its bytes. It finds this when it publishes (under the same lock) and fails.
            closedUnderWrite = underWrite;
            for (Segment s : segments.values()) {
                try {
                    if (s == active && failure == null && !underWrite) {
                        trimPreallocated(s);
                        s.channel.force(false);
                    }
                    s.closeChannels();
                } catch (IOException e) {
                    first = first == null ? e : first;
                }
            }
        } finally {
            indexLock.writeLock().unlock();
        }
        lock.close();
        LOG.info("journal {}: closed at position {}", dir, nextPosition);
        if (first != null) {
            throw first;
        }
    }
}
