package io.opentmr.persistence.tools;

import java.util.List;

/**
 * Result of {@link JournalTools#verify}: counts, notes (normal conditions worth knowing, such as a torn tail that
 * the next open truncates) and problems (damage). {@link #exitCode()} is 0 without problems, 1 with.
 */
public record VerifyReport(int segments, long records, long events, long tombstones, int persistenceIds,
        List<String> notes, List<String> problems) {

    public VerifyReport {
        notes = List.copyOf(notes);
        problems = List.copyOf(problems);
    }

    public int exitCode() {
        return problems.isEmpty() ? 0 : 1;
    }

    public boolean ok() {
        return problems.isEmpty();
    }
}
