package io.opentmr.persistence.tools;

import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.LogScanner;
import io.opentmr.persistence.log.RecordCodec;
import io.opentmr.persistence.log.RecordType;
import io.opentmr.persistence.snapshot.SnapshotFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.function.BiConsumer;
import java.util.function.Predicate;

/**
 * A journal directory and its snapshots as recovery sees them, read without the journal's lock and without writing
 * anything, so also beside a running node: every persistence id's events still kept (deleted ones left out) and, on
 * demand, the {@link Recovery} of one id up to a point in time: the snapshot it starts from and the events after it,
 * chosen as Pekko's recovery with our snapshot store chooses them.
 *
 * <p>Beside a running node the journal changes while it is read. Segments are read one after the other, each as it
 * is when opened: one rolled after the listing is not read (its records are newer than the reading), one compacted
 * meanwhile is read whole in either form (compaction renames its copy over the segment, and a segment already open
 * keeps its old content), one removed meanwhile held only deleted records (its removal followed a deletion this
 * reading sees later in the log, where deletions are appended). A write in progress at the end reads as a torn tail,
 * which recovery drops too. The snapshots are listed after the log is read: a snapshot newer than the reading is a
 * state the node reached, and one removed before it is read is replaced by a newer one, so the listing is taken
 * again. Damage before the tail is read twice before it is reported: only a real one is there both times.
 */
public final class JournalHistory {

    private static final int MAX_RECORD_BYTES = RecordCodec.MAX_RECORD_BYTES;
    /** Listings of the snapshots per recovery when one vanishes under it (the node took a newer one). */
    private static final int SNAPSHOT_LISTINGS = 3;

    /** What the journal holds of one persistence id. {@code selected}: its events are kept for recovery. */
    public record IdSummary(String persistenceId, boolean selected, long records, long deletedTo,
            long highestSequenceNr) {
    }

    /** The earliest event kept of the selected ids. */
    public record FirstEvent(String persistenceId, long sequenceNr, long timestamp) {
    }

    /** One persistence id while the log is read. */
    private static final class Id {
        final String persistenceId;
        final boolean selected;
        final List<LogRecord> events = new ArrayList<>();
        long records;
        long deletedTo;
        long highest;

        Id(String persistenceId, boolean selected) {
            this.persistenceId = persistenceId;
            this.selected = selected;
        }

        IdSummary summary() {
            return new IdSummary(persistenceId, selected, records, deletedTo, highest);
        }
    }

    private final Path journal;
    private final SnapshotFiles snapshots;
    private final Map<String, Id> ids;
    private final List<LogScanner.Damage> tornTails;
    private final int segments;

    private JournalHistory(Path journal, SnapshotFiles snapshots, Map<String, Id> ids,
            List<LogScanner.Damage> tornTails, int segments) {
        this.journal = journal;
        this.snapshots = snapshots;
        this.ids = ids;
        this.tornTails = tornTails;
        this.segments = segments;
    }

    /**
     * Reads the journal in {@code journal} and notes where the snapshots of {@code snapshotDir} are. Only the events of
     * ids that {@code selected} accepts are kept (and can be recovered); the others are counted.
     *
     * @throws JournalReadException if {@code journal} is not a journal directory, or is damaged before its tail
     */
    public static JournalHistory read(Path journal, Path snapshotDir, Predicate<String> selected) throws IOException {
        checkIsJournal(journal);
        for (int reading = 1; ; reading++) {
            Map<String, Id> ids = new LinkedHashMap<>();
            LogScanner.Result result = LogScanner.scan(journal, MAX_RECORD_BYTES, true, (file, offset, length, r) -> {
                Id id = ids.computeIfAbsent(r.persistenceId(), pid -> new Id(pid, selected.test(pid)));
                id.records++;
                id.highest = Math.max(id.highest, r.sequenceNr());
                if (r.type() == RecordType.TOMBSTONE) {
                    id.deletedTo = Math.max(id.deletedTo, r.sequenceNr());
                } else if (id.selected) {
                    id.events.add(r);
                }
            });
            Optional<LogScanner.Damage> damage = result.damages().stream().filter(d -> !d.tail()).findFirst();
            if (damage.isPresent()) {
                if (reading < 2) {
                    continue;
                }
                throw new JournalReadException("journal damaged: " + damage.get() + ". The node refuses to start on "
                        + "it (opentmr.persistence.repair = on truncates the journal there); `tmr journal verify --dir "
                        + journal + "` lists every damaged spot");
            }
            for (Id id : ids.values()) {
                id.events.removeIf(r -> r.sequenceNr() <= id.deletedTo);
                id.events.sort(Comparator.comparingLong(LogRecord::sequenceNr));
            }
            return new JournalHistory(journal, SnapshotFiles.readOnly(snapshotDir), ids, result.damages(),
                    result.segments().size());
        }
    }

    private static void checkIsJournal(Path journal) throws IOException {
        if (!Files.exists(journal)) {
            throw new JournalReadException(journal + " does not exist: name a journal directory (a component's "
                    + "DATA_DIR/journal)");
        }
        if (!Files.isDirectory(journal)) {
            throw new JournalReadException(journal + " is not a directory: name a journal directory (a component's "
                    + "DATA_DIR/journal)");
        }
        if (LogScanner.segmentFiles(journal).isEmpty()) {
            Path inside = journal.resolve("journal");
            String hint = Files.isDirectory(inside) && !LogScanner.segmentFiles(inside).isEmpty()
                    ? "; did you mean " + inside + "?" : " (a component's journal is DATA_DIR/journal)";
            throw new JournalReadException(journal + " is not a journal: it holds no segment files "
                    + "(00000000000000000000.seg, ...)" + hint);
        }
    }

    public Path journal() {
        return journal;
    }

    /** Segment files read. */
    public int segments() {
        return segments;
    }

    /** Every persistence id with records in the journal, in the order they first appear. */
    public List<IdSummary> persistenceIds() {
        return ids.values().stream().map(Id::summary).toList();
    }

    /** The id's summary, if the journal holds records of it. */
    public Optional<IdSummary> persistenceId(String persistenceId) {
        return Optional.ofNullable(ids.get(persistenceId)).map(Id::summary);
    }

    /**
     * Torn tails read: a write in progress beside a running node, or the last write of a crash. Their records are not
     * in the history; recovery drops them too.
     */
    public List<LogScanner.Damage> tornTails() {
        return tornTails;
    }

    /** The earliest event kept of the selected ids, by timestamp. */
    public Optional<FirstEvent> firstEvent() {
        FirstEvent first = null;
        for (Id id : ids.values()) {
            for (LogRecord r : id.events) {
                if (first == null || r.timestamp() < first.timestamp()) {
                    first = new FirstEvent(id.persistenceId, r.sequenceNr(), r.timestamp());
                }
            }
        }
        return Optional.ofNullable(first);
    }

    /**
     * When the oldest snapshot of the selected ids was taken (ms since the epoch), if any is kept. With
     * {@link #firstEvent} it bounds what the journal still knows: nothing of a time before both.
     */
    public OptionalLong oldestSnapshot() throws IOException {
        OptionalLong oldest = OptionalLong.empty();
        for (Id id : ids.values()) {
            if (!id.selected) {
                continue;
            }
            for (SnapshotFiles.Key key : snapshots.list(id.persistenceId)) {
                if (oldest.isEmpty() || key.timestamp() < oldest.getAsLong()) {
                    oldest = OptionalLong.of(key.timestamp());
                }
            }
        }
        return oldest;
    }

    /** Whether events of a selected id were deleted (by snapshots): the journal no longer holds its beginning. */
    public boolean deletedAny() {
        return ids.values().stream().anyMatch(id -> id.selected && id.deletedTo > 0);
    }

    /**
     * What recovery hands {@code persistenceId}, at {@code at} (null: now, everything the journal holds): the newest
     * snapshot taken at or before it that can be read (an unreadable one is noted and an older one tried, as the
     * snapshot store does), then the events after it up to the first written later. When the time lies before the
     * oldest state kept (older events were deleted when snapshots were taken), the state starts from the oldest
     * snapshot and the recovery says so.
     *
     * @throws IllegalArgumentException if the id was not selected when the journal was read, or has no records
     * @throws JournalReadException     if an event cannot be decoded (a newer version's, a type no longer known)
     */
    public Recovery recover(String persistenceId, Instant at, Decoder decoder) throws IOException {
        Id id = ids.get(persistenceId);
        if (id == null || !id.selected) {
            throw new IllegalArgumentException("persistence id " + persistenceId + (id == null ? " has no records in "
                    + journal : " was not selected when " + journal + " was read"));
        }
        long atMillis = at == null ? Long.MAX_VALUE : at.toEpochMilli();
        SnapshotFiles.Reader<Recovery.Snapshot> reader = (key, stored) -> new Recovery.Snapshot(key.sequenceNr(),
                key.timestamp(), decoder.decode(stored.snapshot().serializerId(), stored.snapshot().manifest(),
                        stored.snapshot().bytes()));
        for (int listing = 1; ; listing++) {
            List<String> notes = new ArrayList<>();
            boolean[] vanished = {false};
            BiConsumer<SnapshotFiles.Key, Exception> failed = (key, e) -> {
                if (e instanceof NoSuchFileException) {
                    vanished[0] = true;
                } else {
                    notes.add("the snapshot of " + persistenceId + " at seqNr " + key.sequenceNr() + " ("
                            + key.file().getFileName() + ") cannot be read: " + e + "; an older one is tried, as "
                            + "recovery does");
                }
            };
            List<SnapshotFiles.Key> newestFirst = snapshots.list(persistenceId);
            Recovery.Start start = Recovery.Start.EMPTY;
            Recovery.Snapshot snapshot = snapshots.loadNewest(newestFirst, key -> key.timestamp() <= atMillis, reader,
                    failed).map(SnapshotFiles.Loaded::value).orElse(null);
            if (snapshot != null) {
                start = Recovery.Start.SNAPSHOT;
            } else if (at != null && id.deletedTo > 0) {
                List<SnapshotFiles.Key> oldestFirst = new ArrayList<>(newestFirst);
                Collections.reverse(oldestFirst);
                snapshot = snapshots.loadNewest(oldestFirst, key -> true, reader, failed)
                        .map(SnapshotFiles.Loaded::value).orElse(null);
                if (snapshot != null) {
                    start = Recovery.Start.OLDEST_SNAPSHOT;
                    notes.add(at + " is before the oldest state of " + persistenceId + " kept: its events up to seqNr "
                            + id.deletedTo + " were deleted when snapshots were taken. It is shown as of its oldest "
                            + "snapshot instead (seqNr " + snapshot.sequenceNr() + ", taken "
                            + Instant.ofEpochMilli(snapshot.timestamp()) + ")");
                }
            }
            if (vanished[0] && listing < SNAPSHOT_LISTINGS) {
                // A snapshot went between the listing and its reading: the node took a newer one. List again.
                continue;
            }
            if (snapshot == null && id.deletedTo > 0) {
                notes.add("the events of " + persistenceId + " up to seqNr " + id.deletedTo + " were deleted and no "
                        + "snapshot of it can be read: its state is rebuilt from seqNr " + (id.deletedTo + 1)
                        + " on, as the node's recovery would");
            } else if (snapshot != null && snapshot.sequenceNr() < id.deletedTo) {
                notes.add("the events of " + persistenceId + " from seqNr " + (snapshot.sequenceNr() + 1) + " to "
                        + id.deletedTo + " were deleted after the snapshot read (a newer one cannot be read): the "
                        + "state lacks them, as the node's would");
            }
            long from = snapshot == null ? 0 : snapshot.sequenceNr();
            List<Recovery.Event> events = new ArrayList<>();
            for (LogRecord r : id.events) {
                if (r.sequenceNr() <= from) {
                    continue;
                }
                if (r.timestamp() > atMillis) {
                    break;
                }
                events.add(new Recovery.Event(r.sequenceNr(), r.timestamp(), r.position(), decode(decoder, r)));
            }
            return new Recovery(persistenceId, start, snapshot, events, id.deletedTo, id.highest, notes);
        }
    }

    private Object decode(Decoder decoder, LogRecord r) throws JournalReadException {
        try {
            return decoder.decode(r.serializerId(), r.manifest(), r.payload());
        } catch (Exception e) {
            throw new JournalReadException("cannot read event seqNr " + r.sequenceNr() + " of " + r.persistenceId()
                    + " (position " + r.position() + ", serializer " + r.serializerId() + ", manifest "
                    + r.manifest() + "): " + e + ". A record written by a newer version is read only by that "
                    + "version's tools", e);
        }
    }
}
