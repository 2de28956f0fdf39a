package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class LauncherTest {

    @TempDir
    Path dir;

    @Test
    void durationsAsOperatorsWriteThem() {
        assertEquals(Duration.ofSeconds(8), DurationConverter.parse("8s"));
        assertEquals(Duration.ofMillis(500), DurationConverter.parse("500ms"));
        assertEquals(Duration.ofMinutes(2), DurationConverter.parse("2m"));
        assertEquals(Duration.ofHours(1), DurationConverter.parse("1h"));
        assertEquals(Duration.ofDays(7), DurationConverter.parse("7d"));
        assertEquals(Duration.ofSeconds(30), DurationConverter.parse("30"));
        assertEquals(Duration.ofSeconds(8), DurationConverter.parse("PT8S"));
        assertEquals(Duration.ofDays(14), DurationConverter.parse("P14D"));
        CommandLine.TypeConversionException e = assertThrows(CommandLine.TypeConversionException.class,
                () -> DurationConverter.parse("8 seconds"));
        assertTrue(e.getMessage().contains("8s"), e.getMessage());
    }

    @Test
    void timesInIsoForm() {
        InstantConverter converter = new InstantConverter();
        assertEquals(Instant.parse("2027-01-01T00:00:00Z"), converter.convert("2027-01-01"));
        assertEquals(Instant.parse("2027-01-01T10:00:00Z"), converter.convert("2027-01-01T12:00:00+02:00"));
        assertThrows(CommandLine.TypeConversionException.class, () -> converter.convert("next monday"));
    }

    private record Run(int exit, String err) {
    }

    private static Run run(String... args) {
        StringWriter err = new StringWriter();
        CommandLine commandLine = Tmr.commandLine();
        commandLine.setErr(new PrintWriter(err, true));
        int exit = commandLine.execute(args);
        return new Run(exit, err.toString());
    }

    @Test
    void aBadConfigurationExitsWith2AndNamesTheKey() {
        Run run = run("backend", "--data-dir", dir.toString(), "--cm-act-id", "0");
        assertEquals(2, run.exit());
        assertTrue(run.err().contains("opentmr.backend.cm-act-id"), run.err());

        Run missingKey = run("backend", "--data-dir", dir.toString(), "--cm-act-id", "7", "--vendor-key",
                dir.resolve("nope.pub").toString());
        assertEquals(2, missingKey.exit());
        assertTrue(missingKey.err().contains("opentmr.backend.vendor-keys"), missingKey.err());
    }

    @Test
    void aConfigFileSetsWhatFlagsDoNotAndFlagsWin() throws Exception {
        Path file = dir.resolve("backend.conf");
        Files.writeString(file, "opentmr.backend { data-dir = \"" + dir + "\", cm-act-id = 9, cleanup-timeout = -1s }\n");
        Run fromFile = run("backend", "--config", file.toString());
        assertEquals(2, fromFile.exit());
        assertTrue(fromFile.err().contains("opentmr.backend.cleanup-timeout"), fromFile.err());

        Path good = dir.resolve("good.conf");
        Files.writeString(good, "opentmr.backend { data-dir = \"" + dir + "\", cm-act-id = 0 }\n");
        java.util.Map<String, Object> flags = java.util.Map.of("opentmr.backend.cm-act-id", 9);
        com.typesafe.config.Config resolved = LauncherConfig.resolve(flags, good, "opentmr.backend.data-dir");
        assertEquals(9, resolved.getLong("opentmr.backend.cm-act-id"), "the flag wins over the file");
        assertEquals(dir.toString(), resolved.getString("opentmr.backend.data-dir"), "the file sets what flags do not");
        assertEquals(dir.resolve("journal").toString(), resolved.getString("opentmr.persistence.dir"),
                "the journal lives in the data directory");
        assertEquals(120, resolved.getDuration("opentmr.backend.cleanup-timeout").toSeconds(), "reference.conf below");
    }

    @Test
    void aBadContextFileIsAUsageError() throws Exception {
        assertEquals(0, run("license", "keygen", "--out", dir.resolve("v").toString()).exit());
        Path context = dir.resolve("bad.json");
        Files.writeString(context, "{ not a context }");
        Run run = run("license", "issue", "--vendor-key", dir.resolve("v/vendor.key").toString(), "--state",
                dir.resolve("state.json").toString(), "--context", context.toString(), "--firm", "1", "--product", "1",
                "--quantity", "1", "--out", dir.resolve("out").toString());
        assertEquals(2, run.exit(), run.err());
    }

    @Test
    void unknownFlagsAndMissingCommandsAreUsageErrors() {
        assertEquals(2, run("backend", "--no-such-flag").exit());
        assertEquals(2, run().exit());
        assertEquals(2, run("client", "status").exit(), "--server is required");
    }

    @Test
    void keygenIssueAndATmrIssueNeedingThreeContexts() throws Exception {
        assertEquals(0, run("license", "keygen", "--out", dir.resolve("v").toString()).exit());
        assertEquals(1, run("license", "keygen", "--out", dir.resolve("v").toString()).exit(), "no overwrite");
        assertEquals(0, run("license", "keygen", "--out", dir.resolve("v").toString(), "--if-missing").exit());
        Path context = dir.resolve("c.json");
        Files.write(context, io.opentmr.license.ContainerContext.of(new io.opentmr.protocol.Serial(129, 5), 7,
                java.util.Map.of(), io.opentmr.license.Ed25519.raw(io.opentmr.license.Ed25519.generate().getPublic()))
                .toJson());
        Run tmr = run("license", "issue", "--vendor-key", dir.resolve("v/vendor.key").toString(), "--state",
                dir.resolve("state.json").toString(), "--context", context.toString(), "--firm", "6000010",
                "--product", "1", "--quantity", "1", "--tmr", "--out", dir.resolve("out").toString());
        assertEquals(2, tmr.exit());
        Run one = run("license", "issue", "--vendor-key", dir.resolve("v/vendor.key").toString(), "--state",
                dir.resolve("state.json").toString(), "--context", context.toString(), "--firm", "6000010",
                "--product", "1", "--quantity", "1", "--usage-period", "P7D", "--expires", "2030-01-01",
                "--out", dir.resolve("out").toString());
        assertEquals(0, one.exit(), one.err());
        assertTrue(Files.exists(dir.resolve("out/129-5_6000010_1.json")));
    }
}
