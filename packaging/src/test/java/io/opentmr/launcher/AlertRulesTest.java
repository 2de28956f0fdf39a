package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
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
        String checked = promtool("check", "rules", "alerts.yml");
        assertTrue(checked.contains("SUCCESS: " + alerts.size() + " rules found"), checked);
        String fired = promtool("test", "rules", "alerts-test.yml");
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

    private String promtool(String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(promtool().toString());
        command.addAll(List.of(args));
        Process process = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            fail("promtool " + String.join(" ", args) + " did not finish within 60 s");
        }
        assertEquals(0, process.exitValue(), "promtool " + String.join(" ", args) + ":\n" + output);
        return output;
    }

    /** promtool on the PATH; missing: skipped outside CI (saying what to install), failed in CI. */
    static Path promtool() {
        for (String entry : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            Path candidate = Path.of(entry.isEmpty() ? "." : entry, "promtool");
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        String message = "promtool is not installed: apt-get install prometheus (Debian's package brings promtool)";
        if ("true".equalsIgnoreCase(System.getenv("CI"))) {
            fail(message + "; .ci/run installs it, so CI must have it");
        }
        Assumptions.abort(message);
        throw new AssertionError("unreachable");
    }
}
