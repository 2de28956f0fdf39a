package io.opentmr.tracking;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The usage report's rules on small logs written here (the node test runs it over logs the servers wrote):
 * seats by access mode, peaks across midnight, duplicates, gzip, day bounds and bad lines.
 */
class UsageReportTest {

    @TempDir
    Path dir;

    private static String access(String time, long handle, String mode, String user, String address) {
        return TrackingLine.of(java.time.Instant.parse(time), "access", "131-1", Map.of("item", "6000010:42#1",
                "handle", handle, "mode", mode, "owner", Map.of("host", "ws-" + user, "user", user, "pid", 1,
                        "session", 2, "address", address)));
    }

    private static String release(String time, long handle) {
        return TrackingLine.of(java.time.Instant.parse(time), "release", "131-1", Map.of("item", "6000010:42#1",
                "handle", handle));
    }

    private static String denial(String time, int error) {
        return TrackingLine.of(java.time.Instant.parse(time), "denial", "131-1", Map.of("item", "6000010:42#1",
                "error", error, "request", "ACCESS 6000010:42"));
    }

    private Path write(String name, List<String> lines) throws Exception {
        Path file = dir.resolve(name);
        Files.write(file, lines, StandardCharsets.UTF_8);
        return file;
    }

    private static String event(String time, String event, long handle) {
        return TrackingLine.of(java.time.Instant.parse(time), event, "131-1", Map.of("item", "6000010:42#1",
                "handle", handle));
    }

    @Test
    void aNodesBorrowedSeatIsHeldUntilItsReturnOrExpiry() throws Exception {
        Path log = write("tracking.log", List.of(
                access("2027-03-01T10:00:00Z", 1, "USERLIMIT", "alice", "10.0.0.1"),
                event("2027-03-01T10:00:01Z", "borrow", 1),
                access("2027-03-01T10:01:00Z", 2, "USERLIMIT", "bob", "10.0.0.2"),
                event("2027-03-01T10:02:00Z", "return", 1),
                access("2027-03-01T10:04:00Z", 3, "USERLIMIT", "carol", "10.0.0.3"),
                event("2027-03-01T10:04:01Z", "borrow", 3),
                release("2027-03-01T10:05:00Z", 2),
                event("2027-03-01T11:00:00Z", "borrow-expired", 3),
                access("2027-03-02T10:00:00Z", 4, "USERLIMIT", "dave", "10.0.0.4")));
        UsageReport report = UsageReport.read(List.of(log), null, null, ZoneOffset.UTC, 2);
        assertEquals(2, report.rows().size(), report.toTable());
        assertEquals(2, report.rows().get(0).peakSeats(), "bob's seat and one borrowed: alice's was returned before carol's");
        assertEquals(1, report.rows().get(1).peakSeats(), "the expired borrow no longer held at midnight");
        assertEquals(0, report.malformed());
    }

    @Test
    void peakSeatsFollowTheModesAndCarryOverMidnight() throws Exception {
        Path log = write("tracking.log", List.of(
                access("2027-03-01T10:00:00Z", 1, "USERLIMIT", "alice", "10.0.0.1"),
                access("2027-03-01T10:01:00Z", 2, "STATIONSHARE", "bob", "10.0.0.2"),
                access("2027-03-01T10:02:00Z", 3, "STATIONSHARE", "bob", "10.0.0.2"),
                access("2027-03-01T10:03:00Z", 4, "NOUSERLIMIT", "carol", "10.0.0.3"),
                denial("2027-03-01T10:04:00Z", 212),
                denial("2027-03-01T10:05:00Z", 212),
                denial("2027-03-01T10:06:00Z", 130),
                release("2027-03-01T11:00:00Z", 2),
                release("2027-03-01T11:00:01Z", 3),
                release("2027-03-02T09:00:00Z", 1)));
        UsageReport report = UsageReport.read(List.of(log), null, null, ZoneOffset.UTC, 2);
        assertEquals(2, report.rows().size(), report.toTable());
        UsageReport.Row first = report.rows().get(0);
        assertEquals(LocalDate.parse("2027-03-01"), first.day());
        assertEquals("6000010:42#1", first.license());
        assertEquals("131-1", first.container());
        // alice's seat, and one for bob's host however many handles it holds; carol's NOUSERLIMIT takes none.
        assertEquals(2, first.peakSeats());
        assertEquals(4, first.accesses());
        assertEquals(Map.of(212, 2L, 130, 1L), first.denials());
        assertEquals(List.of(new UsageReport.UserCount("bob@ws-bob", 2), new UsageReport.UserCount("alice@ws-alice", 1)),
                first.topUsers());
        UsageReport.Row second = report.rows().get(1);
        assertEquals(1, second.peakSeats(), "alice's handle was still open at midnight");
        assertEquals(0, second.accesses());
        assertEquals(0, report.malformed());
    }

    @Test
    void malformedLinesAreCountedAndNamedAndTheRestIsReported() throws Exception {
        Path log = write("tracking.log", List.of(
                access("2027-03-01T10:00:00Z", 1, "USERLIMIT", "alice", "10.0.0.1"),
                "this is not json",
                "{\"event\":\"access\"}",
                "{\"time\":\"yesterday\",\"event\":\"access\",\"handle\":1}",
                "[1,2]",
                "{\"time\":\"2027-03-01T10:00:00Z\",\"event\":\"access\",\"container\":\"131-1\"}",
                "{\"time\":\"2027-03-01T10:00:00Z\",\"event\":\"lease\",\"container\":\"131-1\",\"epoch\":3}",
                "",
                access("2027-03-01T10:00:01Z", 2, "USERLIMIT", "alice", "10.0.0.1")));
        UsageReport report = UsageReport.read(List.of(log), null, null, ZoneOffset.UTC, 3);
        assertEquals(5, report.malformed(), report.problems().toString());
        assertEquals(2, report.problems().get(0).line());
        assertEquals("not JSON", report.problems().get(0).what());
        assertEquals(9, report.lines());
        assertEquals(2, report.rows().get(0).accesses());
        JsonNode json = TrackingLine.json().readTree(report.toJson());
        assertEquals(5, json.get("malformed").asInt());
        assertEquals(5, json.get("problems").size());
    }

    @Test
    void gzipFilesAndDuplicateLinesAcrossFilesCountOnce() throws Exception {
        String line = access("2027-03-01T10:00:00Z", 7, "USERLIMIT", "alice", "10.0.0.1");
        Path rotated = dir.resolve("tracking.2027-03-01.log.gz");
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(rotated))) {
            out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        }
        // The same access written again after a restart (recovered), then its release.
        Path current = write("tracking.log", List.of(line.replace("}}", "},\"recovered\":true}"),
                release("2027-03-02T10:00:00Z", 7)));
        UsageReport report = UsageReport.read(TrackingFiles.inDirectory(dir), null, null, ZoneOffset.UTC, 3);
        assertEquals(1, report.duplicates());
        assertEquals(1, report.rows().get(0).accesses());
        assertEquals(1, report.rows().get(0).peakSeats());
        assertEquals(List.of(rotated, current), TrackingFiles.inDirectory(dir));
    }

    @Test
    void fromAndToBoundTheDaysButEarlierLinesStillOpenHandles() throws Exception {
        Path log = write("tracking.log", List.of(
                access("2027-03-01T10:00:00Z", 1, "USERLIMIT", "alice", "10.0.0.1"),
                access("2027-03-02T10:00:00Z", 2, "USERLIMIT", "bob", "10.0.0.2"),
                access("2027-03-03T10:00:00Z", 3, "USERLIMIT", "carol", "10.0.0.3")));
        UsageReport report = UsageReport.read(List.of(log), LocalDate.parse("2027-03-02"),
                LocalDate.parse("2027-03-02"), ZoneOffset.UTC, 3);
        assertEquals(1, report.rows().size());
        assertEquals(2, report.rows().get(0).peakSeats(), "alice's handle of the day before counts");
        assertEquals(1, report.rows().get(0).accesses());
    }

    @Test
    void theBackendsDenialNamesItsLicenseByTheRequestAndCsvQuotes() throws Exception {
        Path log = write("tracking.log", List.of(
                "{\"time\":\"2027-03-01T10:00:00Z\",\"event\":\"denial\",\"container\":\"128-5\",\"error\":231,"
                        + "\"text\":\"no\",\"request\":\"ACCESS 6000010:9\",\"owner\":{\"host\":\"a,b\",\"user\":\"x\","
                        + "\"pid\":1,\"session\":2}}",
                "{\"time\":\"2027-03-01T10:00:00Z\",\"event\":\"access\",\"container\":\"128-5\",\"handle\":1,"
                        + "\"item\":\"6000010:9#0\",\"mode\":\"USERLIMIT\",\"owner\":{\"host\":\"a,b\",\"user\":\"x\","
                        + "\"pid\":1,\"session\":2}}"));
        UsageReport report = UsageReport.read(List.of(log), null, null, ZoneOffset.UTC, 3);
        assertEquals(1, report.rows().size(), report.toTable());
        assertEquals("6000010:9", report.rows().get(0).license());
        assertEquals(Map.of(231, 1L), report.rows().get(0).denials());
        String csv = report.toCsv();
        assertTrue(csv.startsWith("day,container,license,peak_seats,accesses,denials,top_users\n"), csv);
        assertTrue(csv.contains("2027-03-01,128-5,6000010:9,1,1,231=1,\"x@a,b=1\""), csv);
    }
}
