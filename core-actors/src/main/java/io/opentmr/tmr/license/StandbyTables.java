package io.opentmr.tmr.license;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The seat tables of a twin's standby, kept current as its log copies the active's records: each license's events
 * are folded into its table in the journal's order, as a replay would fold them, so that a take-over hands each
 * license its table ({@link TmrLicense.WarmTable}) instead of replaying it.
 *
 * <p>A table counts only from a {@link TmrLicenseEvent.Checkpoint} on (whatever came before, the table is the
 * checkpoint's after it), or from the license's first event: what is left of a journal after deletions always has a
 * checkpoint above the deleted events, and a replay resets its table there too. A gap in the sequence numbers (an
 * event not seen) drops the table until the next checkpoint. Not thread-safe: one reader feeds it in log order.
 */
public final class StandbyTables {

    /** Grants and releases kept for the tracking log's recovery at most; older ones are dropped. */
    static final int TRACKED_EVENTS = 65_536;

    /** A table ready to hand over: the state after event {@code sequenceNr}. */
    public record Warm(long sequenceNr, TmrLicense.WarmTable table) {
    }

    private static final class Tail {
        /** Null while the table does not count (no checkpoint or first event seen yet, or after a gap). */
        SeatTable table;
        long sequenceNr;
        long sinceCheckpoint;
        final Deque<TmrLicenseEvent> tracked = new ArrayDeque<>();
    }

    private final Map<String, Tail> tails = new HashMap<>();
    private long folded;

    /** Whether the records of {@code persistenceId} are folded here: a TMR license's. */
    public static boolean folds(String persistenceId) {
        return persistenceId.startsWith(TmrLicense.PERSISTENCE_ID_PREFIX);
    }

    /**
     * Folds the event {@code sequenceNr} of {@code persistenceId} (a license's, {@link #folds}); {@code manifest}
     * tells a checkpoint without reading it, {@code payload} reads the event (only when it is folded).
     */
    public void event(String persistenceId, long sequenceNr, String manifest, Supplier<Object> payload) {
        Tail tail = tails.computeIfAbsent(persistenceId, id -> new Tail());
        if (sequenceNr <= tail.sequenceNr) {
            return;
        }
        boolean next = sequenceNr == tail.sequenceNr + 1;
        tail.sequenceNr = sequenceNr;
        if (isCheckpoint(manifest)) {
            TmrLicenseEvent event = (TmrLicenseEvent) payload.get();
            tail.table = SeatTable.apply(SeatTable.empty(), event);
            tail.sinceCheckpoint = 0;
            tail.tracked.clear();
            folded++;
            return;
        }
        if (!next) {
            tail.table = null;
            tail.tracked.clear();
            return;
        }
        if (tail.table == null) {
            if (sequenceNr != 1) {
                return;
            }
            tail.table = new SeatTable();
        }
        TmrLicenseEvent event = (TmrLicenseEvent) payload.get();
        tail.table = SeatTable.apply(tail.table, event);
        tail.sinceCheckpoint++;
        folded++;
        if (event instanceof TmrLicenseEvent.SeatGranted || event instanceof TmrLicenseEvent.SeatReleased) {
            tail.tracked.addLast(event);
            if (tail.tracked.size() > TRACKED_EVENTS) {
                tail.tracked.removeFirst();
            }
        }
    }

    /** The checkpoint's class name, which its records' manifests carry: a rename of the class follows here. */
    private static final String CHECKPOINT_CLASS = TmrLicenseEvent.Checkpoint.class.getName();

    /** Whether a record of this manifest is a {@link TmrLicenseEvent.Checkpoint} (read without reading it). */
    public static boolean isCheckpoint(String manifest) {
        return manifest.contains(CHECKPOINT_CLASS);
    }

    /**
     * Passes over the event {@code sequenceNr} of {@code persistenceId} without reading it: a checkpoint of the same
     * license follows it (in what the reader has at hand), which makes the table whatever came before. The table
     * does not count until that checkpoint is folded.
     */
    public void skip(String persistenceId, long sequenceNr) {
        Tail tail = tails.computeIfAbsent(persistenceId, id -> new Tail());
        if (sequenceNr <= tail.sequenceNr) {
            return;
        }
        tail.sequenceNr = sequenceNr;
        tail.table = null;
        tail.tracked.clear();
    }

    /** Events folded so far (checkpoints included). */
    public long folded() {
        return folded;
    }

    /** Licenses seen so far, and those of them whose table counts now. */
    public int licensesSeen() {
        return tails.size();
    }

    public int tablesReady() {
        return (int) tails.values().stream().filter(t -> t.table != null).count();
    }

    /** Forgets every table (the log was cut back under them): they count again from their next checkpoint. */
    public void clear() {
        tails.clear();
    }

    /**
     * Hands the tables that count over, by persistence id, and forgets every table: from now on each is its license's
     * (it changes them), not this fold's.
     */
    public Map<String, Warm> handOver() {
        Map<String, Warm> ready = new HashMap<>();
        tails.forEach((id, tail) -> {
            if (tail.table != null) {
                ready.put(id, new Warm(tail.sequenceNr, new TmrLicense.WarmTable(tail.table, tail.sinceCheckpoint,
                        new ArrayList<>(tail.tracked))));
            }
        });
        tails.clear();
        return ready;
    }

    /** The handles of a table that counts, for tests; empty when it does not. */
    List<Long> handles(String persistenceId) {
        Tail tail = tails.get(persistenceId);
        if (tail == null || tail.table == null) {
            return List.of();
        }
        return tail.table.all().stream().map(Seat::handleId).sorted().toList();
    }
}
