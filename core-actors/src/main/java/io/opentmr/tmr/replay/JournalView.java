package io.opentmr.tmr.replay;

/**
 * Where a replayed entity's state stands in its journal: what a replay adds to the view of a license or a container
 * (a running node's views have none).
 *
 * @param persistenceId     the entity's journal
 * @param sequenceNr        of the state shown: the last event applied, else the snapshot's, else 0
 * @param highestSequenceNr the highest in the journal; above {@code sequenceNr} when the replay stopped at a time
 * @param start             {@code empty} (no snapshot: from the first event kept), {@code snapshot} (the newest
 *                          snapshot taken by then, as the node's recovery chooses it) or {@code oldest-snapshot} (the
 *                          time asked for lies before the oldest state kept: the oldest snapshot instead)
 * @param snapshot          the snapshot the state starts from, or null
 * @param eventsApplied     events applied after it
 * @param deletedTo         events up to this sequence number were deleted (snapshots with deletes); 0 if none
 * @param updatedAt         when the state shown was reached (the last event's or the snapshot's time, ISO-8601), or
 *                          null when nothing was applied
 */
public record JournalView(String persistenceId, long sequenceNr, long highestSequenceNr, String start,
                          Snapshot snapshot, long eventsApplied, long deletedTo, String updatedAt) {

    public static final String EMPTY = "empty";
    public static final String SNAPSHOT = "snapshot";
    public static final String OLDEST_SNAPSHOT = "oldest-snapshot";

    /** A snapshot: its sequence number and when it was taken (ISO-8601). */
    public record Snapshot(long sequenceNr, String takenAt) {
    }

    /** An entity the journal has no record of (a license the container knows that never journaled a seat). */
    public static JournalView none(String persistenceId) {
        return new JournalView(persistenceId, 0, 0, EMPTY, null, 0, 0, null);
    }
}
