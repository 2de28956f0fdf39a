package io.opentmr.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * Prometheus' own checker ({@code promtool}, Debian package {@code prometheus}). Outside CI a machine without it
 * skips the test and says what to install; in CI ({@code CI=true}, where {@code .ci/run} installs it) a missing
 * promtool fails the test.
 */
public final class Promtool {

    private Promtool() {
    }

    /** promtool on the PATH; missing: skipped outside CI (saying what to install), failed in CI. */
    public static Path require() {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            Path candidate = Path.of(dir.isEmpty() ? "." : dir, "promtool");
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

    /** {@code promtool check metrics} on a scrape: its output (lint problems), asserting it exits 0. */
    public static String checkMetrics(String scrape) throws IOException, InterruptedException {
        return exec(null, scrape, "check", "metrics");
    }

    /** Runs promtool with {@code args} in {@code dir}, asserting exit 0; its output. */
    public static String run(Path dir, String... args) throws IOException, InterruptedException {
        return exec(dir, null, args);
    }

    private static String exec(Path dir, String input, String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(require().toString());
        command.addAll(List.of(args));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        if (dir != null) {
            builder.directory(dir.toFile());
        }
        Process process = builder.start();
        if (input != null) {
            process.getOutputStream().write(input.getBytes(StandardCharsets.UTF_8));
        }
        process.getOutputStream().close();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            fail("promtool " + String.join(" ", args) + " did not finish within 60 s");
        }
        assertEquals(0, process.exitValue(), "promtool " + String.join(" ", args) + ":\n" + output);
        return output;
    }
}
