package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What {@code tmr bench --failover} reads from a demo's demo.json, and how it sums its rounds up. */
class FailoverBenchTest {

    @TempDir
    Path dir;

    private static final List<String> COMMAND = List.of("java", "-jar", "opentmr.jar", "node", "--name", "node-a");

    @Test
    void theTwinsNodesComeWithTheCommandThatStartsThemAgain() throws Exception {
        DemoFiles.writeManifest(dir, List.of(
                new DemoFiles.Component("backend-1", "backend", "127.0.1.1:22350", null, 11, dir.resolve("b.log"),
                        List.of("java", "backend")),
                new DemoFiles.Component("node-a", "active", "127.0.2.1:22350", null, 12, dir.resolve("a.log"), COMMAND),
                new DemoFiles.Component("node-b", "standby", "127.0.2.2:22350", null, 13, dir.resolve("b2.log"),
                        List.of("java", "-jar", "opentmr.jar", "node", "--name", "node-b"))), Map.of());
        List<FailoverBench.Node> nodes = FailoverBench.nodes(dir);
        assertEquals(List.of("node-a", "node-b"), nodes.stream().map(n -> n.name).toList(), "the backends are not nodes");
        FailoverBench.Node a = nodes.get(0);
        assertEquals(COMMAND, a.command);
        assertEquals(12, a.pid);
        assertEquals(dir.resolve("a.log"), a.log);
        assertFalse(a.address.isUnresolved(), "resolved, so that a HELLO probe can connect to it");
        assertEquals(22350, a.address.getPort());
    }

    @Test
    void aSingleNodeOrADemoWithoutCommandsIsRefusedSayingWhy() throws Exception {
        DemoFiles.writeManifest(dir, List.of(
                new DemoFiles.Component("node-a", "active", "127.0.2.1:22350", null, 12, dir.resolve("a.log"),
                        COMMAND)), Map.of());
        IllegalArgumentException single = assertThrows(IllegalArgumentException.class, () -> FailoverBench.nodes(dir));
        assertTrue(single.getMessage().contains("needs the twin"), single.getMessage());

        DemoFiles.writeManifest(dir, List.of(
                new DemoFiles.Component("node-a", "active", "127.0.2.1:22350", 12, dir.resolve("a.log")),
                new DemoFiles.Component("node-b", "standby", "127.0.2.2:22350", 13, dir.resolve("b.log"))), Map.of());
        IllegalArgumentException old = assertThrows(IllegalArgumentException.class, () -> FailoverBench.nodes(dir));
        assertTrue(old.getMessage().contains("no command for node-a"), old.getMessage());
    }

    @Test
    void theNextRoundWaitsUntilTheActiveSaysItsStandbyHasEveryRecord() throws Exception {
        // The standby answers as such; the active reports its standby 40 records behind twice, then in sync.
        AtomicInteger asked = new AtomicInteger();
        HttpServer standby = status("{\"role\":\"standby\",\"replication\":{\"state\":\"following\"}}", null);
        HttpServer active = status(null, asked);
        try {
            List<FailoverBench.Node> nodes = List.of(node("node-b", standby), node("node-a", active));
            String outcome = FailoverBench.awaitInSync(nodes);
            assertTrue(outcome.startsWith("standby of node-a in sync after"), outcome);
            assertEquals(3, asked.get(), "asked until it said in_sync with 0 records behind");
        } finally {
            standby.stop(0);
            active.stop(0);
        }
    }

    private static FailoverBench.Node node(String name, HttpServer server) {
        return new FailoverBench.Node(name, new InetSocketAddress("127.0.0.1", 22350), 1, COMMAND, Path.of("x.log"),
                "http://127.0.0.1:" + server.getAddress().getPort());
    }

    /** A management port on loopback answering /tmr/status with {@code body}, or (null) catching up in 3 answers. */
    private static HttpServer status(String body, AtomicInteger asked) throws Exception {
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/tmr/status", exchange -> {
            String answer = body != null ? body : asked.incrementAndGet() < 3
                    ? "{\"role\":\"active\",\"replication\":{\"state\":\"in_sync\",\"lagRecords\":40}}"
                    : "{\"role\":\"active\",\"replication\":{\"state\":\"in_sync\",\"lagRecords\":0}}";
            byte[] bytes = answer.getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, bytes.length);
            exchange.getResponseBody().write(bytes);
            exchange.close();
        });
        server.start();
        return server;
    }

    @Test
    void theJsonSaysWhyEachHeldHandleCountsAsLost() {
        // 3 refused on RESUME (106), 5 not checked within the check's bound (-1), 2 never opened (231).
        HeldHandles.Outcome held = new HeldHandles.Outcome(100, 98, Map.of(231, 2L), 8, Map.of(106, 3L, -1, 5L));
        FailoverBench.Result result = new FailoverBench.Result(List.of(900L, 1_500L), 40, Map.of(), 1_700, held,
                List.of("node-a pid 7"));
        Map<String, Object> fields = BenchCommand.failoverFields(2, 4, result);
        assertEquals(10, fields.get("heldLost"), "found gone or not checked, and never opened");
        assertEquals(Map.of("106", 3L, "-1", 5L), fields.get("heldLostByCode"));
        assertEquals(2, fields.get("heldNotOpened"));
        assertEquals(Map.of("231", 2L), fields.get("heldOpenErrorsByCode"));
        assertEquals(1_500L, fields.get("takeoverP95Ms"));
    }

    @Test
    void percentilesAreNearestRankOverTheRoundsThatRecovered() {
        List<Long> rounds = List.of(900L, -1L, 1_200L, 2_500L, 1_000L);
        assertEquals(1_000, FailoverBench.percentile(rounds, 50));
        assertEquals(2_500, FailoverBench.percentile(rounds, 95));
        assertEquals(2_500, FailoverBench.percentile(rounds, 100));
        assertEquals(-1, FailoverBench.percentile(List.of(-1L), 50), "no round recovered: no figure");
    }
}
