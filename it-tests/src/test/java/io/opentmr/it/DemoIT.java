package io.opentmr.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tmr demo} as an operator runs it: three backends and the twin TMR nodes as processes; a client of the SDK
 * (given both nodes) uses the seat-limited TMR license through the active node; the active node is killed with
 * SIGKILL and the standby takes over with the client's handle; then one backend is killed with SIGKILL and the
 * client does not notice; SIGTERM to the demo stops every child and exits 0. Management HTTP shows the roles, the
 * epoch and the replication state on both nodes before and after the take-over.
 */
@Timeout(300)
class DemoIT {

    private static final long FIRM = 6_000_010;
    private static final long SEATS = 101;
    private static final List<String> HOSTS = TwinDemo.HOSTS;

    @TempDir
    Path dir;

    @Test
    void theActiveNodeAndABackendKilledCostTheClientNothingAndSigtermStopsEverything() throws Exception {
        Ports ports = Ports.free();
        int port = ports.port();
        int managementPort = ports.management();
        Path demoDir = dir.resolve("demo");
        Map<String, JsonNode> components = new LinkedHashMap<>();
        TmrProcess demo = startDemo(dir, demoDir, ports);
        try {
            demo.awaitReady(Duration.ofSeconds(240));
            JsonNode manifest = new ObjectMapper().readTree(demoDir.resolve("demo.json").toFile());
            manifest.get("components").forEach(c -> components.put(c.get("name").asText(), c));
            assertEquals(List.of("backend-1", "backend-2", "backend-3", "node-a", "node-b"),
                    List.copyOf(components.keySet()));
            String node = components.get("node-a").get("address").asText();
            assertEquals("127.0.2.1:" + port, node);
            String standby = components.get("node-b").get("address").asText();
            assertEquals("127.0.2.2:" + port, standby);
            for (int i = 0; i < HOSTS.size(); i++) {
                String name = i < 3 ? "backend-" + (i + 1) : i == 3 ? "node-a" : "node-b";
                assertEquals("http://" + HOSTS.get(i) + ":" + managementPort,
                        components.get(name).get("admin").asText());
            }
            // The node's readiness (keepalived's track script) once it serves, and the admin token the demo wrote.
            String adminA = components.get("node-a").get("admin").asText();
            String adminB = components.get("node-b").get("admin").asText();
            awaitHttp(adminA + "/health/ready", 200);
            // The launcher's jar carries the dashboard.
            awaitHttp(adminA + "/", 200);
            awaitHttp(components.get("backend-1").get("admin").asText() + "/dashboard/dashboard.js", 200);
            assertTrue(java.nio.file.Files.exists(demoDir.resolve("admin.token")));
            // What an operator sees of the twin: node-a active with its standby in sync, node-b following it and
            // not ready (pekko-management's 500 for a failed check), the replication metrics on node-a's /metrics.
            JsonNode statusA = awaitJson(adminA + "/tmr/status",
                    status -> "in_sync".equals(status.path("replication").path("state").asText()));
            assertEquals("active", statusA.path("role").asText(), statusA.toString());
            assertEquals("node-b", statusA.path("replication").path("standby").path("name").asText(),
                    statusA.toString());
            long epoch = statusA.path("epoch").asLong();
            JsonNode statusB = awaitJson(adminB + "/tmr/status",
                    status -> "following".equals(status.path("replication").path("state").asText()));
            assertEquals("standby", statusB.path("role").asText(), statusB.toString());
            assertEquals(node, statusB.path("activeAddress").asText(), statusB.toString());
            assertEquals(epoch, statusB.path("epoch").asLong(), statusB.toString());
            assertEquals(500, get(adminB + "/health/ready").statusCode());
            String metricsA = get(adminA + "/metrics").body();
            assertTrue(sample(metricsA, "opentmr_replication_state\\{state=\"in_sync\"}", 1), metricsA);
            assertTrue(sample(metricsA, "opentmr_replication_standby_up", 1), metricsA);

            try (TmrClient client = TmrClient.connect(TmrClientOptions.builder().addresses(node, standby)
                    .clientName("demo-it").requestTimeout(Duration.ofSeconds(30)).build())) {
                LicenseHandle first = accessWithin(client, Duration.ofSeconds(60));
                assertEquals(1, seatsInUse(client));
                assertEquals(node, hostPort(client));

                // The active node dies: the standby holds the backends' lease at its next heartbeat and serves
                // from its copy of the journal; the client's handle goes on there.
                ProcessHandle nodeA = ProcessHandle.of(components.get("node-a").get("pid").asLong())
                        .orElseThrow(() -> new AssertionError("node-a is not running; see " + demoDir));
                long killed = System.nanoTime();
                nodeA.destroyForcibly();
                LicenseHandle afterKill = accessWithin(client, Duration.ofSeconds(60));
                long tookMillis = (System.nanoTime() - killed) / 1_000_000;
                System.out.printf("kill -9 of the active node: next ACCESS succeeded after %d ms%n", tookMillis);
                assertEquals(standby, hostPort(client));
                assertEquals(2, seatsInUse(client), "the handle from node-a counts on node-b");
                assertEquals(SEATS, first.info().product().productCode());
                afterKill.close();
                // keepalived's track script now sees node-b ready; it is the active node under a new epoch, its
                // journal written alone.
                awaitHttp(adminB + "/health/ready", 200);
                assertEquals(1, seatsInUse(client));
                JsonNode takenOver = awaitJson(adminB + "/tmr/status",
                        status -> "active".equals(status.path("role").asText()));
                assertTrue(takenOver.path("epoch").asLong() > epoch, takenOver.toString());
                assertEquals("degraded", takenOver.path("replication").path("state").asText(), takenOver.toString());
                String metricsB = get(adminB + "/metrics").body();
                assertTrue(sample(metricsB, "opentmr_replication_state\\{state=\"degraded\"}", 1), metricsB);

                ProcessHandle backend2 = ProcessHandle.of(components.get("backend-2").get("pid").asLong())
                        .orElseThrow(() -> new AssertionError("backend-2 is not running; see " + demoDir));
                backend2.destroyForcibly();
                backend2.onExit().get(10, TimeUnit.SECONDS);

                // Two copies left: the license stays, access and release work as before.
                LicenseHandle second = client.access(FIRM, SEATS);
                assertEquals(2, seatsInUse(client));
                second.close();
                first.close();
                assertEquals(0, seatsInUse(client));
            }
            awaitOutput(demo, "backend-2 (pid " + components.get("backend-2").get("pid").asLong() + ") exited");

            assertEquals(0, demo.terminate(Duration.ofSeconds(60)), demo.output());
            for (JsonNode component : components.values()) {
                long pid = component.get("pid").asLong();
                assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false),
                        component.get("name").asText() + " (pid " + pid + ") outlived the demo");
            }
        } finally {
            demo.close();
            for (JsonNode component : components.values()) {
                ProcessHandle.of(component.get("pid").asLong()).ifPresent(ProcessHandle::destroyForcibly);
            }
        }
    }

    /** The demo waits for the node to show its licenses, but bounded; a client still may have to wait. */
    static LicenseHandle accessWithin(TmrClient client, Duration max) throws InterruptedException {
        long deadline = System.nanoTime() + max.toNanos();
        while (true) {
            try {
                return client.access(FIRM, SEATS);
            } catch (CmException e) {
                if (System.nanoTime() - deadline > 0) {
                    throw new AssertionError("no access to " + FIRM + ":" + SEATS + " through the node in " + max, e);
                }
            }
            Thread.sleep(500);
        }
    }

    private static long seatsInUse(TmrClient client) {
        for (ContainerInfo container : client.listContainers()) {
            if (container.serial().mask() == Serial.MASK_VIRTUAL_TMR) {
                for (ProductInfo product : container.products()) {
                    if (product.firmCode() == FIRM && product.productCode() == SEATS) {
                        return product.inUse();
                    }
                }
            }
        }
        throw new AssertionError("the node lists no virtual container with " + FIRM + ":" + SEATS + ": "
                + client.listContainers());
    }

    private static final java.net.http.HttpClient HTTP = java.net.http.HttpClient.newBuilder()
            .version(java.net.http.HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2)).build();

    private static java.net.http.HttpResponse<String> get(String url) throws IOException, InterruptedException {
        return HTTP.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(url)).timeout(Duration.ofSeconds(5))
                .build(), java.net.http.HttpResponse.BodyHandlers.ofString());
    }

    /** The JSON at {@code url} once it answers 200 with a body that {@code until} accepts (within 60 s). */
    private static JsonNode awaitJson(String url, java.util.function.Predicate<JsonNode> until) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        String last = "nothing";
        while (System.nanoTime() - deadline < 0) {
            java.net.http.HttpResponse<String> answer = get(url);
            last = answer.statusCode() + " " + answer.body();
            if (answer.statusCode() == 200) {
                JsonNode json = new ObjectMapper().readTree(answer.body());
                if (until.test(json)) {
                    return json;
                }
            }
            Thread.sleep(250);
        }
        throw new AssertionError(url + " did not answer as expected within 60 s; last: " + last);
    }

    /** Whether a Prometheus text scrape has the sample {@code series} (a regex) with {@code value}. */
    private static boolean sample(String scrape, String series, double value) {
        java.util.regex.Matcher matcher = java.util.regex.Pattern.compile("(?m)^" + series + " (\\S+)$")
                .matcher(scrape);
        return matcher.find() && Double.parseDouble(matcher.group(1)) == value;
    }

    static void awaitHttp(String url, int status) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        int last = -1;
        while (System.nanoTime() - deadline < 0) {
            try {
                last = get(url).statusCode();
                if (last == status) {
                    return;
                }
            } catch (java.io.IOException notYet) {
                last = -1;
            }
            Thread.sleep(250);
        }
        throw new AssertionError(url + " answered " + last + ", not " + status + ", within 60 s");
    }

    private static void awaitOutput(TmrProcess process, String text) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!process.output().contains(text)) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("no '" + text + "' in:\n" + process.output());
            }
            Thread.sleep(100);
        }
    }

    private static String hostPort(TmrClient client) {
        return client.connectedAddress().getHostString() + ":" + client.connectedAddress().getPort();
    }

    /** The demo's client, cluster and management ports: each free on every one of its addresses, all different. */
    record Ports(int port, int cluster, int management) {
        static Ports free() throws IOException {
            int port = TwinDemo.portFreeOnEveryHost(-1);
            int cluster = TwinDemo.portFreeOnEveryHost(port);
            int management;
            do {
                management = TwinDemo.portFreeOnEveryHost(port);
            } while (management == cluster);
            return new Ports(port, cluster, management);
        }
    }

    /** {@code tmr demo} in {@code demoDir} on {@code ports}, its output in {@code dir/demo.out}; not yet ready. */
    static TmrProcess startDemo(Path dir, Path demoDir, Ports ports) throws IOException {
        return TmrProcess.start(dir.resolve("demo.out"), "Ctrl-C stops the demo", "demo",
                "--dir", demoDir.toString(), "--port", String.valueOf(ports.port()), "--cluster-port",
                String.valueOf(ports.cluster()), "--management-port", String.valueOf(ports.management()),
                "--ready-timeout", "120s");
    }
}
