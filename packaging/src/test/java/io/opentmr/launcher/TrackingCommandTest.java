package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.core.Appender;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.opentmr.backend.TrackingLog;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.tracking.NodeTrackingLog;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * {@code tmr tracking report} over a node's log written by the node's tracking code and a backend's written through
 * the launcher's appender: the formats, the exit codes, and a malformed line reported rather than fatal.
 */
@Timeout(60)
class TrackingCommandTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final LicenseKey KEY = new LicenseKey(6_000_010, 42, 1);

    @TempDir
    Path dir;

    private record Run(int exit, String out, String err) {
    }

    private static synchronized Run tmr(String... args) {
        PrintStream realOut = System.out;
        PrintStream realErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream errStream = new ByteArrayOutputStream();
        StringWriter err = new StringWriter();
        try (PrintStream capture = new PrintStream(out, true, StandardCharsets.UTF_8);
             PrintStream captureErr = new PrintStream(errStream, true, StandardCharsets.UTF_8)) {
            System.setOut(capture);
            System.setErr(captureErr);
            var commandLine = Tmr.commandLine();
            commandLine.setErr(new PrintWriter(err, true));
            int exit = commandLine.execute(args);
            return new Run(exit, out.toString(StandardCharsets.UTF_8), err + errStream.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(realOut);
            System.setErr(realErr);
        }
    }

    @BeforeEach
    void writeLogs() throws Exception {
        Path node = dir.resolve("node");
        Files.createDirectories(node);
        try (NodeTrackingLog log = NodeTrackingLog.open(node, Serial.parse("131-5"), List.of("b1:1", "b2:1", "b3:1"),
                "node-a", Clock.systemUTC(), ZoneOffset.UTC)) {
            BitSet two = new BitSet();
            two.set(0, 2);
            long at = Instant.parse("2027-05-04T08:00:00Z").toEpochMilli();
            log.access(KEY, 11, AccessMode.USERLIMIT, new NodeTrackingLog.Owner("10.0.0.1", "ws-1", "ann", 1, 2), two,
                    at);
            log.access(KEY, 12, AccessMode.USERLIMIT, new NodeTrackingLog.Owner("10.0.0.2", "ws-2", "bob", 1, 3), two,
                    at + 1000);
            log.denial(KEY, 6_000_010, 42, 212, "no more", "ACCESS 6000010:42",
                    new NodeTrackingLog.Owner("10.0.0.3", "ws-3", "cid", 1, 4), at + 2000);
            log.ended(KEY, 11, "release", "released by its client", new NodeTrackingLog.Owner("10.0.0.1", "ws-1",
                    "ann", 1, 2), two, at + 3000);
            log.written().get(10, TimeUnit.SECONDS);
        }
        Path backend = dir.resolve("backend");
        Files.createDirectories(backend);
        TrackingLogFile.install(backend);
        Logger logger = (Logger) LoggerFactory.getLogger(TrackingLog.LOGGER);
        try {
            new TrackingLog(Serial.parse("129-9")).denial(231, "host not allowed", "HELLO",
                    new HandleOwner("ws-9", "eve", 7, 8), Instant.parse("2027-05-04T09:00:00Z"));
        } finally {
            Appender<?> appender = logger.getAppender("tracking");
            logger.detachAppender("tracking");
            appender.stop();
            ((LoggerContext) LoggerFactory.getILoggerFactory()).getLogger(TrackingLog.LOGGER).setAdditive(false);
        }
    }

    @Test
    void aReportOfBothServersInEachFormat() throws Exception {
        Run json = tmr("tracking", "report", "--log", dir.resolve("node").toString(), dir.resolve("backend").toString(),
                "--zone", "UTC", "--json");
        assertEquals(0, json.exit(), json.err());
        JsonNode rows = JSON.readTree(json.out()).get("rows");
        assertEquals(2, rows.size(), json.out());
        JsonNode tmr = rows.get(1);
        assertEquals("131-5", tmr.get("container").asText());
        assertEquals("6000010:42#1", tmr.get("license").asText());
        assertEquals(2, tmr.get("peakSeats").asInt());
        assertEquals(2, tmr.get("accesses").asInt());
        assertEquals(1, tmr.get("denials").get("212").asInt());
        assertEquals("ann@ws-1", tmr.get("topUsers").get(0).get("user").asText());
        JsonNode hello = rows.get(0);
        assertEquals("129-9", hello.get("container").asText());
        assertEquals("-", hello.get("license").asText());
        assertEquals(1, hello.get("denials").get("231").asInt());

        Run csv = tmr("tracking", "report", "--log", dir.resolve("node/tracking.log").toString(), "--zone", "UTC",
                "--csv");
        assertEquals(0, csv.exit(), csv.err());
        assertEquals("day,container,license,peak_seats,accesses,denials,top_users\n"
                + "2027-05-04,131-5,6000010:42#1,2,2,212=1,ann@ws-1=1;bob@ws-2=1\n", csv.out());

        Run table = tmr("tracking", "report", "--log", dir.resolve("node").toString(), "--zone", "UTC");
        assertEquals(0, table.exit(), table.err());
        assertTrue(table.out().startsWith("DAY"), table.out());
        assertTrue(table.out().contains("ann@ws-1 (1), bob@ws-2 (1)"), table.out());

        Run later = tmr("tracking", "report", "--log", dir.resolve("node").toString(), "--from", "2027-05-05");
        assertEquals(0, later.exit(), later.err());
        assertTrue(later.out().startsWith("No accesses or denials"), later.out());
    }

    @Test
    void aMalformedLineIsReportedWithExitCode1AndTheRestCounted() throws Exception {
        Files.writeString(dir.resolve("node/tracking.log"), "{\"broken\n", StandardOpenOption.APPEND);
        Run run = tmr("tracking", "report", "--log", dir.resolve("node").toString(), "--csv");
        assertEquals(1, run.exit(), run.err());
        assertTrue(run.out().contains("6000010:42#1,2,2"), run.out());
        assertTrue(run.err().contains("1 malformed line(s)") && run.err().contains("tracking.log:5"), run.err());
    }

    @Test
    void badArgumentsAreUsageErrors() {
        assertEquals(2, tmr("tracking", "report", "--log", dir.resolve("nothing-here").toString()).exit());
        assertEquals(2, tmr("tracking", "report", "--log", dir.resolve("node").toString(), "--zone", "Mars/Base")
                .exit());
        assertEquals(2, tmr("tracking", "report", "--log", dir.resolve("node").toString(), "--from", "2027-05-05",
                "--to", "2027-05-01").exit());
        assertEquals(2, tmr("tracking", "report", "--log", dir.resolve("node").toString(), "--json", "--csv").exit());
    }
}
