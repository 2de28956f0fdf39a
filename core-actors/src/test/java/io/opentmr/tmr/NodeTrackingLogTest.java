package io.opentmr.tmr;

import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.fasterxml.jackson.databind.JsonNode;
import io.opentmr.backend.TrackingLog;
import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tracking.TrackingLine;
import io.opentmr.tracking.UsageReport;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * The node's tracking log over three in-JVM backends: what each decision writes, the usage report over the file
 * the node wrote, and a restart (on the node's own journal) that neither loses nor repeats a journaled event's line.
 */
@Timeout(120)
@ExtendWith(NoLeaks.class)
class NodeTrackingLogTest {

    private static final long ONE_SEAT = 42;
    private static final long THREE_SEATS = 43;

    @TempDir
    Path dir;

    private TmrTestGroup group;
    private Map<String, Object> nodeSettings;

    @BeforeEach
    void start() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(ONE_SEAT, 1));
        group.issueTmr(TmrTestGroup.seats(THREE_SEATS, 3));
        // The node's own journal and a fixed port, so that a restarted node comes back on both.
        nodeSettings = new HashMap<>(TmrTestGroup.restartableNode(dir.resolve("node/journal")));
        nodeSettings.putAll(Map.of("opentmr.node.cleanup-timeout", "2s", "opentmr.node.keep-alive-interval", "500ms",
                "opentmr.node.tracking.zone", "UTC"));
        startNode();
    }

    private void startNode() throws InterruptedException {
        group.startNode(nodeSettings);
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            Await.until("both licenses listed", () -> client.listContainers().get(0).products().size() == 2);
        }
    }

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    private Path logFile() {
        return dir.resolve("node/tracking.log");
    }

    /** Every line of the node's log, once what is queued is written. */
    private List<JsonNode> lines() throws Exception {
        group.node().trackingLog().written().get(10, TimeUnit.SECONDS);
        List<JsonNode> lines = new ArrayList<>();
        for (String line : Files.readAllLines(logFile())) {
            lines.add(TrackingLine.json().readTree(line));
        }
        return lines;
    }

    private static List<JsonNode> matching(List<JsonNode> lines, Predicate<JsonNode> which) {
        return lines.stream().filter(which).toList();
    }

    private static Predicate<JsonNode> event(String event, long handle) {
        return line -> line.path("event").asText().equals(event) && line.path("handle").asLong() == handle;
    }

    @Test
    void everyDecisionIsALineWithTheLicenseItsOwnerAndTheBackends() throws Exception {
        String serial = group.node().virtualSerial().toString();
        // The release below is freed on every backend: each copy re-synced (a copy still re-syncing is not written).
        group.awaitAllCopiesUsable(ONE_SEAT);
        long released;
        try (TmrClient client = TmrClient.connect(group.nodeAddress());
             TmrClient other = TmrClient.connect(group.nodeAddress())) {
            try (LicenseHandle handle = client.access(FIRM, ONE_SEAT)) {
                released = handle.handleId();
                CmException full = assertThrows(CmException.class, () -> other.access(FIRM, ONE_SEAT));
                assertEquals(CmError.NO_MORE_LICENSES.code(), full.code());
            }
            CmException unknown = assertThrows(CmException.class, () -> client.access(FIRM, 99));
            assertEquals(CmError.ENTRY_NOT_FOUND.code(), unknown.code());
        }
        long reclaimed;
        try (RawConnection raw = new RawConnection(group.nodeAddress())) {
            raw.hello();
            Message granted = raw.request(new Message.Access(FIRM, ONE_SEAT, 0, AccessMode.USERLIMIT));
            reclaimed = assertInstanceOf(Message.AccessOk.class, granted, granted.toString()).handleId();
        }
        Await.until("the vanished client's handle reclaimed", () -> !Await.unchecked(() -> matching(lines(),
                event("reclaim", reclaimed))).isEmpty());
        List<JsonNode> lines = lines();
        assertTrue(lines.stream().allMatch(l -> l.path("container").asText().equals(serial)), lines.toString());

        JsonNode lease = matching(lines, l -> l.path("event").asText().equals("lease")).get(0);
        assertEquals("gained", lease.path("state").asText());
        assertTrue(lease.path("epoch").asLong() >= 1, lease.toString());
        assertEquals(TmrTestGroup.NODE_NAME, lease.path("node").asText());

        JsonNode access = matching(lines, event("access", released)).get(0);
        assertEquals(FIRM, access.path("firm").asLong());
        assertEquals(ONE_SEAT, access.path("product").asLong());
        assertTrue(access.path("tmrId").asLong() > 0, access.toString());
        assertEquals("USERLIMIT", access.path("mode").asText());
        assertEquals("127.0.0.1", access.path("owner").path("address").asText());
        assertEquals(System.getProperty("user.name"), access.path("owner").path("user").asText());
        assertEquals(ProcessHandle.current().pid(), access.path("owner").path("pid").asLong());
        JsonNode acknowledged = access.path("acknowledged");
        assertTrue(acknowledged.size() >= 2, "two backends acknowledged before the grant: " + access);
        assertTrue(acknowledged.get(0).asText().startsWith("127.0.1."), access.toString());

        JsonNode release = matching(lines, event("release", released)).get(0);
        assertEquals("released by its client", release.path("reason").asText());
        assertEquals(3, release.path("freedOn").size(), release.toString());
        assertEquals(access.path("item").asText(), release.path("item").asText());
        JsonNode reclaim = matching(lines, event("reclaim", reclaimed)).get(0);
        assertTrue(reclaim.path("reason").asText().startsWith("reclaimed after"), reclaim.toString());

        JsonNode noSeat = matching(lines, l -> l.path("event").asText().equals("denial")
                && l.path("error").asInt() == CmError.NO_MORE_LICENSES.code()).get(0);
        assertEquals(access.path("tmrId").asLong(), noSeat.path("tmrId").asLong(), "the license that refused");
        assertEquals("ACCESS " + FIRM + ":" + ONE_SEAT, noSeat.path("request").asText());
        JsonNode noLicense = matching(lines, l -> l.path("event").asText().equals("denial")
                && l.path("error").asInt() == CmError.ENTRY_NOT_FOUND.code()).get(0);
        assertEquals(FIRM + ":99", noLicense.path("item").asText());
        assertFalse(noLicense.has("tmrId"), "no license decided: " + noLicense);

        // The report over the file the node wrote.
        UsageReport report = UsageReport.read(List.of(logFile()), null, null, ZoneOffset.UTC, 3);
        assertEquals(0, report.malformed(), report.problems().toString());
        UsageReport.Row row = report.rows().stream().filter(r -> r.license().equals(access.path("item").asText()))
                .findFirst().orElseThrow(() -> new AssertionError(report.toTable()));
        assertEquals(2, row.accesses(), report.toTable());
        assertEquals(1, row.peakSeats(), report.toTable());
        assertEquals(Map.of(CmError.NO_MORE_LICENSES.code(), 1L), row.denials());
        assertTrue(report.rows().stream().anyMatch(r -> r.license().equals(FIRM + ":99")
                && r.denials().equals(Map.of(CmError.ENTRY_NOT_FOUND.code(), 1L))), report.toTable());
    }

    @Test
    void aRestartNeitherLosesNorRepeatsTheLineOfAJournaledEvent() throws Exception {
        long kept;
        long released;
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            LicenseHandle first = client.access(FIRM, THREE_SEATS);
            LicenseHandle second = client.access(FIRM, THREE_SEATS);
            kept = first.handleId();
            released = second.handleId();
            second.close();
            Map<String, Long> before = counts(lines(), kept, released);
            assertEquals(Map.of("access|" + kept, 1L, "access|" + released, 1L, "release|" + released, 1L), before);

            group.stopNode();
            startNode();
            assertEquals(before, counts(lines(), kept, released), "a clean restart writes nothing again");

            // As if the node had been killed with these lines still queued: they are gone from the file.
            group.stopNode();
            List<String> text = new ArrayList<>(Files.readAllLines(logFile()));
            int all = text.size();
            text.removeIf(line -> line.contains("\"event\":\"release\"") || line.contains("\"handle\":" + kept + ","));
            assertEquals(all - 2, text.size(), "the access of the kept handle and the release removed");
            Files.write(logFile(), text);
            startNode();
            List<JsonNode> after = lines();
            assertEquals(before, counts(after, kept, released), "each journaled event has its line once again");
            assertTrue(matching(after, event("access", kept)).get(0).path("recovered").asBoolean());
            assertTrue(matching(after, event("release", released)).get(0).path("recovered").asBoolean());
            assertFalse(matching(after, event("access", released)).get(0).has("recovered"));
            assertEquals(System.getProperty("user.name"),
                    matching(after, event("release", released)).get(0).path("owner").path("user").asText(),
                    "the release's owner, from the journaled grant");

            // The kept handle lives on; its release after the restarts is tracked as usual.
            first.close();
            Await.until("the release after the restart tracked", () -> Await.unchecked(() ->
                    counts(lines(), kept, released).get("release|" + kept)) != null);
            assertEquals(1, counts(lines(), kept, released).get("release|" + kept));
        }
    }

    @Test
    void theReportReadsABackendsLogAndTheNodesTogetherGzipIncluded() throws Exception {
        ListAppender<ILoggingEvent> backendLines = new ListAppender<>();
        backendLines.start();
        Logger trackingLogger = (Logger) LoggerFactory.getLogger(TrackingLog.LOGGER);
        trackingLogger.addAppender(backendLines);
        try {
            group.issueOrdinary(0, new io.opentmr.license.LicenseIssuer.Request(FIRM, 77, 1, false, null, null, null,
                    null, null, 0xFF, "plain"));
            try (TmrClient direct = TmrClient.connect(group.backendAddress(0));
                 TmrClient node = TmrClient.connect(group.nodeAddress())) {
                try (LicenseHandle held = direct.access(FIRM, 77)) {
                    assertTrue(held.isOpen());
                    assertEquals(CmError.NO_MORE_LICENSES.code(),
                            assertThrows(CmException.class, () -> direct.access(FIRM, 77)).code());
                }
                node.access(FIRM, THREE_SEATS).close();
            }
        } finally {
            trackingLogger.detachAppender(backendLines);
        }
        // The backend's lines as its appender writes them, gzipped as its rotation leaves them.
        Path backendLog = dir.resolve("backend-tracking.2027-01-01.log.gz");
        try (java.io.Writer out = new java.io.OutputStreamWriter(new java.util.zip.GZIPOutputStream(
                Files.newOutputStream(backendLog)), java.nio.charset.StandardCharsets.UTF_8)) {
            for (ILoggingEvent event : List.copyOf(backendLines.list)) {
                out.write(event.getFormattedMessage() + "\n");
            }
        }
        group.node().trackingLog().written().get(10, TimeUnit.SECONDS);
        UsageReport report = UsageReport.read(List.of(backendLog, logFile()), null, null, ZoneOffset.UTC, 3);
        assertEquals(0, report.malformed(), report.problems().toString());
        UsageReport.Row direct = report.rows().stream().filter(r -> r.license().equals(FIRM + ":77")).findFirst()
                .orElseThrow(() -> new AssertionError(report.toTable()));
        assertTrue(direct.container().startsWith("129-"), direct.toString());
        assertEquals(1, direct.accesses());
        assertEquals(1, direct.peakSeats());
        assertEquals(Map.of(CmError.NO_MORE_LICENSES.code(), 1L), direct.denials());
        assertEquals(System.getProperty("user.name"), direct.topUsers().get(0).user().split("@")[0]);
        UsageReport.Row tmr = report.rows().stream().filter(r -> r.license().startsWith(FIRM + ":" + THREE_SEATS + "#"))
                .findFirst().orElseThrow(() -> new AssertionError(report.toTable()));
        assertEquals(group.node().virtualSerial().toString(), tmr.container());
        assertEquals(1, tmr.accesses());
    }

    private static Map<String, Long> counts(List<JsonNode> lines, long... handles) throws IOException {
        Map<String, Long> counts = new HashMap<>();
        for (JsonNode line : lines) {
            for (long handle : handles) {
                if (line.path("handle").asLong() == handle) {
                    counts.merge(line.path("event").asText() + "|" + handle, 1L, Long::sum);
                }
            }
        }
        return counts;
    }
}
