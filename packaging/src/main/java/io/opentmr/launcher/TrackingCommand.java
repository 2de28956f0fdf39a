package io.opentmr.launcher;

import io.opentmr.tracking.TrackingFiles;
import io.opentmr.tracking.UsageReport;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.DateTimeException;
import java.time.LocalDate;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code tmr tracking}: read tracking logs of backends and TMR nodes. */
@Command(name = "tracking", mixinStandardHelpOptions = true, description = "Read tracking logs.",
        subcommands = {TrackingCommand.Report.class})
final class TrackingCommand {

    @Command(name = "report", mixinStandardHelpOptions = true,
            description = {"Usage per license and day from tracking logs of backends and TMR nodes (plain or .gz, "
                    + "current or rotated): peak seats in use, accesses, denials by error number, top users.",
                    "A line seen in two files (a node's line written again after a restart, or both twin nodes' logs) "
                            + "counts once; malformed lines are counted and listed, not fatal (exit code 1)."})
    static final class Report implements Callable<Integer> {

        @Spec
        CommandLine.Model.CommandSpec spec;

        @Option(names = "--log", required = true, arity = "1..*", paramLabel = "FILE",
                description = "Tracking log files, or data directories (their tracking.log and rotated days).")
        List<Path> logs;

        @Option(names = "--from", paramLabel = "YYYY-MM-DD", description = "First day reported (earlier lines are "
                + "read for the handles they open).")
        LocalDate from;

        @Option(names = "--to", paramLabel = "YYYY-MM-DD", description = "Last day reported.")
        LocalDate to;

        @Option(names = "--zone", description = "Time zone of the days, e.g. Europe/Berlin or UTC; default: the "
                + "system's.")
        String zone;

        @Option(names = "--top", defaultValue = "3", description = "Users listed per row (default 3).")
        int top;

        @ArgGroup(exclusive = true)
        Format format = new Format();

        static final class Format {
            @Option(names = "--json", description = "One JSON object.")
            boolean json;

            @Option(names = "--csv", description = "CSV with a header line.")
            boolean csv;
        }

        @Override
        public Integer call() throws Exception {
            ZoneId days;
            try {
                days = zone == null ? ZoneId.systemDefault() : ZoneId.of(zone);
            } catch (DateTimeException e) {
                throw new CommandLine.ParameterException(spec.commandLine(), "--zone: not a time zone: " + zone);
            }
            if (from != null && to != null && to.isBefore(from)) {
                throw new CommandLine.ParameterException(spec.commandLine(), "--to " + to + " is before --from " + from);
            }
            if (top < 0) {
                throw new CommandLine.ParameterException(spec.commandLine(), "--top must be 0 or more");
            }
            List<Path> files = new ArrayList<>();
            for (Path log : logs) {
                if (Files.isDirectory(log)) {
                    List<Path> inside = TrackingFiles.inDirectory(log);
                    if (inside.isEmpty()) {
                        throw new CommandLine.ParameterException(spec.commandLine(), "--log " + log
                                + ": no tracking log in this directory");
                    }
                    files.addAll(inside);
                } else if (Files.isReadable(log)) {
                    files.add(log);
                } else {
                    throw new CommandLine.ParameterException(spec.commandLine(), "--log " + log + ": cannot read it");
                }
            }
            UsageReport report = UsageReport.read(files, from, to, days, top);
            if (format.json) {
                System.out.println(report.toJson());
            } else if (format.csv) {
                System.out.print(report.toCsv());
            } else {
                System.out.print(report.rows().isEmpty() ? "No accesses or denials in the days asked for.\n"
                        : report.toTable());
            }
            if (report.malformed() > 0) {
                System.err.println("tmr: " + report.malformed() + " malformed line(s) of " + report.lines()
                        + " skipped; first:");
                report.problems().forEach(p -> System.err.println("  " + p.file() + ":" + p.line() + ": " + p.what()));
                return Output.CM_ERROR;
            }
            return Output.OK;
        }
    }
}
