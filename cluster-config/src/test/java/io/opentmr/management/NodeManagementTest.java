package io.opentmr.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.protocol.Allocation;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.TmrNode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Management HTTP of a real TMR node over three real backends (each with its own management HTTP), on loopback
 * with free ports: every route's status codes and JSON against what the actors hold, the admin token checked
 * before anything is parsed, force-release freeing the seat on the backends, an import routed file by file,
 * {@code /metrics} as promtool reads it, and readiness following the lease. The last test kills backends.
 */
@Timeout(240)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class NodeManagementTest {

    private static final long FIRM = TmrTestGroup.FIRM;

    @TempDir
    static Path dir;

    private static ManagedGroup managed;
    private static TmrTestGroup group;
    private static TmrNode node;
    private static Management nodeHttp;
    private static Management[] backendHttp;
    private static String token;
    private static HttpProbe http;

    @BeforeAll
    static void start() throws Exception {
        managed = ManagedGroup.start(dir, List.of(TmrTestGroup.seats(101, 10), TmrTestGroup.units(102, 100)));
        group = managed.group();
        node = managed.node();
        nodeHttp = managed.nodeHttp();
        backendHttp = managed.backendHttp();
        token = managed.token();
        http = managed.http();
    }

    private static String address(int backend) {
        return ManagedGroup.backendAddress(backend);
    }

    @AfterAll
    static void stop() {
        if (managed != null) {
            managed.close();
        }
    }

    private static TmrClient client(String user, String host) {
        return managed.client(user, host, "management-test");
    }

    @Test
    @Order(1)
    void healthIsOpenAndUnknownRoutesAnswerJson() throws Exception {
        assertEquals(200, http.get("/health/alive").status());
        assertEquals(200, http.get("/health/ready").status());
        HttpProbe.Answer unknown = http.get("/tmr/nothing-here");
        assertEquals(404, unknown.status());
        assertEquals(404, unknown.json().path("error").path("status").asInt());
        assertTrue(nodeHttp.url().startsWith("http://127.0.2.1:"), nodeHttp.url());
        // A node that is no cluster member has no cluster routes.
        assertEquals(404, http.get("/cluster/members").status());
    }

    @Test
    @Order(1)
    void theDashboardIsServedAtTheRoot() throws Exception {
        HttpProbe.Answer page = http.get("/");
        assertEquals(200, page.status());
        assertEquals("text/html; charset=UTF-8", page.contentType());
        assertTrue(page.body().contains("<script src=\"/dashboard/dashboard.js\""), page.body());
        HttpProbe.Answer script = http.get("/dashboard/dashboard.js");
        assertEquals(200, script.status());
        assertEquals("text/javascript; charset=UTF-8", script.contentType());
        assertEquals("text/css; charset=UTF-8", http.get("/dashboard/dashboard.css").contentType());
        HttpProbe.Answer missing = http.get("/dashboard/missing.js");
        assertEquals(404, missing.status());
        assertTrue(missing.json().path("error").path("message").asText().contains("dashboard.js"));
        assertEquals(404, http.get("/dashboard/..%2Fmanagement.conf").status());
        assertEquals(405, http.send("POST", "/", null, "{}").status());
    }

    @Test
    @Order(2)
    void statusBackendsAndContainersShowWhatTheNodeHolds() throws Exception {
        JsonNode status = http.get("/tmr/status").json();
        assertEquals("node", status.path("component").asText());
        assertEquals(TmrTestGroup.NODE_NAME, status.path("name").asText());
        assertEquals("active", status.path("role").asText());
        assertTrue(status.path("serving").asBoolean());
        assertTrue(status.path("lease").path("held").asBoolean());
        assertEquals(node.peerGroup().epoch(), status.path("lease").path("epoch").asLong());
        assertEquals(3, status.path("backends").path("up").asInt());
        assertEquals("none", status.path("replication").path("state").asText());
        assertTrue(status.path("replication").path("lagSeconds").isNull());
        assertEquals(node.virtualSerial().toString(), status.path("virtualContainer").asText());
        assertEquals(0, status.path("failovers").asLong());

        JsonNode backends = http.get("/tmr/backends").json().path("backends");
        assertEquals(3, backends.size());
        for (int i = 0; i < 3; i++) {
            JsonNode backend = backends.get(i);
            assertEquals(i + 1, backend.path("backend").asInt());
            assertEquals(address(i) + ":" + group.backend(i).address().getPort(), backend.path("address").asText());
            assertTrue(backend.path("up").asBoolean());
            assertEquals(group.backend(i).identity().serial().toString(), backend.path("container").asText());
            assertEquals(TmrTestGroup.CM_ACT_ID, backend.path("cmActId").asLong());
            assertEquals(2, backend.path("copies").asInt());
            assertTrue(backend.path("down").isNull());
        }

        JsonNode container = http.get("/tmr/containers").json().path("containers").get(0);
        assertEquals(node.virtualSerial().toString(), container.path("serial").asText());
        assertEquals("virtual", container.path("kind").asText());
        assertEquals(2, container.path("licenses").asInt());
        assertEquals(group.backend(2).identity().serial().toString(),
                container.path("backing").get(2).path("container").asText());
    }

    @Test
    @Order(3)
    void licensesAndHandlesShowWhatTheClientsHold() throws Exception {
        try (TmrClient alice = client("alice", "ws-1"); TmrClient bob = client("bob", "ws-2")) {
            LicenseHandle a1 = alice.access(FIRM, 101);
            LicenseHandle a2 = alice.access(FIRM, 102);
            LicenseHandle b1 = bob.access(FIRM, 101);
            a2.decrementUnits(5);

            JsonNode licenses = http.get("/tmr/licenses").json().path("licenses");
            JsonNode seats = license(licenses, 101);
            assertEquals(2, seats.path("seats").path("used").asLong());
            assertEquals(10, seats.path("seats").path("total").asLong());
            assertEquals(3, seats.path("copies").path("counted").asInt());
            assertEquals(List.of(1, 2, 3), ints(seats.path("copies").path("backends")));
            assertTrue(seats.path("listed").asBoolean());
            assertEquals(0, seats.path("integrityWarnings").asLong());
            JsonNode units = license(licenses, 102);
            assertTrue(units.path("units").path("counter").asBoolean());
            assertEquals(95, units.path("units").path("left").asLong());

            JsonNode all = http.get("/tmr/handles").json();
            assertEquals(3, all.path("total").asInt());
            List<String> ids = new ArrayList<>();
            all.path("handles").forEach(h -> ids.add(h.path("id").asText()));
            for (LicenseHandle handle : List.of(a1, a2, b1)) {
                assertTrue(ids.contains(Long.toUnsignedString(handle.handleId())), ids + " lacks " + handle);
            }
            JsonNode bobs = http.get("/tmr/handles?user=bob").json();
            assertEquals(1, bobs.path("total").asInt());
            JsonNode bobsHandle = bobs.path("handles").get(0);
            assertEquals(Long.toUnsignedString(b1.handleId()), bobsHandle.path("id").asText());
            assertEquals("ws-2", bobsHandle.path("host").asText());
            assertEquals("USERLIMIT", bobsHandle.path("mode").asText());
            assertTrue(bobsHandle.path("license").asText().startsWith(FIRM + ":101#"));
            assertEquals(2, http.get("/tmr/handles?license=" + FIRM + ":101").json().path("total").asInt());
            assertEquals(1, http.get("/tmr/handles?host=ws-1&license=" + FIRM + ":102").json().path("total").asInt());
            assertEquals(0, http.get("/tmr/handles?host=nowhere").json().path("total").asInt());

            JsonNode page = http.get("/tmr/handles?offset=2&limit=2").json();
            assertEquals(3, page.path("total").asInt());
            assertEquals(1, page.path("handles").size());
            assertEquals(400, http.get("/tmr/handles?limit=0").status());
            assertEquals(400, http.get("/tmr/handles?limit=100000").status());
            assertEquals(400, http.get("/tmr/handles?license=CAD").status());
            a1.close();
            a2.close();
            b1.close();
        }
        await("the closed handles are gone", () -> http.get("/tmr/handles").json().path("total").asInt() == 0);
    }

    @Test
    @Order(4)
    void forceReleaseNeedsTheTokenAndFreesTheSeatOnEveryBackend() throws Exception {
        try (TmrClient carol = client("carol", "ws-3")) {
            LicenseHandle held = carol.access(FIRM, 101);
            String id = Long.toUnsignedString(held.handleId());
            for (int b = 0; b < 3; b++) {
                assertTrue(holds(b, held.handleId()), "backend " + (b + 1) + " holds no seat for " + id);
            }

            assertEquals(401, http.send("DELETE", "/tmr/handles/" + id, null, null).status());
            assertEquals(403, http.send("DELETE", "/tmr/handles/" + id, "not-the-token-at-all", null).status());
            assertEquals(400, http.send("DELETE", "/tmr/handles/twelve", token, null).status());
            HttpProbe.Answer unknown = http.send("DELETE", "/tmr/handles/12345", token, null);
            assertEquals(404, unknown.status());
            assertEquals(106, unknown.json().path("error").path("code").asInt());
            assertEquals(1, http.get("/tmr/handles").json().path("total").asInt(), "a refused release freed nothing");

            HttpProbe.Answer released = http.send("DELETE", "/tmr/handles/" + id, token, null);
            assertEquals(200, released.status(), released.body());
            assertEquals(id, released.json().path("released").asText());
            assertEquals(0, http.get("/tmr/handles").json().path("total").asInt());
            assertEquals(0, license(http.get("/tmr/licenses").json().path("licenses"), 101).path("seats").path("used")
                    .asLong());
            for (int b = 0; b < 3; b++) {
                int backend = b;
                await("backend " + (b + 1) + " frees " + id, () -> !holds(backend, held.handleId()));
            }
            // Once more: the handle is gone.
            assertEquals(404, http.send("DELETE", "/tmr/handles/" + id, token, null).status());
        }
    }

    @Test
    @Order(4)
    void aStepDownNeedsTheTokenAndASingleNodeRefusesItServingOn() throws Exception {
        assertEquals(401, http.send("POST", "/tmr/node/step-down", null, null).status());
        HttpProbe.Answer refused = http.send("POST", "/tmr/node/step-down", token, null);
        assertEquals(503, refused.status(), refused.body());
        assertEquals(130, refused.json().path("error").path("code").asInt(), refused.body());
        assertTrue(refused.json().path("error").path("message").asText().contains("no standby"), refused.body());
        assertEquals(200, http.get("/health/ready").status(), "the node serves on");
    }

    private static boolean holds(int backend, long handleId) throws Exception {
        for (Allocation allocation : group.allocations(backend)) {
            if (allocation.tmrHandleId() == handleId) {
                return true;
            }
        }
        return false;
    }

    @Test
    @Order(5)
    void anImportIsAuthorizedBeforeItIsReadAndEachFileGoesToItsBackend() throws Exception {
        String garbage = "{ this is not json";
        assertEquals(401, http.send("POST", "/tmr/licenses/import", null, garbage).status());
        assertEquals(403, http.send("POST", "/tmr/licenses/import", "wrong-token-wrong-token", garbage).status());
        HttpProbe.Answer bad = http.send("POST", "/tmr/licenses/import", token, garbage);
        assertEquals(400, bad.status());
        assertEquals(400, bad.json().path("error").path("status").asInt());
        assertEquals(400, http.send("POST", "/tmr/licenses/import", token, "{\"files\": []}").status());
        assertEquals(400, http.send("POST", "/tmr/licenses/import", token, "{\"files\": [42]}").status());

        LicenseIssuer.Result issued = group.issueOnly(TmrTestGroup.seats(103, 5));
        List<JsonNode> files = new ArrayList<>();
        // Backwards, so that the file order and the backend order differ.
        for (int i = 2; i >= 0; i--) {
            files.add(HttpProbe.JSON.readTree(issued.files().get(i).file().toJson()));
        }
        String body = HttpProbe.JSON.writeValueAsString(Map.of("files", files));
        HttpProbe.Answer imported = http.send("POST", "/tmr/licenses/import", token, body);
        assertEquals(200, imported.status(), imported.body());
        assertEquals(3, imported.json().path("imported").asInt());
        JsonNode results = imported.json().path("results");
        for (int f = 0; f < 3; f++) {
            JsonNode result = results.get(f);
            int backend = 2 - f;
            assertEquals(f, result.path("file").asInt());
            assertTrue(result.path("ok").asBoolean(), result.toString());
            assertEquals(group.backend(backend).identity().serial().toString(), result.path("target").asText());
            assertEquals(backend + 1, result.path("backend").asInt());
        }
        await("the node lists the imported license", () -> {
            JsonNode license = license(http.get("/tmr/licenses").json().path("licenses"), 103);
            return license != null && license.path("listed").asBoolean();
        });

        // The same files again: every backend refuses the replay, and says so file by file.
        HttpProbe.Answer again = http.send("POST", "/tmr/licenses/import", token, body);
        assertEquals(422, again.status(), again.body());
        assertEquals(0, again.json().path("imported").asInt());
        again.json().path("results").forEach(r -> {
            assertFalse(r.path("ok").asBoolean());
            assertNotNull(r.path("error").path("code").asText(null), r.toString());
        });
        HttpProbe.Answer stranger = http.send("POST", "/tmr/licenses/import", token,
                "{\"files\": [{\"format\": \"something else\"}]}");
        assertEquals(422, stranger.status());
        assertEquals(105, stranger.json().path("results").get(0).path("error").path("code").asInt());
    }

    @Test
    @Order(6)
    void metricsAreOursByNameAndPassPromtool() throws Exception {
        try (TmrClient dave = client("dave", "ws-4")) {
            dave.access(FIRM, 101).close();
            try {
                dave.access(FIRM, 999);
            } catch (CmException expected) {
                assertEquals(200, expected.code());
            }
        }
        HttpProbe.Answer scrape = http.get("/metrics");
        assertEquals(200, scrape.status());
        assertTrue(scrape.contentType().startsWith("text/plain"), scrape.contentType());
        String text = scrape.body();
        for (int b = 0; b < 3; b++) {
            assertEquals(1.0, value(text, "opentmr_backend_up{address=\"" + address(b) + ":"
                    + group.backend(b).address().getPort() + "\",backend=\"" + (b + 1) + "\"}"), text);
        }
        assertEquals(3.0, value(text, "opentmr_license_copies\\{license=\"" + FIRM + ":101#\\d+\"}"));
        assertEquals(10.0, value(text, "opentmr_license_seats\\{license=\"" + FIRM + ":101#\\d+\"}"));
        assertTrue(value(text, "opentmr_accesses_total") >= 4, text);
        assertEquals(1.0, value(text, "opentmr_denials_total\\{error=\"200\",request=\"ACCESS\"}"));
        assertTrue(value(text, "opentmr_request_duration_seconds_count\\{request=\"ACCESS\"}") >= 5);
        assertTrue(value(text, "opentmr_journal_write_seconds_count") >= 1);
        assertEquals(1.0, value(text, "opentmr_serving"));
        assertEquals((double) node.peerGroup().epoch(), value(text, "opentmr_lease_epoch"));
        assertEquals(0.0, value(text, "opentmr_failovers_total"));
        assertEquals(0.0, value(text, "opentmr_open_handles"));
        assertTrue(text.contains("\njvm_memory_used_bytes{"), "JVM metrics");
        assertFalse(text.contains("opentmr_replication_lag_seconds"), "no twin, no replication lag");
        for (String line : text.split("\n")) {
            if (!line.startsWith("#") && !line.isBlank()) {
                String name = line.split("[{ ]")[0];
                assertTrue(name.startsWith("opentmr_") || name.startsWith("jvm_") || name.startsWith("process_"),
                        "a metric not of ours nor the JVM's: " + line);
            }
        }
        Promtool.checkMetrics(text);

        String backendScrape = new HttpProbe(backendHttp[0].url()).get("/metrics").body();
        assertTrue(value(backendScrape, "opentmr_request_duration_seconds_count\\{request=\"ALLOCATE\"}") >= 1);
        assertEquals((double) node.peerGroup().epoch(), value(backendScrape, "opentmr_lease_epoch"));
        assertEquals(0.0, value(backendScrape, "opentmr_certificate_refusals_total"));
        Promtool.checkMetrics(backendScrape);
    }

    @Test
    @Order(7)
    void backendsReadTheirOwnContainer() throws Exception {
        HttpProbe backend = new HttpProbe(backendHttp[1].url());
        JsonNode status = backend.get("/tmr/status").json();
        assertEquals("backend", status.path("component").asText());
        assertEquals(group.backend(1).identity().serial().toString(), status.path("container").asText());
        assertEquals(TmrTestGroup.NODE_NAME, status.path("lease").path("holder").asText());
        assertTrue(status.path("peers").path("enabled").asBoolean());
        assertEquals(404, backend.get("/tmr/backends").status());
        assertEquals(404, backend.get("/cluster/members").status());
        JsonNode licenses = backend.get("/tmr/licenses").json().path("licenses");
        assertEquals(3, licenses.size());
        try (TmrClient erin = client("erin", "ws-5")) {
            LicenseHandle held = erin.access(FIRM, 101);
            JsonNode handles = backend.get("/tmr/handles?license=" + FIRM + ":101").json();
            assertEquals(1, handles.path("total").asInt());
            JsonNode allocation = handles.path("handles").get(0);
            assertEquals("allocation", allocation.path("kind").asText());
            assertEquals(Long.toUnsignedString(held.handleId()), allocation.path("id").asText());
            // A node's seat is the node's to free.
            assertEquals(409, backend.send("DELETE", "/tmr/handles/" + allocation.path("id").asText(), token, null)
                    .status());
            held.close();
        }
    }

    @Test
    @Order(8)
    void readinessFollowsTheLeaseAndTheBackendsShowDown() throws Exception {
        group.kill(1);
        await("backend 2 shows down", () -> !http.get("/tmr/backends").json().path("backends").get(1).path("up")
                .asBoolean());
        await("two copies counted", () -> license(http.get("/tmr/licenses").json().path("licenses"), 101)
                .path("copies").path("counted").asInt() == 2);
        String text = http.get("/metrics").body();
        assertEquals(0.0, value(text, "opentmr_backend_up\\{address=\"[0-9.:]+\",backend=\"2\"}"));
        assertEquals(200, http.get("/health/ready").status(), "two backends keep the lease");

        group.kill(2);
        await("the node is not ready without the lease", () -> http.get("/health/ready").status() == 500);
        assertTrue(http.get("/health/ready").body().contains("Not Healthy"));
        assertEquals(200, http.get("/health/alive").status());
        assertEquals("standby", http.get("/tmr/status").json().path("role").asText());

        group.restart(1);
        group.restart(2);
        await("the node is ready again", () -> http.get("/health/ready").status() == 200);
    }

    private static JsonNode license(JsonNode licenses, long product) {
        for (JsonNode license : licenses) {
            if (license.path("productCode").asLong() == product) {
                return license;
            }
        }
        return null;
    }

    private static List<Integer> ints(JsonNode array) {
        List<Integer> values = new ArrayList<>();
        array.forEach(v -> values.add(v.asInt()));
        return values;
    }

    /** The value of the one sample whose name and labels match {@code pattern} (a regex, quoted where plain). */
    static double value(String scrape, String pattern) {
        String regex = pattern.contains("\\") ? pattern : Pattern.quote(pattern);
        Matcher matcher = Pattern.compile("(?m)^" + regex + " (\\S+)$").matcher(scrape);
        if (!matcher.find()) {
            throw new AssertionError("no sample " + pattern + " in:\n" + scrape);
        }
        return Double.parseDouble(matcher.group(1));
    }

    /**
     * Waits (60 s at most) until {@code condition} holds. A refused connection counts as "not yet": a server starting
     * on a loaded machine listens later than its start returned; any other failure ends the wait.
     */
    static void await(String what, Callable<Boolean> condition) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        java.net.ConnectException refused = null;
        while (true) {
            try {
                if (condition.call()) {
                    return;
                }
                refused = null;
            } catch (java.net.ConnectException e) {
                refused = e;
            }
            if (System.nanoTime() - deadline > 0) {
                AssertionError late = new AssertionError("not within 60 s: " + what);
                if (refused != null) {
                    late.initCause(refused);
                }
                throw late;
            }
            Thread.sleep(100);
        }
    }
}
