package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.opentmr.backend.Backend;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The commands a newcomer types, run in-process against a real backend on our journal: license context,
 * issue and import, client access / release / list with their JSON and exit codes, journal verify and
 * dump, and the bench's echo mode.
 */
@Timeout(120)
class CommandLineTest {

    @TempDir
    Path dir;

    private Backend backend;
    private String server;

    private static TmrRun tmr(String... args) {
        return TmrRun.of(args);
    }

    @BeforeEach
    void startBackend() throws Exception {
        assertEquals(0, tmr("license", "keygen", "--out", dir.resolve("vendor").toString()).exit());
        Map<String, Object> flags = new HashMap<>();
        flags.put("opentmr.backend.address", "127.0.0.1");
        flags.put("opentmr.backend.port", 0);
        flags.put("opentmr.backend.data-dir", dir.resolve("backend").toString());
        flags.put("opentmr.backend.vendor-keys", List.of(dir.resolve("vendor/vendor.pub").toString()));
        flags.put("opentmr.backend.cm-act-id", 7);
        backend = Backend.start(LauncherConfig.resolve(flags, null, "opentmr.backend.data-dir"));
        server = "127.0.0.1:" + backend.address().getPort();
    }

    @AfterEach
    void stopBackend() {
        backend.close();
    }

    @Test
    void theNewcomerPathThroughTheCommands() throws Exception {
        Path context = dir.resolve("backend.ctx");
        assertEquals(0, tmr("license", "context", "--server", server, "--out", context.toString()).exit());
        TmrRun issued = tmr("license", "issue", "--vendor-key", dir.resolve("vendor/vendor.key").toString(), "--state",
                dir.resolve("vendor/state.json").toString(), "--context", context.toString(), "--firm", "6000010",
                "--product", "42", "--quantity", "2", "--text", "CAD seat", "--out", dir.resolve("lic").toString(),
                "--json");
        assertEquals(0, issued.exit(), issued.err());
        String file = issued.json().get("files").get(0).asText();
        assertEquals(0, tmr("license", "import", "--server", server, file).exit());
        TmrRun replay = tmr("license", "import", "--server", server, "--json", file);
        assertEquals(1, replay.exit());
        assertEquals(231, replay.json().get("error").asInt());

        TmrRun status = tmr("client", "--server", server, "status", "--json");
        assertEquals("BACKEND", status.json().get("kind").asText());
        assertEquals(server, status.json().get("address").asText(), "the address of the server that answered");

        // access without --hold releases at once: the seats are free again afterwards.
        TmrRun access = tmr("client", "--server", server, "--json", "access", "--firm", "6000010", "--product", "42");
        assertEquals(0, access.exit(), access.err());
        assertTrue(access.json().get("token").asText().matches("[0-9a-f]{64}"));
        TmrRun list = tmr("client", "--server", server, "--json", "list");
        JsonNode product = list.json().get("containers").get(0).get("products").get(0);
        assertEquals(42, product.get("product").asInt());
        assertEquals(0, product.get("inUse").asInt());

        TmrRun missing = tmr("client", "--server", server, "--json", "access", "--firm", "6000010", "--product", "43");
        assertEquals(1, missing.exit());
        assertEquals(200, missing.json().get("error").asInt());
        TmrRun badRelease = tmr("client", "--server", server, "--json", "release", "--handle", "99", "--token",
                "00".repeat(32));
        assertEquals(106, badRelease.json().get("error").asInt());
    }

    /** Issues 6000010:42 (2 seats) for the backend's container and imports it: a journal with a record. */
    private void importLicense() throws Exception {
        Path context = dir.resolve("backend.ctx");
        tmr("license", "context", "--server", server, "--out", context.toString());
        TmrRun issued = tmr("license", "issue", "--vendor-key", dir.resolve("vendor/vendor.key").toString(), "--state",
                dir.resolve("vendor/state.json").toString(), "--context", context.toString(), "--firm", "6000010",
                "--product", "42", "--quantity", "2", "--out", dir.resolve("lic").toString(), "--json");
        tmr("license", "import", "--server", server, issued.json().get("files").get(0).asText());
    }

    @Test
    void journalVerifyAndDumpReadTheBackendsJournal() throws Exception {
        importLicense();

        Path journal = dir.resolve("backend/journal");
        TmrRun verify = tmr("journal", "verify", "--dir", journal.toString(), "--json");
        assertEquals(0, verify.exit(), verify.out());
        assertTrue(verify.json().get("events").asLong() >= 1, verify.out());
        TmrRun dump = tmr("journal", "dump", "--dir", journal.toString());
        assertEquals(0, dump.exit(), dump.err());
        assertTrue(dump.out().contains("LicenseUpdated"), "the license import is in the journal: " + dump.out());
        assertTrue(Files.isRegularFile(dir.resolve("backend/container.json")));
    }

    @Test
    void journalReplayNamesWhatItCannotReplay() throws Exception {
        importLicense();

        TmrRun backendJournal = tmr("journal", "replay", "--dir", dir.resolve("backend/journal").toString());
        assertEquals(1, backendJournal.exit());
        assertTrue(backendJournal.err().contains("is a backend's journal"), backendJournal.err());
        TmrRun dataDir = tmr("journal", "replay", "--dir", dir.resolve("backend").toString());
        assertEquals(1, dataDir.exit());
        assertTrue(dataDir.err().contains("not a journal") && dataDir.err().contains("did you mean "
                + dir.resolve("backend/journal")), dataDir.err());
        TmrRun missing = tmr("journal", "replay", "--dir", dir.resolve("nowhere").toString());
        assertEquals(1, missing.exit());
        assertTrue(missing.err().contains("does not exist"), missing.err());
        TmrRun badTime = tmr("journal", "replay", "--dir", dir.resolve("backend/journal").toString(), "--at", "noon");
        assertEquals(2, badTime.exit(), "bad usage");
        assertTrue(badTime.err().contains("ISO-8601"), badTime.err());

        // A node's journal with no record yet (a node that never learned its group): nothing to show, said so.
        Path fresh = dir.resolve("fresh");
        io.opentmr.persistence.log.SegmentedLog.open(io.opentmr.persistence.log.LogOptions.defaults(fresh)).close();
        TmrRun empty = tmr("journal", "replay", "--dir", fresh.toString(), "--json");
        assertEquals(0, empty.exit(), empty.err());
        assertEquals(0, empty.json().get("licenses").size());
        assertTrue(empty.json().get("notices").toString().contains("no records yet"), empty.out());

        // A record damaged before the tail (its CRC fails, later writes follow): the place, and exit code 1.
        Path damaged = dir.resolve("damaged");
        try (var log = io.opentmr.persistence.log.SegmentedLog.open(
                io.opentmr.persistence.log.LogOptions.defaults(damaged))) {
            for (long seq = 1; seq <= 3; seq++) {
                log.append(List.of(log.encode(List.of(io.opentmr.persistence.log.LogRecord.event(
                        "tmr-license|6000010-42-1", seq, 1000 + seq, "w", 33, "m", "", List.of(), new byte[] {1})))))
                        .get(10, java.util.concurrent.TimeUnit.SECONDS);
            }
        }
        Path segment = damaged.resolve("00000000000000000000.seg");
        byte[] bytes = Files.readAllBytes(segment);
        bytes[40] ^= (byte) 0xFF;
        Files.write(segment, bytes);
        TmrRun corrupt = tmr("journal", "replay", "--dir", damaged.toString());
        assertEquals(1, corrupt.exit());
        assertTrue(corrupt.err().contains("journal damaged") && corrupt.err().contains(segment + " at offset 0")
                && corrupt.err().contains("CRC32C"), corrupt.err());
        assertEquals("", corrupt.out(), "no state is printed from a damaged journal");
        assertEquals(1, tmr("journal", "verify", "--dir", damaged.toString()).exit(), "verify agrees");
    }

    @Test
    void benchEchoPrintsItsFigures() throws Exception {
        TmrRun bench = tmr("bench", "--echo", "--clients", "2", "--duration", "1s", "--warmup", "500ms", "--json");
        assertEquals(0, bench.exit(), bench.err());
        JsonNode figures = bench.json();
        for (String key : List.of("pairs", "pairsPerSecond", "p50Ms", "p99Ms", "p999Ms", "errors", "errorsByCode",
                "maxStallMs", "requestsPerSecond")) {
            assertTrue(figures.has(key), "bench JSON has " + key + ": " + figures);
        }
        assertTrue(figures.get("pairs").asLong() > 0);
        assertEquals(0, figures.get("errors").asLong());
    }

    @Test
    void statusOfANodeThatDoesNotServeIsStandby() throws Exception {
        try (java.net.ServerSocket server = new java.net.ServerSocket(0, 1,
                java.net.InetAddress.getByName("127.0.0.1"))) {
            Thread answering = new Thread(() -> {
                try (java.net.Socket client = server.accept()) {
                    java.io.DataInputStream in = new java.io.DataInputStream(client.getInputStream());
                    in.readFully(new byte[in.readInt()]);
                    io.netty.buffer.ByteBuf reply = io.netty.buffer.Unpooled.buffer();
                    io.opentmr.protocol.FrameEncoder.encode(new io.opentmr.protocol.Frame(1,
                            new io.opentmr.protocol.Message.NotActive("")), reply);
                    client.getOutputStream().write(io.netty.buffer.ByteBufUtil.getBytes(reply));
                    reply.release();
                    client.getOutputStream().flush();
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }, "not-active-server");
            answering.start();
            TmrRun status = tmr("client", "--server", "127.0.0.1:" + server.getLocalPort(), "--timeout", "5s", "--json",
                    "status");
            answering.join(10_000);
            assertEquals(0, status.exit(), status.err());
            assertEquals("TMR_STANDBY", status.json().get("kind").asText(), status.out());
        }
    }
}
