package io.opentmr.management;

import static io.opentmr.management.NodeManagementTest.await;
import static io.opentmr.management.NodeManagementTest.value;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.Config;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.cluster.TwinFixture;
import io.opentmr.cluster.TwinNode;
import io.opentmr.metrics.ServerMetrics;
import io.opentmr.persistence.replication.ReplicationLeader;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.TmrNode;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.pekko.Done;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Management HTTP of a running twin: two {@link TwinNode}s in this JVM over three real backends, each incarnation
 * serving management HTTP on its node's own address and port as {@code tmr node} does. Readiness only on the active,
 * both members on the cluster routes, roles and replication in {@code /tmr/status}, the {@code opentmr_replication_*}
 * metrics (lag back to 0 after writes, promtool-clean, every metric the alert rules read among what a node or backend
 * shows); then the active goes and the standby's readiness, status and metrics follow the take-over. A node
 * restarted in its process serves management again on the same port, its stopping actor system having given it up.
 */
@Timeout(300)
class TwinManagementTest {

    private static final long PRODUCT = 91;

    @TempDir
    static Path keys;
    @TempDir
    Path dir;

    private TmrTestGroup group;
    private TwinFixture twin;
    private final Map<String, Integer> ports = new HashMap<>();
    private final List<TwinNode> nodes = new ArrayList<>();

    @BeforeAll
    static void keys() throws Exception {
        TwinFixture.keys(keys);
    }

    @BeforeEach
    void group() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(PRODUCT, 5));
        twin = new TwinFixture(keys, group, dir);
    }

    @AfterEach
    void close() {
        nodes.forEach(TwinNode::close);
        group.close();
    }

    private String host(String name) {
        return twin.host(name);
    }

    /** A free port on the node's address, kept for all its incarnations (as {@code --management-port} is). */
    private int managementPort(String name) throws IOException {
        Integer port = ports.get(name);
        if (port == null) {
            try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getByName(host(name)))) {
                port = probe.getLocalPort();
            }
            ports.put(name, port);
        }
        return port;
    }

    private HttpProbe http(String name) throws IOException {
        return new HttpProbe("http://" + host(name) + ":" + managementPort(name));
    }

    /** As {@code tmr node} runs a twin node: each incarnation gets management HTTP on the same address and port. */
    private TwinNode start(String name) throws IOException {
        Config config = twin.config(name, host(name), name, Map.of());
        ManagementSettings settings = ManagementFixture.settings(host(name),
                Map.of(ManagementSettings.PATH + ".port", managementPort(name)));
        TwinNode node = TwinNode.start(config, (full, activation) -> {
            TmrNode started = TmrNode.start(settings.pekkoConfig(ManagementSettings.clusterMember(full))
                    .withFallback(full), Clock.systemUTC(), group.connector(name), activation);
            try {
                Management.forNode(started, settings);
            } catch (RuntimeException e) {
                started.close();
                throw e;
            }
            return started;
        });
        nodes.add(node);
        return node;
    }

    private TmrClient client() {
        return TmrClient.connect(TmrClientOptions.builder()
                .addresses(new InetSocketAddress(host("node-a"), 22350), new InetSocketAddress(host("node-b"), 22350))
                .requestTimeout(Duration.ofSeconds(20))
                .build());
    }

    private static JsonNode status(HttpProbe http) throws Exception {
        HttpProbe.Answer answer = http.get("/tmr/status");
        assertEquals(200, answer.status(), answer.body());
        return answer.json();
    }

    private static String scrape(HttpProbe http) throws Exception {
        HttpProbe.Answer answer = http.get("/metrics");
        assertEquals(200, answer.status(), answer.body());
        return answer.body();
    }

    private static double state(String scrape, String state) {
        return value(scrape, "opentmr_replication_state{state=\"" + state + "\"}");
    }

    /** The members pekko-management's cluster routes list as Up. */
    private static Set<String> membersUp(HttpProbe http) throws Exception {
        HttpProbe.Answer answer = http.get("/cluster/members");
        Set<String> up = new HashSet<>();
        if (answer.status() == 200) {
            for (JsonNode member : answer.json().path("members")) {
                if ("Up".equals(member.path("status").asText())) {
                    up.add(member.path("node").asText());
                }
            }
        }
        return up;
    }

    @Test
    void readinessStatusAndReplicationMetricsFollowTheRolesThroughATakeOver() throws Exception {
        TwinNode a = start("node-a");
        HttpProbe httpA = http("node-a");
        await("node-a is ready", () -> httpA.get("/health/ready").status() == 200);
        TwinNode b = start("node-b");
        HttpProbe httpB = http("node-b");
        await("node-b follows node-a's journal in sync",
                () -> a.replication().status() == ReplicationLeader.Status.IN_SYNC);
        await("node-b names node-a as the active node", () -> status(httpB).path("activeAddress").asText()
                .equals(host("node-a") + ":22350"));

        // Readiness: 200 on the active only; pekko-management answers 500 for a failed check. Both are alive.
        assertEquals(200, httpA.get("/health/ready").status());
        assertEquals(500, httpB.get("/health/ready").status());
        assertEquals(200, httpA.get("/health/alive").status());
        assertEquals(200, httpB.get("/health/alive").status());

        // The cluster routes list both members, as each node sees them.
        Set<String> both = Set.of("pekko://" + TmrNode.SYSTEM_NAME + "@" + host("node-a") + ":25520",
                "pekko://" + TmrNode.SYSTEM_NAME + "@" + host("node-b") + ":25520");
        await("node-a's cluster routes list both members Up", () -> membersUp(httpA).equals(both));
        await("node-b's cluster routes list both members Up", () -> membersUp(httpB).equals(both));

        JsonNode active = status(httpA);
        long epoch = active.path("epoch").asLong();
        assertEquals("active", active.path("role").asText(), active.toString());
        assertEquals(a.node().peerGroup().epoch(), epoch, active.toString());
        assertEquals("in_sync", active.path("replication").path("state").asText(), active.toString());
        assertEquals("node-b", active.path("replication").path("standby").path("name").asText(), active.toString());
        assertTrue(active.path("replication").path("standby").path("connected").asBoolean(), active.toString());
        assertEquals(host("node-b") + ":25520", active.path("twin").path("peer").asText(), active.toString());
        assertEquals(3, active.path("backends").path("up").asInt(), active.toString());
        JsonNode standby = status(httpB);
        assertEquals("standby", standby.path("role").asText(), standby.toString());
        assertFalse(standby.path("serving").asBoolean());
        assertEquals("following", standby.path("replication").path("state").asText(), standby.toString());
        assertEquals(epoch, standby.path("epoch").asLong(), "the standby follows the active's epoch: " + standby);
        assertEquals(epoch, standby.path("replication").path("following").path("epoch").asLong(), standby.toString());
        assertTrue(standby.path("replication").path("standby").isNull(), standby.toString());
        assertTrue(standby.path("replication").path("lagSeconds").isNull(), "lag is the active's to tell");
        assertEquals(3, standby.path("backends").path("up").asInt(), standby.toString());

        try (TmrClient client = client()) {
            List<LicenseHandle> handles = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                handles.add(client.access(TmrTestGroup.FIRM, PRODUCT));
            }
            handles.remove(0).close();
            // Each write waited for both logs: the lag returns to 0 and the two logs end at the same position.
            await("the active's lag is back to 0", () -> {
                String text = scrape(httpA);
                return value(text, "opentmr_replication_lag_records") == 0
                        && value(text, "opentmr_replication_lag_seconds") == 0;
            });
            String scrapeA = scrape(httpA);
            double position = value(scrapeA, "opentmr_replication_log_position");
            assertTrue(position > 0, scrapeA);
            assertEquals(position, value(scrapeA, "opentmr_replication_acknowledged_position"), scrapeA);
            assertEquals(1.0, value(scrapeA, "opentmr_replication_standby_up"), scrapeA);
            assertEquals(1.0, state(scrapeA, "in_sync"), scrapeA);
            assertEquals(0.0, state(scrapeA, "degraded"), scrapeA);
            assertEquals(0.0, value(scrapeA, "opentmr_replication_degradations_total"), scrapeA);
            Promtool.checkMetrics(scrapeA);
            // Every metric the shipped alert rules read is one that a twin's active node or a backend really shows.
            String backendScrape = text(group.backend(0).metrics());
            Set<String> used = alertMetrics();
            assertTrue(used.containsAll(Set.of("opentmr_replication_standby_up", "opentmr_replication_lag_seconds")),
                    "the replication alerts: " + used);
            for (String metric : used) {
                assertTrue(hasSample(scrapeA, metric) || hasSample(backendScrape, metric),
                        "alerts.yml reads " + metric + ", which no node or backend shows");
            }
            String scrapeB = scrape(httpB);
            assertEquals(1.0, state(scrapeB, "following"), scrapeB);
            assertEquals(position, value(scrapeB, "opentmr_replication_log_position"), scrapeB);
            // What only the active can tell has no sample on the standby, so the alerts on it stay silent there.
            assertFalse(scrapeB.contains("\nopentmr_replication_standby_up "), scrapeB);
            assertFalse(scrapeB.contains("\nopentmr_replication_lag_seconds "), scrapeB);
            Promtool.checkMetrics(scrapeB);

            // node-a goes away as a crash looks to the backends; node-b's management (same incarnation, same port)
            // turns ready and says it is the active node under a new epoch, its journal written alone.
            nodes.remove(a);
            a.close();
            await("node-b is ready", () -> httpB.get("/health/ready").status() == 200);
            JsonNode taken = status(httpB);
            assertEquals("active", taken.path("role").asText(), taken.toString());
            assertTrue(taken.path("epoch").asLong() > epoch, "a new epoch: " + taken);
            assertEquals(address(b), taken.path("activeAddress").asText(), taken.toString());
            assertEquals("degraded", taken.path("replication").path("state").asText(), taken.toString());
            assertEquals(1, taken.path("failovers").asInt(), taken.toString());
            assertTrue(handles.get(0).isOpen() && handles.get(1).isOpen());
            assertEquals(PRODUCT, handles.get(0).info().product().productCode());
            await("node-b reports no standby", () -> value(scrape(httpB), "opentmr_replication_standby_up") == 0);
            String alone = scrape(httpB);
            assertEquals(1.0, state(alone, "degraded"), alone);
            assertEquals(0.0, state(alone, "following"), alone);
            Promtool.checkMetrics(alone);
            // node-a's management went with its node.
            assertThrows(IOException.class, () -> httpA.get("/health/alive"));
            for (LicenseHandle handle : handles) {
                handle.close();
            }
        }
    }

    @Test
    void aNodeRestartedInItsProcessServesManagementAgainOnItsPort() throws Exception {
        // node-a alone (its twin never comes): active, its journal written alone.
        TwinNode a = start("node-a");
        HttpProbe httpA = http("node-a");
        await("node-a is ready", () -> httpA.get("/health/ready").status() == 200);
        JsonNode first = status(httpA);
        assertEquals(1, first.path("twin").path("incarnation").asInt(), first.toString());
        assertEquals("degraded", first.path("replication").path("state").asText(), first.toString());
        String before = scrape(httpA);
        assertEquals(0.0, value(before, "opentmr_replication_standby_up"), before);
        assertTrue(value(before, "opentmr_replication_lag_seconds") >= 0, before);

        // Its actor system stops, as when its twin downs it: the node restarts in its process, and the new
        // incarnation serves management HTTP on the same port, and becomes active again (nobody else holds the lease).
        // The old one gives the port up before the end of its shutdown, here held at its last phase (as Pekko 1.2's
        // Artery over TLS can hold one for minutes).
        CompletableFuture<Done> held = new CompletableFuture<>();
        CompletableFuture<Void> holding = new CompletableFuture<>();
        CoordinatedShutdown.get(a.node().actorSystem()).addTask(CoordinatedShutdown.PhaseBeforeActorSystemTerminate(),
                "test-hold", () -> {
                    holding.complete(null);
                    return held;
                });
        a.node().actorSystem().terminate();
        holding.get(30, TimeUnit.SECONDS);
        try {
            // A new connection, as a track script makes each time (one kept alive is served until the old system
            // has terminated).
            assertThrows(IOException.class, () -> http("node-a").get("/health/alive"),
                    "the stopping incarnation no longer takes connections for the node");
        } finally {
            held.complete(Done.getInstance());
        }
        await("node-a restarted in its process", () -> a.restarts() >= 1);
        assertEquals(0, a.stuckStops(), "with no twin connected its old actor system terminates");
        await("node-a's management answers again, from its second incarnation", () -> {
            try {
                HttpProbe.Answer answer = httpA.get("/tmr/status");
                return answer.status() == 200 && answer.json().path("twin").path("incarnation").asInt() == 2;
            } catch (IOException notYet) {
                return false;
            }
        });
        await("node-a is ready again", () -> httpA.get("/health/ready").status() == 200);
        JsonNode again = status(httpA);
        assertEquals("active", again.path("role").asText(), again.toString());
        String after = scrape(httpA);
        assertEquals(1.0, value(after, "opentmr_serving"), after);
        assertEquals(1.0, state(after, "degraded"), after);
        Promtool.checkMetrics(after);
    }

    /** The metric names in the expressions of the shipped alert rules (packaging's prometheus/alerts.yml). */
    private static Set<String> alertMetrics() throws IOException {
        Path rules = Path.of("..", "packaging", "src", "main", "resources", "prometheus", "alerts.yml");
        Set<String> names = new TreeSet<>();
        Matcher expr = Pattern.compile("(?m)^\\s*expr:\\s*(.+)$").matcher(Files.readString(rules));
        while (expr.find()) {
            Matcher name = Pattern.compile("\\bopentmr_\\w+").matcher(expr.group(1));
            while (name.find()) {
                names.add(name.group());
            }
        }
        assertTrue(names.size() >= 8, "metrics in " + rules.toAbsolutePath() + ": " + names);
        return names;
    }

    private static boolean hasSample(String scrape, String metric) {
        return Pattern.compile("(?m)^" + metric + "[{ ]").matcher(scrape).find();
    }

    private static String text(ServerMetrics metrics) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrometheusTextFormatWriter.create().write(out, metrics.scrape());
        return out.toString(StandardCharsets.UTF_8);
    }

    private static String address(TwinNode node) {
        InetSocketAddress address = node.node().address();
        return address.getHostString() + ":" + address.getPort();
    }
}
