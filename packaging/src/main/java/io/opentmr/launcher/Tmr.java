package io.opentmr.launcher;

import com.typesafe.config.ConfigException;
import io.opentmr.client.CmException;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.NoSuchFileException;
import java.time.Duration;
import java.time.Instant;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * The {@code tmr} launcher. Exit codes: 0 success, 1 a CodeMeter error or a failed operation,
 * 2 bad usage or configuration (the message names the flag or key).
 */
@Command(name = "tmr", mixinStandardHelpOptions = true, versionProvider = Tmr.Version.class,
        description = "OpenTMR: a Triple Mode Redundancy license server.",
        subcommands = {BackendCommand.class, NodeCommand.class, DemoCommand.class, ClientCommand.class, LicenseCommand.class, JournalCommand.class, TrackingCommand.class,
                BenchCommand.class,
                CommandLine.HelpCommand.class})
public final class Tmr implements Runnable {

    @Spec
    CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(args));
    }

    static int run(String... args) {
        return commandLine().execute(args);
    }

    static CommandLine commandLine() {
        CommandLine commandLine = new CommandLine(new Tmr());
        commandLine.registerConverter(Duration.class, new DurationConverter());
        commandLine.registerConverter(Instant.class, new InstantConverter());
        commandLine.setExecutionExceptionHandler(Tmr::handle);
        return commandLine;
    }

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "name a command: backend, node, demo, client, license, journal, bench");
    }

    private static int handle(Exception e, CommandLine commandLine, CommandLine.ParseResult parseResult) {
        PrintWriter err = commandLine.getErr();
        if (e instanceof ConfigException) {
            err.println("tmr: configuration error: " + e.getMessage());
            return Output.USAGE;
        }
        if (e instanceof CmException cm) {
            err.println("tmr: error " + cm.code() + ": " + cm.text());
            return Output.CM_ERROR;
        }
        if (e instanceof NoSuchFileException missing) {
            err.println("tmr: no such file: " + missing.getFile());
            return Output.CM_ERROR;
        }
        if (e instanceof IOException || e instanceof IllegalArgumentException || e instanceof IllegalStateException) {
            err.println("tmr: " + e.getMessage());
            return Output.CM_ERROR;
        }
        err.println("tmr: unexpected failure: " + e);
        e.printStackTrace(err);
        return Output.CM_ERROR;
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String version = Tmr.class.getPackage().getImplementationVersion();
            return new String[] {"OpenTMR " + (version == null ? "development build" : version)};
        }
    }
}
