package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.opentmr.management.Promtool;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The alert rules shipped in the jar ({@code prometheus/alerts.yml}): valid for {@code promtool check rules}, and
 * each one fired by {@code promtool test rules} ({@code alerts-test.yml}). promtool comes with Debian's package
 * {@code prometheus}; outside CI a machine without it skips these tests and says so, in CI ({@code CI=true}) a
 * missing promtool fails them.
 */
@Timeout(120)
class AlertRulesTest {

    private static final Pattern ALERT = Pattern.compile("(?m)^\\s*-?\\s*alert(?:name)?:\\s*(\\w+)\\s*$");

    @TempDir
    Path dir;

    private String resource(String name) throws IOException {
        try (InputStream in = getClass().getResourceAsStream("/prometheus/" + name)) {
            if (in == null) {
                fail("no resource prometheus/" + name);
            }
            String text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            Files.writeString(dir.resolve(name), text);
            return text;
        }
    }

    @Test
    void theRulesAreValidAndEveryAlertIsFiredByATest() throws Exception {
        String rules = resource("alerts.yml");
        String tests = resource("alerts-test.yml");
        Set<String> alerts = names(rules);
        assertTrue(alerts.size() >= 10, "alerts: " + alerts);
        Set<String> tested = names(tests);
        assertEquals(alerts, tested, "every alert of alerts.yml needs a test in alerts-test.yml, and only those");
        for (String alert : alerts) {
            assertTrue(Pattern.compile("alertname: " + alert + "\\s+exp_alerts:\\s+- exp_labels").matcher(tests).find(),
                    alert + " is never expected to fire in alerts-test.yml");
        }
        String checked = Promtool.run(dir, "check", "rules", "alerts.yml");
        assertTrue(checked.contains("SUCCESS: " + alerts.size() + " rules found"), checked);
        String fired = Promtool.run(dir, "test", "rules", "alerts-test.yml");
        assertTrue(fired.contains("SUCCESS"), fired);
    }

    @Test
    void theRulesUseOnlyOurMetrics() throws Exception {
        String rules = resource("alerts.yml");
        Matcher expr = Pattern.compile("(?m)^\\s*expr:\\s*(.+)$").matcher(rules);
        while (expr.find()) {
            assertTrue(expr.group(1).contains("opentmr_"), "an alert on a metric not of ours: " + expr.group(1));
        }
    }

    private static Set<String> names(String yaml) {
        Set<String> names = new TreeSet<>();
        Matcher matcher = ALERT.matcher(yaml);
        while (matcher.find()) {
            names.add(matcher.group(1));
        }
        return names;
    }
}
