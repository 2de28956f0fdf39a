package io.opentmr.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.management.Chromium;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The dashboards of {@code tmr demo}'s twin, as processes from the launcher's jar, in headless Chromium: the standby
 * node's page says why it shows no container, licenses or handles (the routes' 503 and their message); when the
 * active node is killed with SIGKILL the standby's page turns active and shows the handle a client took on the
 * other node. Screenshots go to {@code target/dashboard/}. Outside CI a missing chromium skips it (with what to
 * install); with {@code CI=true} it fails.
 */
@Timeout(300)
class DashboardIT {

    private static final long FIRM = 6_000_010;
    private static final Path SHOTS = Path.of("target", "dashboard");
    private static final Duration PAGE_WAIT = Duration.ofSeconds(60);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    @TempDir
    Path dir;

    private record Answer(int status, JsonNode json) {
    }

    private static Answer get(String url) throws IOException, InterruptedException {
        HttpResponse<String> response = HTTP.send(HttpRequest.newBuilder(URI.create(url))
                .timeout(Duration.ofSeconds(20)).build(), HttpResponse.BodyHandlers.ofString());
        return new Answer(response.statusCode(), JSON.readTree(response.body()));
    }

    private static String text(Chromium browser, String expression) throws Exception {
        return browser.evaluate(expression).asText();
    }

    @Test
    void theStandbysPageSaysWhyItServesNothingAndTurnsActiveWhenTheActiveNodeIsKilled() throws Exception {
        Chromium.require();
        Path demoDir = dir.resolve("demo");
        Map<String, JsonNode> components = new LinkedHashMap<>();
        TmrProcess demo = DemoIT.startDemo(dir, demoDir, DemoIT.Ports.free());
        try (Chromium browser = Chromium.start(dir.resolve("chromium-profile"), SHOTS.resolve("chromium-it.log"),
                1400, 1000)) {
            demo.awaitReady(Duration.ofSeconds(240));
            JsonNode manifest = JSON.readTree(demoDir.resolve("demo.json").toFile());
            manifest.get("components").forEach(c -> components.put(c.get("name").asText(), c));
            String active = components.get("node-a").get("admin").asText();
            String standby = components.get("node-b").get("admin").asText();
            DemoIT.awaitHttp(active + "/health/ready", 200);

            try (TmrClient client = TmrClient.connect(TmrClientOptions.builder()
                    .addresses(components.get("node-a").get("address").asText(),
                            components.get("node-b").get("address").asText())
                    .clientName("dashboard-it").requestTimeout(Duration.ofSeconds(30)).build())) {
                LicenseHandle held = DemoIT.accessWithin(client, Duration.ofSeconds(60));
                String id = Long.toUnsignedString(held.handleId());

                // The standby: its status answers, its container routes answer 503, and the page shows why.
                assertEquals("standby", get(standby + "/tmr/status").json().path("role").asText());
                Answer refused = get(standby + "/tmr/licenses");
                assertEquals(503, refused.status(), refused.json().toString());
                browser.navigate(standby + "/");
                browser.await("two refreshes", "Number(document.body.dataset.polls) >= 2", PAGE_WAIT);
                assertEquals("standby", text(browser, "document.getElementById('role').textContent"));
                String licensesError = "document.querySelector('.route-error[data-route=\"/tmr/licenses\"]')";
                assertEquals("block", text(browser, "getComputedStyle(" + licensesError + ").display"));
                String shown = text(browser, licensesError + ".textContent");
                assertTrue(shown.contains("HTTP 503") && shown.contains(refused.json().path("error").path("message")
                        .asText()), shown);
                browser.screenshot(SHOTS.resolve("twin-standby.png"));

                // The active one's page shows the client's handle.
                browser.navigate(active + "/");
                browser.await("the held handle is shown", "!!document.querySelector('#handles tr[data-handle-id=\""
                        + id + "\"]')", PAGE_WAIT);
                assertEquals("active", text(browser, "document.getElementById('role').textContent"));

                // Back on the standby's page, the active node dies.
                browser.navigate(standby + "/");
                browser.await("a refresh", "Number(document.body.dataset.polls) >= 1", PAGE_WAIT);
                ProcessHandle nodeA = ProcessHandle.of(components.get("node-a").get("pid").asLong())
                        .orElseThrow(() -> new AssertionError("node-a is not running; see " + demoDir));
                nodeA.destroyForcibly();
                browser.await("node-b's page turns active", "document.getElementById('role').textContent"
                        + " === 'active'", PAGE_WAIT);
                browser.await("the handle taken on node-a is shown on node-b",
                        "!!document.querySelector('#handles tr[data-handle-id=\"" + id + "\"]')", PAGE_WAIT);
                assertEquals("none", text(browser, "getComputedStyle(" + licensesError + ").display"),
                        "the licenses answer now");
                // The badge shows a poll's status as soon as it answers, the feed that poll's changes once every
                // route answered: the handle and licenses may stem from the poll before, so the feed is waited for.
                browser.await("the feed tells of the take-over",
                        "document.getElementById('events').textContent.includes('→ active')", PAGE_WAIT);
                List<String> ids = get(standby + "/tmr/handles").json().path("handles").findValuesAsText("id");
                assertTrue(ids.contains(id), "node-b's JSON agrees: " + ids);
                browser.screenshot(SHOTS.resolve("twin-takeover.png"));
                assertEquals(List.of(), browser.errors(), "JavaScript exceptions or console/CSP errors");
                held.close();
            }
            assertEquals(0, demo.terminate(Duration.ofSeconds(60)), demo.output());
        } finally {
            demo.close();
            for (JsonNode component : components.values()) {
                ProcessHandle.of(component.get("pid").asLong()).ifPresent(ProcessHandle::destroyForcibly);
            }
        }
    }
}
