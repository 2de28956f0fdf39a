package io.opentmr.persistence.tools;

import java.util.List;

/**
 * What recovery hands one persistence id, read offline by {@link JournalHistory#recover}: the snapshot it starts from
 * (null: the empty state) and the events after it, decoded, in sequence number order. The entity's own event handler
 * applies them; this knows no domain type.
 *
 * @param start       where the state starts: empty, the snapshot recovery would load, or (asked for a time before
 *                    the oldest state kept) the oldest snapshot
 * @param deletedTo   events up to this sequence number were deleted (snapshots with deletes); 0 if none
 * @param highestSequenceNr the id's highest sequence number in the journal, events and deletions included
 * @param notes       what a reader should know about this recovery (a snapshot that could not be read, deleted
 *                    events it could not start before), in words
 */
public record Recovery(String persistenceId, Start start, Snapshot snapshot, List<Event> events, long deletedTo,
        long highestSequenceNr, List<String> notes) {

    public Recovery {
        events = List.copyOf(events);
        notes = List.copyOf(notes);
    }

    public enum Start {
        /** No snapshot: the events from the first one kept. */
        EMPTY,
        /** The newest readable snapshot (at or before the time asked for), then the events after it. */
        SNAPSHOT,
        /**
         * The time asked for lies before the oldest state kept (older events were deleted when snapshots were taken):
         * the oldest snapshot, as the nearest state known.
         */
        OLDEST_SNAPSHOT
    }

    /** A snapshot: its sequence number, when it was taken (ms since the epoch), its value. */
    public record Snapshot(long sequenceNr, long timestamp, Object value) {
    }

    /** An event: its sequence number, when it was written (ms since the epoch), its position in the log, its value. */
    public record Event(long sequenceNr, long timestamp, long position, Object payload) {
    }

    /** The sequence number of the state rebuilt: of the last event applied, else of the snapshot, else 0. */
    public long sequenceNr() {
        if (!events.isEmpty()) {
            return events.get(events.size() - 1).sequenceNr();
        }
        return snapshot == null ? 0 : snapshot.sequenceNr();
    }

    /** When the state rebuilt was reached (ms): the last event's write, else the snapshot's, else 0. */
    public long updatedAt() {
        if (!events.isEmpty()) {
            return events.get(events.size() - 1).timestamp();
        }
        return snapshot == null ? 0 : snapshot.timestamp();
    }

    /** Nothing to apply: the id had no state yet (at the time asked for). */
    public boolean isEmpty() {
        return snapshot == null && events.isEmpty();
    }
}
