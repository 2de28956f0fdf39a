package io.opentmr.persistence.tools;

import java.util.Optional;

/**
 * Which records {@link JournalTools#dump} prints: one persistence id or all, and a sequence number range
 * (inclusive). Tombstones of a selected id are printed when their sequence number is in the range.
 */
public record DumpFilter(Optional<String> persistenceId, long fromSequenceNr, long toSequenceNr) {

    public DumpFilter {
        if (fromSequenceNr > toSequenceNr) {
            throw new IllegalArgumentException("from " + fromSequenceNr + " is after to " + toSequenceNr);
        }
    }

    /** Every record. */
    public static DumpFilter all() {
        return new DumpFilter(Optional.empty(), 0, Long.MAX_VALUE);
    }

    /** Every record of one persistence id. */
    public static DumpFilter persistenceId(String persistenceId) {
        return new DumpFilter(Optional.of(persistenceId), 0, Long.MAX_VALUE);
    }

    /** The same filter restricted to {@code from <= sequenceNr <= to}. */
    public DumpFilter sequenceNrs(long from, long to) {
        return new DumpFilter(persistenceId, from, to);
    }

    boolean matches(String pid, long sequenceNr) {
        return persistenceId.map(pid::equals).orElse(true) && sequenceNr >= fromSequenceNr
                && sequenceNr <= toSequenceNr;
    }
}
