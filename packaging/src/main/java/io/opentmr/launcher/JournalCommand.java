package io.opentmr.launcher;

import io.opentmr.persistence.tools.DumpFilter;
import io.opentmr.persistence.tools.DumpResult;
import io.opentmr.persistence.tools.JournalTools;
import io.opentmr.persistence.tools.VerifyReport;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code tmr journal}: read a journal offline, or beside a running server (read-only, no lock taken). */
@Command(name = "journal", mixinStandardHelpOptions = true, description = "Read a component's journal.",
        subcommands = {JournalCommand.Dump.class, JournalCommand.Verify.class, JournalCommand.Replay.class})
final class JournalCommand {

    @Command(name = "dump", mixinStandardHelpOptions = true,
            description = "Print records as JSON lines (payloads decoded where the serializer allows).")
    static final class Dump implements Callable<Integer> {
        @Option(names = "--dir", required = true, description = "The journal directory (DATA_DIR/journal).")
        Path dir;

        @Option(names = "--persistence-id", description = "Only this persistence id.")
        String persistenceId;

        @Option(names = "--from", defaultValue = "1", description = "First sequence number (with --persistence-id).")
        long from;

        @Option(names = "--to", defaultValue = "" + Long.MAX_VALUE, description = "Last sequence number.")
        long to;

        @Override
        public Integer call() throws Exception {
            DumpFilter filter = persistenceId == null ? DumpFilter.all()
                    : DumpFilter.persistenceId(persistenceId).sequenceNrs(from, to);
            Writer out = new OutputStreamWriter(System.out, StandardCharsets.UTF_8);
            DumpResult result = JournalTools.dump(dir, filter, out);
            out.flush();
            System.err.println("tmr: " + result.printed() + " of " + result.scanned() + " record(s) printed"
                    + (result.damages().isEmpty() ? "" : "; damage: " + result.damages()));
            return result.damages().isEmpty() ? Output.OK : Output.CM_ERROR;
        }
    }

    @Command(name = "verify", mixinStandardHelpOptions = true,
            description = "Check CRCs and sequence continuity; exit 0 if sound (a torn tail is only noted).")
    static final class Verify implements Callable<Integer> {
        @Option(names = "--dir", required = true, description = "The journal directory (DATA_DIR/journal).")
        Path dir;

        @Option(names = "--json", description = "The report as one JSON object.")
        boolean json;

        @Override
        public Integer call() throws Exception {
            VerifyReport report = JournalTools.verify(dir);
            if (json) {
                System.out.println(Output.toJson(report));
            } else {
                System.out.println(report);
            }
            return report.exitCode();
        }
    }

    @Command(name = "replay", mixinStandardHelpOptions = true,
            description = {"Rebuild a TMR node's virtual containers, licenses and handles from its journal, with the "
                    + "node's own event handlers, and print them (docs/journal-replay.md).",
                    "Read-only: no lock is taken and nothing is written, so it runs beside a running node too.",
                    "Exit 0 with the state; 1 if the directory is not a node's journal, is damaged before its tail, "
                            + "holds a record this version cannot read, or --at lies before its first event."})
    static final class Replay implements Callable<Integer> {
        @Option(names = "--dir", required = true, description = "The node's journal directory (DATA_DIR/journal).")
        Path dir;

        @Option(names = "--snapshot-dir", description = "Its snapshots (default: DIR/snapshots, where the node keeps "
                + "them unless opentmr.persistence.snapshot-dir says otherwise).")
        Path snapshotDir;

        @Option(names = "--at", converter = AtConverter.class, description = "Replay up to this time: what was held "
                + "then. ISO-8601 (2027-01-01T12:00:00Z, 2027-01-01) or ms since the epoch (as journal dump prints "
                + "timestamps). Before the oldest state kept (older events deleted by snapshots) the oldest snapshot "
                + "is shown instead, and the notes say so.")
        Instant at;

        @Option(names = "--persistence-id", description = "Only this persistence id: tmr-license|FIRM-PRODUCT-TMRID "
                + "or tmr-container|SERIAL.")
        String persistenceId;

        @Option(names = "--json", description = "One JSON object (fields: docs/journal-replay.md).")
        boolean json;

        @Override
        public Integer call() throws Exception {
            NodeJournalReplay.Result result = NodeJournalReplay.replay(dir,
                    snapshotDir != null ? snapshotDir : dir.resolve("snapshots"), at, persistenceId);
            System.out.println(json ? Output.toJson(result.json()) : ReplayTable.render(result));
            return Output.OK;
        }
    }

    /** {@code --at}: what {@link InstantConverter} takes, or a number of ms since the epoch. */
    static final class AtConverter implements CommandLine.ITypeConverter<Instant> {
        @Override
        public Instant convert(String value) {
            if (value.matches("\\d{1,18}")) {
                return Instant.ofEpochMilli(Long.parseLong(value));
            }
            return new InstantConverter().convert(value);
        }
    }
}
