package io.opentmr.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.testing.TmrTestGroup;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The dashboard in headless Chromium (Debian's {@code chromium}, driven over the DevTools protocol) against a real
 * TMR node over three real backends, each with its management HTTP, on loopback: what the page shows is what the
 * JSON routes answer; a handle is force-released by clicks (a wrong token refused, the right one kept for the next
 * release); a backend's own page shows its container; a killed backend goes red on the node's page and its own page
 * says it cannot reach it; a release the node cannot carry out shows the server's error. Screenshots go to
 * {@code target/dashboard/}. The tests run in order on one browser and kill backends as they go.
 */
@Timeout(300)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class DashboardBrowserTest {

    private static final long FIRM = TmrTestGroup.FIRM;
    private static final Path SHOTS = Path.of("target", "dashboard");
    private static final Duration PAGE_WAIT = Duration.ofSeconds(30);

    @TempDir
    static Path dir;

    private static ManagedGroup managed;
    private static TmrTestGroup group;
    private static Management nodeHttp;
    private static Management[] backendHttp;
    private static String token;
    private static HttpProbe http;
    private static Chromium browser;
    private static TmrClient alice;
    private static TmrClient bob;
    private static final List<LicenseHandle> aliceHandles = new ArrayList<>();
    private static LicenseHandle bobsHandle;
    private static long started;

    @BeforeAll
    static void start() throws Exception {
        started = System.nanoTime();
        if (Chromium.find().isEmpty()) {
            return; // each test says what is missing (needsChromium)
        }
        managed = ManagedGroup.start(dir, List.of(TmrTestGroup.seats(101, 4), TmrTestGroup.units(102, 100)));
        group = managed.group();
        nodeHttp = managed.nodeHttp();
        backendHttp = managed.backendHttp();
        token = managed.token();
        http = managed.http();

        alice = managed.client("alice", "ws-1", "dashboard-test");
        bob = managed.client("bob", "ws-2", "dashboard-test");
        aliceHandles.add(alice.access(FIRM, 101));
        aliceHandles.add(alice.access(FIRM, 101));
        LicenseHandle units = alice.access(FIRM, 102);
        units.decrementUnits(7);
        aliceHandles.add(units);
        bobsHandle = bob.access(FIRM, 101);

        browser = Chromium.start(dir.resolve("chromium-profile"), SHOTS.resolve("chromium.log"), 1400, 1000);
        System.out.println("DashboardBrowserTest: " + browser.version() + " (" + Chromium.find().orElseThrow() + ")");
    }

    @BeforeEach
    void needsChromium() {
        Chromium.require();
    }

    @AfterEach
    void thePagesReportedNoErrors() {
        if (browser != null) {
            assertEquals(List.of(), browser.errors(), "JavaScript exceptions or console/CSP errors on the page");
        }
    }

    @AfterAll
    static void stop() {
        try {
            if (browser != null) {
                browser.close();
            }
            for (TmrClient client : new TmrClient[] {alice, bob}) {
                if (client != null) {
                    client.close();
                }
            }
            if (managed != null) {
                managed.close();
            }
        } finally {
            System.out.printf("DashboardBrowserTest: %.1f s in all%n", (System.nanoTime() - started) / 1e9);
        }
    }

    /** Opens a component's dashboard and waits until it has shown {@code polls} answers. */
    private static void open(String base, int polls) throws Exception {
        browser.navigate(base + "/");
        awaitPolls(polls);
    }

    private static void awaitPolls(int polls) throws Exception {
        browser.await(polls + " refreshes", "Number(document.body.dataset.polls) >= " + polls, PAGE_WAIT);
    }

    /** Waits for one more refresh than the page has shown so far. */
    private static void awaitNextPoll() throws Exception {
        awaitPolls(browser.evaluate("Number(document.body.dataset.polls)").asInt() + 1);
    }

    private static JsonNode licenseRows() throws Exception {
        return browser.evaluate("[...document.querySelectorAll('#licenses tbody tr')].map(r => ({"
                + "license: r.dataset.license, used: r.dataset.used, total: r.dataset.total, units: r.dataset.units,"
                + "count: (r.querySelector('.seat-count') || {}).textContent || null,"
                + "width: (r.querySelector('.bar > span') || {style: {}}).style.width || null,"
                + "unitsText: r.querySelector('.units').textContent}))");
    }

    private static Set<String> handleRows() throws Exception {
        Set<String> ids = new TreeSet<>();
        browser.evaluate("[...document.querySelectorAll('#handles tbody tr')].map(r => r.dataset.handleId)")
                .forEach(id -> ids.add(id.asText()));
        return ids;
    }

    private static Set<String> handleIds(HttpProbe probe) throws Exception {
        Set<String> ids = new TreeSet<>();
        probe.get("/tmr/handles").json().path("handles").forEach(h -> ids.add(h.path("id").asText()));
        return ids;
    }

    private static String fact(String key) throws Exception {
        return browser.evaluate("(document.querySelector('#status dd[data-fact=\"" + key + "\"]') || {}).textContent"
                + " || null").asText();
    }

    /** Whether the element of id %s is shown (takes space on the page), whatever its attributes say. */
    private static final String VISIBLE = "(() => { const e = document.getElementById('%s');"
            + " return !!e && getComputedStyle(e).display !== 'none' && e.getClientRects().length > 0; })()";

    private static boolean visible(String id) throws Exception {
        return browser.evaluate(VISIBLE.formatted(id)).asBoolean();
    }

    private static String id(LicenseHandle handle) {
        return Long.toUnsignedString(handle.handleId());
    }

    /** Every license row of the page against the license of the JSON answer. */
    private static void assertLicensesAsInJson(JsonNode licenses) throws Exception {
        JsonNode rows = licenseRows();
        assertEquals(licenses.size(), rows.size(), rows.toString());
        for (int i = 0; i < licenses.size(); i++) {
            JsonNode license = licenses.get(i);
            JsonNode row = rows.get(i);
            long used = license.path("seats").path("used").asLong();
            long total = license.path("seats").path("total").asLong();
            assertEquals(license.path("license").asText(), row.path("license").asText());
            assertEquals(String.valueOf(used), row.path("used").asText(), row.toString());
            assertEquals(String.valueOf(total), row.path("total").asText(), row.toString());
            assertEquals(used + " / " + total, row.path("count").asText(), "the seat bar's label");
            assertEquals(Math.min(100, Math.round(100.0 * used / total)) + "%", row.path("width").asText(),
                    "the seat bar's fill");
            JsonNode units = license.path("units");
            assertEquals(units.path("counter").asBoolean() ? units.path("left").asText() : "—",
                    row.path("unitsText").asText(), row.toString());
        }
    }

    @Test
    @Order(1)
    void theNodesPageShowsWhatTheJsonRoutesAnswer() throws Exception {
        open(nodeHttp.url(), 2);
        JsonNode status = http.get("/tmr/status").json();
        assertEquals("node", browser.evaluate("document.body.dataset.component").asText());
        assertEquals("active", fact("role"));
        assertEquals("active", browser.evaluate("document.getElementById('role').textContent").asText());
        assertEquals(status.path("lease").path("epoch").asText(), fact("epoch"));
        assertEquals(status.path("virtualContainer").asText(), fact("virtualContainer"));
        assertEquals("3 of 3", fact("backendsUp"));
        assertEquals("none", fact("replication"));
        assertEquals(status.path("openHandles").asText(), fact("openHandles"));

        JsonNode backends = browser.evaluate("[...document.querySelectorAll('#backends tbody tr')].map(r => ({"
                + "backend: r.dataset.backend, up: r.classList.contains('up'), address: r.cells[2].textContent,"
                + "dot: getComputedStyle(r.querySelector('.dot')).backgroundColor}))");
        JsonNode json = http.get("/tmr/backends").json().path("backends");
        assertEquals(3, backends.size());
        for (int i = 0; i < 3; i++) {
            assertEquals(json.get(i).path("address").asText(), backends.get(i).path("address").asText());
            assertTrue(backends.get(i).path("up").asBoolean());
            assertEquals("rgb(31, 157, 85)", backends.get(i).path("dot").asText(), "green");
        }

        assertLicensesAsInJson(http.get("/tmr/licenses").json().path("licenses"));
        JsonNode seats = licenseRows().get(0);
        assertEquals("3", seats.path("used").asText(), "alice holds two seats, bob one");
        assertEquals("93", licenseRows().get(1).path("unitsText").asText(), "100 units less the 7 alice used");
        assertEquals(handleIds(http), handleRows());
        assertEquals(Set.of(id(aliceHandles.get(0)), id(aliceHandles.get(1)), id(aliceHandles.get(2)),
                id(bobsHandle)), handleRows());
        assertFalse(visible("banner"), "no error banner while every route answers");
        assertTrue(browser.evaluate("document.getElementById('events').textContent").asText()
                .contains("Watching node " + TmrTestGroup.NODE_NAME));
        browser.screenshot(SHOTS.resolve("node.png"));
    }

    @Test
    @Order(2)
    void aHandleIsForceReleasedByClicksWithTheAdminToken() throws Exception {
        String bobs = id(bobsHandle);
        String row = "#handles tr[data-handle-id=\"" + bobs + "\"]";
        browser.click(row + " button.release");
        browser.await("the release dialog is open", "document.getElementById('release-dialog').open", PAGE_WAIT);
        assertTrue(visible("token-label"), "no token kept yet: the dialog asks for it");
        assertTrue(browser.evaluate("document.getElementById('release-what').textContent").asText()
                .contains(bobs));

        browser.click("#token");
        browser.type("certainly-not-the-admin-token");
        browser.click("#release-confirm");
        browser.await("a wrong token is refused", VISIBLE.formatted("release-error"), PAGE_WAIT);
        String refused = browser.evaluate("document.getElementById('release-error').textContent").asText();
        assertTrue(refused.contains("HTTP 403") && refused.contains("wrong admin token"), refused);
        assertTrue(handleIds(http).contains(bobs), "a refused release freed nothing");
        assertTrue(browser.evaluate("sessionStorage.getItem('opentmr.adminToken') === null").asBoolean());
        browser.screenshot(SHOTS.resolve("release-refused.png"));

        browser.click("#token");
        browser.type(token);
        browser.click("#release-confirm");
        browser.await("the dialog closes", "!document.getElementById('release-dialog').open", PAGE_WAIT);
        browser.await("bob's handle leaves the table", "!document.querySelector('" + row.replace("\"", "\\\"")
                + "')", PAGE_WAIT);
        assertFalse(handleIds(http).contains(bobs), "the JSON route agrees: released");
        awaitNextPoll();
        assertEquals(handleIds(http), handleRows());
        assertLicensesAsInJson(http.get("/tmr/licenses").json().path("licenses"));
        assertEquals("2", licenseRows().get(0).path("used").asText());
        String events = browser.evaluate("document.getElementById('events').textContent").asText();
        assertTrue(events.contains("Handle " + bobs + " force-released from this page"), events);
        assertTrue(events.contains("seats used 3 → 2"), events);
        assertEquals(token, browser.evaluate("sessionStorage.getItem('opentmr.adminToken')").asText());

        // The token is kept for this tab: the next release asks only to confirm.
        String alices = id(aliceHandles.get(1));
        browser.click("#handles tr[data-handle-id=\"" + alices + "\"] button.release");
        browser.await("the release dialog is open", "document.getElementById('release-dialog').open", PAGE_WAIT);
        assertFalse(visible("token-label"), "the kept token is not asked for again");
        browser.click("#release-confirm");
        browser.await("alice's second handle leaves the table", "!document.querySelector('#handles tr[data-handle-id"
                + "=\"" + alices + "\"]')", PAGE_WAIT);
        assertFalse(handleIds(http).contains(alices));
        assertEquals(1, http.get("/tmr/licenses").json().path("licenses").get(0).path("seats").path("used").asInt());
    }

    @Test
    @Order(3)
    void aBackendsPageShowsItsOwnContainer() throws Exception {
        HttpProbe backend = new HttpProbe(backendHttp[0].url());
        open(backendHttp[0].url(), 2);
        JsonNode status = backend.get("/tmr/status").json();
        assertEquals("backend", browser.evaluate("document.body.dataset.component").asText());
        assertEquals(status.path("container").asText(), fact("container"));
        assertFalse(visible("backends-section"),
                "a backend has no backends");
        assertLicensesAsInJson(backend.get("/tmr/licenses").json().path("licenses"));
        assertEquals(handleIds(backend), handleRows());
        // The seats it holds for the node are the node's to release: no button.
        JsonNode kinds = browser.evaluate("[...document.querySelectorAll('#handles tbody tr')].map(r => ({"
                + "kind: r.dataset.kind, button: !!r.querySelector('button.release')}))");
        assertEquals(2, kinds.size(), "alice's two remaining handles, each a seat held for the node");
        for (JsonNode kind : kinds) {
            assertEquals("allocation", kind.path("kind").asText());
            assertFalse(kind.path("button").asBoolean());
        }
        browser.screenshot(SHOTS.resolve("backend.png"));
    }

    @Test
    @Order(4)
    void aKilledBackendGoesRed() throws Exception {
        open(nodeHttp.url(), 2);
        group.kill(1);
        String row = "document.querySelector('#backends tr[data-backend=\"2\"]')";
        browser.await("backend 2 shows down", row + ".classList.contains('down')", PAGE_WAIT);
        assertFalse(http.get("/tmr/backends").json().path("backends").get(1).path("up").asBoolean(),
                "the JSON route agrees");
        assertEquals("rgb(214, 69, 69)", browser.evaluate("getComputedStyle(" + row + ".querySelector('.dot'))"
                + ".backgroundColor").asText(), "red");
        assertEquals("down", browser.evaluate(row + ".cells[1].textContent").asText());
        browser.await("two backends up", "document.querySelector('#status dd[data-fact=\"backendsUp\"]')"
                + ".textContent === '2 of 3'", PAGE_WAIT);
        browser.await("the feed tells", "document.getElementById('events').textContent.includes('Backend 2 ("
                + ManagedGroup.backendAddress(1) + ":')", PAGE_WAIT);
        NodeManagementTest.await("two copies counted", () -> http.get("/tmr/licenses").json().path("licenses")
                .get(0).path("copies").path("counted").asInt() == 2);
        awaitNextPoll();
        assertEquals("copies-2", browser.evaluate("document.querySelector('#licenses tbody tr').cells[5].className")
                .asText(), "a license on two copies is marked");
        browser.screenshot(SHOTS.resolve("node-backend-down.png"));
    }

    @Test
    @Order(5)
    void aPageWhoseServerIsGoneSaysSo() throws Exception {
        open(backendHttp[2].url(), 2);
        group.kill(2);
        browser.await("the banner says the server does not answer",
                "%s && document.getElementById('banner').textContent".formatted(VISIBLE.formatted("banner"))
                        + ".startsWith('The server does not answer')", PAGE_WAIT);
        assertEquals("unreachable", browser.evaluate("document.getElementById('role').textContent").asText());
        assertTrue(browser.evaluate("getComputedStyle(document.querySelector('.route-error[data-route="
                + "\"/tmr/licenses\"]')).display !== 'none'").asBoolean(), "each section says its route failed");
        assertEquals(2, licenseRows().size(), "the last answers stay shown");
        awaitNextPoll();
        String events = browser.evaluate("document.getElementById('events').textContent").asText();
        assertEquals(1, events.split("The server does not answer", -1).length - 1, "said once: " + events);
        assertFalse(events.contains("GET /tmr/"), "not once per route: " + events);
        browser.screenshot(SHOTS.resolve("backend-unreachable.png"));
    }

    @Test
    @Order(6)
    void aReleaseTheNodeCannotCarryOutShowsTheServersError() throws Exception {
        open(nodeHttp.url(), 2);
        NodeManagementTest.await("the node lost the lease", () -> !"active".equals(http.get("/tmr/status").json()
                .path("role").asText()));
        browser.await("the page shows the node is no longer active",
                "document.getElementById('role').textContent !== 'active'", PAGE_WAIT);
        String alices = id(aliceHandles.get(0));
        browser.click("#handles tr[data-handle-id=\"" + alices + "\"] button.release");
        browser.await("the release dialog is open", "document.getElementById('release-dialog').open", PAGE_WAIT);
        assertFalse(visible("token-label"), "the token kept in this tab since the first release");
        browser.click("#release-confirm");
        browser.await("the refusal is shown", VISIBLE.formatted("release-error"), PAGE_WAIT);
        String shown = browser.evaluate("document.getElementById('release-error').textContent").asText();
        HttpProbe.Answer answer = http.send("DELETE", "/tmr/handles/" + alices, token, null);
        assertTrue(answer.status() >= 500, answer.status() + " " + answer.body());
        assertTrue(shown.contains("HTTP " + answer.status()) && shown.contains(
                answer.json().path("error").path("message").asText()), shown + " vs " + answer.body());
        assertTrue(handleIds(http).contains(alices), "nothing was released");
        browser.screenshot(SHOTS.resolve("node-release-refused.png"));
        browser.click("#release-cancel");
    }

    @Test
    @Order(7)
    void thePagesPolicyRefusesInlineScriptAndTheTestSeesIt() throws Exception {
        open(nodeHttp.url(), 1);
        // What an injected <script> would do: the Content-Security-Policy stops it, and the browser reports it, which
        // is what thePagesReportedNoErrors relies on after every test.
        browser.evaluate("(() => { const s = document.createElement('script');"
                + " s.textContent = 'window.inlineRan = true'; document.head.append(s); return true; })()");
        assertFalse(browser.evaluate("window.inlineRan === true").asBoolean(), "an inline script ran");
        long deadline = System.nanoTime() + PAGE_WAIT.toNanos();
        while (browser.errors().stream().noneMatch(e -> e.contains("Content Security Policy"))) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("the browser reported no CSP violation: " + browser.errors());
            }
            Thread.sleep(100);
        }
        browser.clearErrors();
    }
}
