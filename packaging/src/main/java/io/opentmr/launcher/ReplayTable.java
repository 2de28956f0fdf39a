package io.opentmr.launcher;

import io.opentmr.tmr.replay.ContainerView;
import io.opentmr.tmr.replay.HandleView;
import io.opentmr.tmr.replay.JournalView;
import io.opentmr.tmr.replay.LicenseView;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** {@code tmr journal replay} for people: a heading, tables of containers, licenses and handles, then notes. */
final class ReplayTable {

    private ReplayTable() {
    }

    static String render(NodeJournalReplay.Result r) {
        StringBuilder out = new StringBuilder();
        out.append("TMR node journal ").append(r.journalDir());
        if (r.persistenceId() != null) {
            out.append(", ").append(r.persistenceId()).append(" only");
        }
        out.append(r.at() == null ? ", replayed to its end" : ", replayed up to " + r.at());
        out.append(r.asOf() == null ? "" : " (state as of " + r.asOf() + ")").append("\n\n");

        if (!r.containers().isEmpty()) {
            List<List<String>> rows = new ArrayList<>();
            rows.add(List.of("VIRTUAL CONTAINER", "CMACTID", "LICENSES", "JOURNAL"));
            for (ContainerView c : r.containers()) {
                rows.add(List.of(c.serial(), c.cmActId() == 0 ? "-" : Long.toString(c.cmActId()),
                        Integer.toString(c.licenses().size()), journal(c.journal())));
            }
            table(out, rows);
            out.append('\n');
        }

        if (r.licenses().isEmpty()) {
            out.append("No TMR license.\n");
        } else {
            List<List<String>> rows = new ArrayList<>();
            rows.add(List.of("LICENSE", "CONTAINER", "SEATS USED", "HANDLES", "JOURNAL"));
            for (LicenseView l : r.licenses()) {
                rows.add(List.of(l.license(), l.container() == null ? "-" : l.container(),
                        l.exclusive() != null ? "all (EXCLUSIVE)" : String.valueOf(l.seats().used()),
                        Integer.toString(l.handles()), journal(l.journal())));
            }
            table(out, rows);
        }
        out.append('\n');

        if (r.handles().isEmpty()) {
            out.append("No handle.\n");
        } else {
            List<List<String>> rows = new ArrayList<>();
            rows.add(List.of("HANDLE", "LICENSE", "MODE", "USER", "HOST", "STATION", "PID", "GRANTED"));
            for (HandleView h : r.handles()) {
                rows.add(List.of(h.id(), h.license(), h.mode(), h.owner().user(),
                        h.owner().host() == null ? "-" : h.owner().host(), h.owner().station(),
                        Long.toString(h.owner().pid()), h.grantedAt()));
            }
            table(out, rows);
        }
        if (!r.licenses().isEmpty()) {
            out.append("\nSeats in all, units and copies are the backends' (tmr client list shows them), not in the "
                    + "node's journal.\n");
        }
        if (!r.skipped().isEmpty()) {
            out.append('\n').append(r.skipped().size()).append(" persistence id(s) skipped, as the node skips them "
                    + "(--json lists them):\n");
            Map<String, List<NodeJournalReplay.Skipped>> byReason = new LinkedHashMap<>();
            r.skipped().forEach(s -> byReason.computeIfAbsent(s.reason(), k -> new ArrayList<>()).add(s));
            byReason.forEach((reason, ids) -> out.append("  * ").append(ids.get(0).persistenceId())
                    .append(ids.size() > 1 ? " and " + (ids.size() - 1) + " more" : "").append(" (")
                    .append(ids.stream().mapToLong(NodeJournalReplay.Skipped::records).sum()).append(" record(s)): ")
                    .append(reason).append('\n'));
        }
        if (!r.notices().isEmpty()) {
            out.append("\nNotes:\n");
            r.notices().forEach(n -> out.append("  * ").append(n).append('\n'));
        }
        return out.toString().stripTrailing();
    }

    /** Where the state stands in its journal, in a few words. */
    static String journal(JournalView j) {
        if (j == null) {
            return "-";
        }
        if (j.sequenceNr() == 0 && j.snapshot() == null && j.eventsApplied() == 0) {
            return j.highestSequenceNr() == 0 ? "no records" : "nothing by then (seqNr 0 of " + j.highestSequenceNr()
                    + ")";
        }
        StringBuilder text = new StringBuilder();
        if (j.snapshot() != null) {
            text.append(JournalView.OLDEST_SNAPSHOT.equals(j.start()) ? "oldest snapshot" : "snapshot")
                    .append(" at seqNr ").append(j.snapshot().sequenceNr());
            if (j.eventsApplied() > 0) {
                text.append(" + ");
            }
        }
        if (j.eventsApplied() > 0 || j.snapshot() == null) {
            text.append(j.eventsApplied()).append(j.eventsApplied() == 1 ? " event" : " events");
        }
        text.append(": seqNr ").append(j.sequenceNr());
        if (j.highestSequenceNr() > j.sequenceNr()) {
            text.append(" of ").append(j.highestSequenceNr());
        }
        return text.toString();
    }

    /** Left-aligned columns, two spaces apart; the first row is the heading. */
    private static void table(StringBuilder out, List<List<String>> rows) {
        int columns = rows.get(0).size();
        int[] widths = new int[columns];
        for (List<String> row : rows) {
            for (int c = 0; c < columns; c++) {
                widths[c] = Math.max(widths[c], row.get(c).length());
            }
        }
        for (List<String> row : rows) {
            StringBuilder line = new StringBuilder();
            for (int c = 0; c < columns; c++) {
                line.append(row.get(c));
                if (c < columns - 1) {
                    line.append(" ".repeat(widths[c] - row.get(c).length() + 2));
                }
            }
            out.append(line.toString().stripTrailing()).append('\n');
        }
    }
}
