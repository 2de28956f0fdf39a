package io.opentmr.launcher;

import io.opentmr.persistence.tools.DumpFilter;
import io.opentmr.persistence.tools.DumpResult;
import io.opentmr.persistence.tools.JournalTools;
import io.opentmr.persistence.tools.VerifyReport;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code tmr journal}: read a journal offline, or beside a running server (read-only, no lock taken). */
@Command(name = "journal", mixinStandardHelpOptions = true, description = "Read a component's journal.",
        subcommands = {JournalCommand.Dump.class, JournalCommand.Verify.class})
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
}
