package io.opentmr.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.pekko.http.javadsl.model.HttpHeader;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.junit.jupiter.api.Test;

/** The dashboard's files as served: types, caching, revalidation, the policy, and nothing from elsewhere. */
class DashboardTest {

    private final Dashboard dashboard = Dashboard.get();

    private static String header(HttpResponse response, String name) {
        Optional<HttpHeader> header = response.getHeader(name);
        return header.map(HttpHeader::value).orElse(null);
    }

    @Test
    void everyFileIsServedWithItsTypeAnETagAndNoCache() {
        Map<String, String> types = Map.of("index.html", "text/html; charset=UTF-8",
                "dashboard.css", "text/css; charset=UTF-8", "dashboard.js", "text/javascript; charset=UTF-8");
        assertEquals(types.keySet(), Dashboard.FILES.keySet());
        for (Map.Entry<String, String> file : types.entrySet()) {
            HttpResponse response = dashboard.answer(file.getKey(), HttpRequest.GET("/"));
            assertEquals(200, response.status().intValue());
            assertEquals(file.getValue(), response.entity().getContentType().toString());
            Dashboard.Asset asset = dashboard.asset(file.getKey()).orElseThrow();
            assertTrue(asset.body().length > 100, file.getKey());
            assertEquals(Dashboard.etag(asset.body()), header(response, "ETag"));
            assertEquals("no-cache", header(response, "Cache-Control"));
            assertEquals("nosniff", header(response, "X-Content-Type-Options"));
            assertEquals(Dashboard.CONTENT_SECURITY_POLICY, header(response, "Content-Security-Policy"));
        }
    }

    @Test
    void aBrowserThatHasTheFileGets304() {
        String etag = dashboard.asset("dashboard.js").orElseThrow().etag();
        HttpResponse same = dashboard.answer("dashboard.js",
                HttpRequest.GET("/dashboard/dashboard.js").addHeader(HttpHeader.parse("If-None-Match", etag)));
        assertEquals(304, same.status().intValue());
        assertEquals(etag, header(same, "ETag"));
        HttpResponse weakInAList = dashboard.answer("dashboard.js", HttpRequest.GET("/dashboard/dashboard.js")
                .addHeader(HttpHeader.parse("If-None-Match", "\"older\", W/" + etag)));
        assertEquals(304, weakInAList.status().intValue());
        HttpResponse other = dashboard.answer("dashboard.js", HttpRequest.GET("/dashboard/dashboard.js")
                .addHeader(HttpHeader.parse("If-None-Match", "\"0123\"")));
        assertEquals(200, other.status().intValue());
        assertNotEquals(dashboard.asset("dashboard.css").orElseThrow().etag(), etag, "each file its own tag");
    }

    @Test
    void anUnlistedNameIsA404AndNeverReachesTheClassPath() {
        for (String name : new String[] {"missing.js", "../ManagementRoutes.class", "Dashboard.class", ""}) {
            HttpResponse response = dashboard.answer(name, HttpRequest.GET("/dashboard/" + name));
            assertEquals(404, response.status().intValue(), name);
        }
    }

    @Test
    void thePageLoadsNothingFromElsewhereAndOnlyWhatIsServed() {
        String index = text("index.html");
        Matcher references = Pattern.compile("(?:src|href)=\"([^\"]*)\"").matcher(index);
        int assets = 0;
        while (references.find()) {
            String reference = references.group(1);
            if (reference.startsWith("/dashboard/")) {
                assertTrue(Dashboard.FILES.containsKey(reference.substring("/dashboard/".length())), reference);
                assets++;
            } else {
                assertTrue(reference.equals("data:,") || reference.startsWith("/tmr/") || reference.equals("/metrics")
                        || reference.startsWith("/health/"), "a reference to elsewhere: " + reference);
            }
        }
        assertEquals(2, assets, "the stylesheet and the script");
        for (String file : Dashboard.FILES.keySet()) {
            String text = text(file);
            assertFalse(text.contains("http://") || text.contains("https://") || text.contains("@import"),
                    file + " refers to another server");
        }
        // Data from the server goes in as text, never as HTML.
        assertFalse(text("dashboard.js").contains("innerHTML"));
    }

    private String text(String file) {
        return new String(dashboard.asset(file).orElseThrow().body(), StandardCharsets.UTF_8);
    }
}
