package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tmr bench}: the targets {@code --demo} checks, the demo processes' CPU per pair in text and JSON, and
 * {@code --rate} (open loop) against servers on loopback.
 */
@Timeout(60)
class BenchCommandTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static TmrRun tmr(String... args) {
        return TmrRun.of(args);
    }

    @Test
    void theLatencyTargetHoldsForOneClientAndTheThroughputTargetForSixteen() {
        BenchCommand.Targets one = new BenchCommand.Targets(1, 2.4, 0.1);
        assertEquals(Optional.of(true), one.latencyMet());
        assertEquals(Optional.empty(), one.throughputMet());
        assertEquals(Optional.of(false), new BenchCommand.Targets(1, 2.51, 0.5).latencyMet());
        assertEquals(Optional.of(false), new BenchCommand.Targets(1, 0, 0).latencyMet(), "no direct figure: not met");

        BenchCommand.Targets sixteen = new BenchCommand.Targets(16, 9, 0.25);
        assertEquals(Optional.empty(), sixteen.latencyMet());
        assertEquals(Optional.of(true), sixteen.throughputMet());
        assertEquals(Optional.of(false), new BenchCommand.Targets(16, 1, 0.249).throughputMet());

        String text = one.text();
        assertTrue(text.contains("TMR/direct p50 latency: 2.40× (target with 1 client: at most 2.5×: met)"), text);
        assertTrue(text.contains("TMR/direct pairs/s: 0.10 (target with 16 clients: at least 0.25; measure with "
                + "--clients 16 to check it)"), text);
        assertTrue(new BenchCommand.Targets(16, 9, 0.08).text().contains("at least 0.25: NOT met"));
        assertFalse(text.contains("0.40"), "the old 40 % target is gone: " + text);

        Map<String, Object> json = sixteen.toMap();
        assertEquals(0.25, json.get("ratio"));
        assertEquals(9.0, json.get("p50Ratio"));
    }

    @Test
    void benchDemoReportsEachDemoProcesssCpuPerPairForEachPhase() throws Exception {
        try (EchoServer echo = new EchoServer(1)) {
            String server = "127.0.0.1:" + echo.address().getPort();
            Map<String, Object> side = Map.of("server", server, "firm", 1, "product", 1);
            // This JVM stands in for a demo process; the other pid is beyond any pid_max: a process that is gone.
            DemoFiles.writeManifest(dir, List.of(
                    new DemoFiles.Component("backend-1", "backend", server, ProcessHandle.current().pid(),
                            dir.resolve("b.log")),
                    new DemoFiles.Component("node-a", "active", server, 999_999_999L, dir.resolve("n.log"))),
                    Map.of("bench", Map.of("tmr", side, "direct", side)));

            TmrRun json = tmr("bench", "--demo", dir.toString(), "--clients", "1", "--duration", "2s", "--warmup",
                    "500ms", "--json");
            assertEquals(0, json.exit(), json.err());
            JsonNode figures = JSON.readTree(json.out());
            boolean linux = System.getProperty("os.name").toLowerCase(Locale.ROOT).startsWith("linux");
            for (String phase : List.of("tmr", "direct")) {
                JsonNode result = figures.get(phase);
                assertTrue(result.get("pairs").asLong() > 0, result.toString());
                if (linux) {
                    assertTrue(result.get("cpuMsPerPair").get("backend-1").isNumber(), result.toString());
                    assertTrue(result.get("cpuMsPerPair").get("backend-1").asDouble() >= 0, result.toString());
                    assertEquals("n/a", result.get("cpuMsPerPair").get("node-a").asText(), result.toString());
                    assertEquals("n/a", result.get("cpuMsPerPairAll").asText(), result.toString());
                    assertTrue(result.get("cpuMs").get("backend-1").isNumber(), result.toString());
                    assertTrue(result.get("clockTicksPerSecond").asLong() > 0, result.toString());
                } else {
                    assertEquals("n/a", result.get("cpuMsPerPair").asText(), result.toString());
                }
            }
            assertTrue(figures.get("ratio").isNumber());
            assertTrue(figures.get("p50Ratio").isNumber());
            assertEquals(2.5, figures.at("/targets/latency/p50RatioAtMost").asDouble());
            assertTrue(figures.at("/targets/latency/met").isBoolean(), "one client: the latency target applies");
            assertEquals(0.25, figures.at("/targets/throughput/pairsRatioAtLeast").asDouble());
            assertTrue(figures.at("/targets/throughput/met").isNull(), "one client: not the throughput target's count");

            TmrRun text = tmr("bench", "--demo", dir.toString(), "--clients", "1", "--duration", "1s", "--warmup",
                    "200ms");
            assertEquals(0, text.exit(), text.err());
            assertEquals(2, text.out().split("CPU per pair \\(utime\\+stime from /proc over the measured time\\): ",
                    -1).length - 1, "one CPU line per phase: " + text.out());
            assertTrue(text.out().contains(linux ? "node-a n/a" : "n/a (needs Linux /proc)"), text.out());
            assertTrue(text.out().contains("target with 1 client: at most 2.5×"), text.out());
            assertTrue(text.out().contains("target with 16 clients: at least 0.25"), text.out());
        }
    }

    @Test
    void outsideTheDemoNoCpuIsReported() throws Exception {
        try (EchoServer echo = new EchoServer(1)) {
            String server = "127.0.0.1:" + echo.address().getPort();
            TmrRun run = tmr("bench", "--server", server, "--firm", "1", "--product", "1", "--compare", server,
                    "--clients", "1", "--duration", "300ms", "--warmup", "0s", "--json");
            assertEquals(0, run.exit(), run.err());
            JsonNode figures = JSON.readTree(run.out());
            assertFalse(figures.get("tmr").has("cpuMsPerPair"), run.out());
            assertFalse(figures.get("direct").has("cpuMsPerPair"), run.out());
            assertTrue(figures.has("targets"), run.out());
        }
    }

    @Test
    void roundsMeasureTheTwoServersInTurnAndJudgeByTheMedianRatio() throws Exception {
        assertEquals(0.2, BenchCommand.Targets.median(List.of(new BenchCommand.Targets(16, 9, 0.15),
                new BenchCommand.Targets(16, 3, 0.2), new BenchCommand.Targets(16, 5, 0.26))).pairsRatio(), 1e-9,
                "one slow round does not decide");
        BenchCommand.Targets even = BenchCommand.Targets.median(List.of(new BenchCommand.Targets(16, 4, 0.1),
                new BenchCommand.Targets(16, 2, 0.3)));
        assertEquals(0.2, even.pairsRatio(), 1e-9);
        assertEquals(3, even.p50Ratio(), 1e-9);
        BenchCommand.Targets withEmptyRound = BenchCommand.Targets.median(List.of(new BenchCommand.Targets(1, 0, 0),
                new BenchCommand.Targets(1, 2.0, 0.3)));
        assertEquals(0, withEmptyRound.p50Ratio(), 1e-9, "a round without figures is the worst latency, not the best");
        assertEquals(Optional.of(false), withEmptyRound.latencyMet());
        assertEquals(Optional.of(false), BenchCommand.Targets.median(List.of(new BenchCommand.Targets(1, 0, 0),
                new BenchCommand.Targets(1, 2.4, 0.3), new BenchCommand.Targets(1, 3.0, 0.3))).latencyMet(),
                "the median of 2.4, 3.0 and no figure is 3.0");
        try (EchoServer echo = new EchoServer(1)) {
            String server = "127.0.0.1:" + echo.address().getPort();
            TmrRun run = tmr("bench", "--server", server, "--firm", "1", "--product", "1", "--compare", server,
                    "--clients", "1", "--duration", "300ms", "--warmup", "0s", "--rounds", "3", "--json");
            assertEquals(0, run.exit(), run.err());
            JsonNode figures = JSON.readTree(run.out());
            assertEquals(3, figures.get("rounds").size(), run.out());
            double[] ratios = new double[3];
            for (int i = 0; i < 3; i++) {
                JsonNode round = figures.get("rounds").get(i);
                assertTrue(round.get("tmr").get("pairs").asLong() > 0, run.out());
                assertTrue(round.get("direct").get("pairs").asLong() > 0, run.out());
                ratios[i] = round.get("ratio").asDouble();
            }
            java.util.Arrays.sort(ratios);
            assertEquals(ratios[1], figures.get("ratio").asDouble(), 0.005, "the median round's: " + run.out());
            assertTrue(figures.has("targets"), run.out());

            TmrRun text = tmr("bench", "--server", server, "--firm", "1", "--product", "1", "--compare", server,
                    "--clients", "1", "--duration", "200ms", "--warmup", "0s", "--rounds", "2");
            assertEquals(0, text.exit(), text.err());
            assertTrue(text.out().contains("round 2 of 2:"), text.out());
            assertTrue(text.out().contains("the median of 2 rounds:"), text.out());
        }
        assertEquals(2, tmr("bench", "--echo", "--rounds", "2", "--duration", "1s").exit(), "only with two servers");
        assertEquals(2, tmr("bench", "--server", "127.0.0.1:1", "--firm", "1", "--product", "1", "--compare",
                "127.0.0.1:1", "--rounds", "0").exit());
    }

    @Test
    void demoProcessesAreTheManifestsComponents() throws Exception {
        Files.writeString(dir.resolve(DemoFiles.MANIFEST_FILE), "{\"components\":[{\"name\":\"backend-1\",\"pid\":41},"
                + "{\"name\":\"broken\"},{\"name\":\"node-a\",\"pid\":42}]}");
        assertEquals(List.of(Map.entry("backend-1", 41L), Map.entry("node-a", 42L)),
                List.copyOf(BenchCommand.CpuMeter.demoProcesses(dir).entrySet()));
    }

    @Test
    void heldHandlesAreOpenedBeforeTheLoadAndEachIsCheckedAtTheEnd() throws Exception {
        try (EchoServer echo = new EchoServer(1)) {
            String server = "127.0.0.1:" + echo.address().getPort();
            TmrRun run = tmr("bench", "--server", server, "--firm", "1", "--product", "1", "--hold-handles", "25",
                    "--clients", "2", "--duration", "300ms", "--warmup", "0s", "--json");
            assertEquals(0, run.exit(), run.err());
            JsonNode figures = JSON.readTree(run.out());
            assertEquals(25, figures.get("heldHandles").asInt(), run.out());
            assertEquals(0, figures.get("heldLost").asInt(), run.out());
            assertTrue(figures.get("pairs").asLong() > 0, run.out());
        }
        try (EchoServer forgetful = new EchoServer(1)) {
            // The 40th ACCESS (the 15th of the load, after the 25 held) finds a server that lost every handle.
            forgetful.forgetHandlesAt(40);
            String server = "127.0.0.1:" + forgetful.address().getPort();
            TmrRun run = tmr("bench", "--server", server, "--firm", "1", "--product", "1", "--hold-handles", "25",
                    "--clients", "2", "--duration", "500ms", "--warmup", "0s");
            assertEquals(0, run.exit(), run.err());
            assertTrue(run.out().contains("held handles: 25 opened before the load, 25 lost {106=25}"), run.out());
        }
        TmrRun refused = tmr("bench", "--echo", "--hold-handles", "10", "--duration", "1s");
        assertEquals(2, refused.exit(), "with --server only: " + refused.err());
    }

    @Test
    void rateSendsTheScheduledPairsAndReportsThemBesideTheTarget() throws Exception {
        try (EchoServer echo = new EchoServer(1)) {
            String server = "127.0.0.1:" + echo.address().getPort();
            TmrRun run = tmr("bench", "--server", server, "--firm", "1", "--product", "1", "--rate", "200",
                    "--clients", "2", "--duration", "1s", "--warmup", "200ms", "--json");
            assertEquals(0, run.exit(), run.err());
            JsonNode figures = JSON.readTree(run.out());
            assertEquals(200.0, figures.get("targetRate").asDouble(), run.out());
            assertEquals(200, figures.get("scheduled").asLong(), "1 s at 200 pairs/s, the warm-up's not counted");
            assertEquals(8, figures.get("outstandingPerClient").asInt());
            // Pairs answered in the measured time, and pairs due in it and not sent: apart from those in flight
            // at its start or end (2 clients × 8 at most at each), the pairs due in it.
            assertEquals(figures.get("scheduled").asDouble(), figures.get("pairs").asLong()
                    + figures.get("unsent").asLong(), 2 * 2 * 8, run.out());
            assertEquals(0, figures.get("errors").asLong(), run.out());
            for (String field : List.of("pairsPerSecond", "p50Ms", "p99Ms", "p999Ms", "maxStallMs", "maxSendLagMs")) {
                assertTrue(figures.get(field).isNumber(), field + " in " + run.out());
            }

            TmrRun text = tmr("bench", "--server", server, "--firm", "1", "--product", "1", "--compare", server,
                    "--rate", "100", "--clients", "1", "--duration", "500ms", "--warmup", "0s");
            assertEquals(0, text.exit(), text.err());
            assertEquals(2, text.out().split("pairs/s of 100/s asked \\(open loop, at most 8 in flight per client\\)",
                    -1).length - 1, "both sides at the same rate: " + text.out());
            assertTrue(text.out().contains("latency per pair from its scheduled time: p50 "), text.out());
            assertTrue(text.out().contains("a closed-loop target: measure without --rate to check it"), text.out());
        }
    }

    @Test
    void aStalledServerShowsInTheOpenLoopsP99AndHidesInTheClosedLoops() throws Exception {
        Duration pause = Duration.ofMillis(400);
        try (EchoServer stallingOpen = new EchoServer(1); EchoServer stallingClosed = new EchoServer(1)) {
            // 100 pairs/s for 2 s; the 50th ACCESS (about 0.5 s in) holds every answer for 400 ms, so the 40
            // or so pairs due meanwhile (a fifth of the run) wait for up to 400 ms from their scheduled time.
            stallingOpen.stallAfter(50, pause);
            TmrRun open = tmr("bench", "--server", "127.0.0.1:" + stallingOpen.address().getPort(), "--firm", "1",
                    "--product", "1", "--rate", "100", "--clients", "1", "--duration", "2s", "--warmup", "0s",
                    "--json");
            assertEquals(0, open.exit(), open.err());
            JsonNode openFigures = JSON.readTree(open.out());
            assertTrue(openFigures.get("p99Ms").asDouble() >= pause.toMillis() * 0.75, open.out());
            assertTrue(openFigures.get("maxStallMs").asDouble() >= pause.toMillis(), open.out());
            // The stall was the server's: the pacing thread went on sending at its times meanwhile, and says so.
            assertTrue(openFigures.get("pacerLateMaxMs").asDouble() < pause.toMillis() / 2.0, open.out());
            assertTrue(openFigures.has("pacerLateP99Ms"), open.out());

            stallingClosed.stallAfter(50, pause);
            TmrRun closed = tmr("bench", "--server", "127.0.0.1:" + stallingClosed.address().getPort(), "--firm", "1",
                    "--product", "1", "--clients", "1", "--duration", "2s", "--warmup", "0s", "--json");
            assertEquals(0, closed.exit(), closed.err());
            JsonNode closedFigures = JSON.readTree(closed.out());
            assertTrue(closedFigures.get("maxStallMs").asDouble() >= pause.toMillis(), "it saw the stall: "
                    + closed.out());
            assertTrue(closedFigures.get("p99Ms").asDouble() < openFigures.get("p99Ms").asDouble() / 2,
                    "one slow pair among thousands: " + closed.out());
        }
    }

    @Test
    void theDefaultWarmUpEndsAfterTenSecondsOfRefusedPairsAndTheMeasurementShowsTheErrors() throws Exception {
        try (EchoServer refusing = new EchoServer(1)) {
            refusing.refuseAccess();
            TmrRun run = tmr("bench", "--server", "127.0.0.1:" + refusing.address().getPort(), "--firm", "1",
                    "--product", "1", "--clients", "1", "--duration", "300ms", "--json");
            assertEquals(0, run.exit(), run.err());
            JsonNode figures = JSON.readTree(run.out());
            assertEquals(WarmUp.IDLE, figures.at("/warmUp/seconds").asInt(), run.out());
            assertFalse(figures.at("/warmUp/settled").asBoolean(), run.out());
            assertEquals(0, figures.at("/warmUp/lastPairsPerSecond").asLong(), run.out());
            assertTrue(figures.get("errors").asLong() > 0, run.out());
            assertTrue(figures.at("/errorsByCode/200").asLong() > 0, run.out());
        }
    }

    @Test
    void rateAsAPercentageMeasuresTheMaximumFirstAndChecksTheHalfMaximumTarget() throws Exception {
        TmrRun run = tmr("bench", "--echo", "--rate", "50%", "--clients", "1", "--duration", "300ms", "--warmup",
                "0s", "--json");
        assertEquals(0, run.exit(), run.err());
        JsonNode figures = JSON.readTree(run.out());
        JsonNode maximum = figures.get("maximum");
        assertTrue(maximum.get("pairs").asLong() > 0, run.out());
        assertFalse(maximum.has("targetRate"), "the maximum is closed-loop: " + run.out());
        assertEquals(maximum.get("pairs").asLong() / 0.3 / 2, figures.get("targetRate").asDouble(), 0.01, run.out());
        assertEquals(50.0, figures.get("percentOfMaximum").asDouble());
        assertEquals(5.0, figures.at("/targets/p99AtHalfMaximum/p99MsBelow").asDouble());
        assertTrue(figures.at("/targets/p99AtHalfMaximum/met").isBoolean(), run.out());
        assertTrue(figures.get("requestsPerSecond").isNumber(), run.out());
    }

    @Test
    void theFloorIsTwoDurableWritesAndTheSameClientsEchoPairMeasuredBesideTheServer() throws Exception {
        try (EchoServer server = new EchoServer(1)) {
            TmrRun run = tmr("bench", "--server", "127.0.0.1:" + server.address().getPort(), "--firm", "1",
                    "--product", "1", "--clients", "1", "--duration", "300ms", "--warmup", "0s", "--floor",
                    dir.toString(), "--json");
            assertEquals(0, run.exit(), run.err());
            JsonNode figures = JSON.readTree(run.out());
            JsonNode floor = figures.get("floor");
            assertTrue(floor.get("fsyncs").asLong() > 0, run.out());
            double fsync = floor.get("fsyncP50Ms").asDouble();
            double echo = floor.get("echoPairP50Ms").asDouble();
            assertTrue(fsync > 0 && echo > 0, run.out());
            assertTrue(floor.get("fsyncP99Ms").asDouble() >= fsync, run.out());
            assertEquals(2 * fsync + echo, floor.get("floorMs").asDouble(), 0.01, run.out());
            assertEquals(figures.get("p50Ms").asDouble(), floor.get("pairP50Ms").asDouble(), 0.001, run.out());
            double ratio = floor.get("ratio").asDouble();
            assertEquals(floor.get("pairP50Ms").asDouble() / floor.get("floorMs").asDouble(), ratio, 0.01, run.out());
            assertEquals(1.5, floor.get("ratioAtMost").asDouble());
            assertEquals(ratio <= 1.5, floor.get("met").asBoolean(), run.out());
            try (java.util.stream.Stream<Path> left = Files.list(dir)) {
                assertEquals(List.of(), left.toList(), "the probe's file is deleted");
            }
            TmrRun text = tmr("bench", "--server", "127.0.0.1:" + server.address().getPort(), "--firm", "1",
                    "--product", "1", "--clients", "1", "--duration", "300ms", "--warmup", "0s", "--floor",
                    dir.toString());
            assertEquals(0, text.exit(), text.err());
            assertTrue(text.out().contains("floor of a one-client pair: 2 × fsync p50"), text.out());
            assertTrue(text.out().contains("× the floor (backend target: at most 1.5 ×: "), text.out());
        }
        String server = "127.0.0.1:1";
        assertEquals(Output.USAGE, tmr("bench", "--server", server, "--firm", "1", "--product", "1", "--clients", "2",
                "--floor", dir.toString()).exit(), "one client");
        assertEquals(Output.USAGE, tmr("bench", "--echo", "--clients", "1", "--floor", dir.toString()).exit());
        assertEquals(Output.USAGE, tmr("bench", "--server", server, "--firm", "1", "--product", "1", "--clients", "1",
                "--rate", "100", "--floor", dir.toString()).exit(), "closed loop");
        TmrRun notADirectory = tmr("bench", "--server", server, "--firm", "1", "--product", "1", "--clients", "1",
                "--floor", dir.resolve("missing").toString());
        assertEquals(Output.USAGE, notADirectory.exit(), notADirectory.err());
        assertTrue(notADirectory.err().contains("is not a directory"), notADirectory.err());
    }

    @Test
    void withTheAutoWarmUpAnOpenLoopRunsUnmeasuredAtItsRateFirst() {
        assertEquals(BenchCommand.OPEN_LOOP_SETTLE, BenchCommand.unmeasured(null, 100.0));
        assertEquals(Duration.ofSeconds(10), BenchCommand.OPEN_LOOP_SETTLE);
        assertEquals(Duration.ZERO, BenchCommand.unmeasured(null, null), "closed loop: the auto warm-up ran before");
        assertEquals(Duration.ofSeconds(2), BenchCommand.unmeasured(Duration.ofSeconds(2), 100.0));
        assertEquals(Duration.ZERO, BenchCommand.unmeasured(Duration.ZERO, 100.0), "--warmup 0s is taken as given");
    }

    @Test
    void usageErrorsExitWithTwo() {
        assertEquals(Output.USAGE, tmr("bench", "--echo", "--clients", "0").exit());
        assertEquals(Output.USAGE, tmr("bench", "--echo", "--rate", "0").exit());
        assertEquals(Output.USAGE, tmr("bench", "--echo", "--rate", "fast").exit());
        assertEquals(Output.USAGE, tmr("bench", "--echo", "--warmup", "soon").exit(), "a duration or auto");
        assertEquals(Output.USAGE, tmr("bench", "--echo", "--warmup", "11m").exit());
        assertEquals(Output.USAGE, tmr("bench", "--echo", "--rate", "101%").exit());
        assertEquals(Output.USAGE, tmr("bench", "--echo", "--outstanding", "4").exit(), "only with --rate");
        assertEquals(Output.USAGE, tmr("bench", "--echo", "--rate", "100", "--outstanding", "65").exit());
        assertEquals(Output.USAGE, tmr("bench", "--server", "127.0.0.1:1", "--firm", "1", "--product", "1",
                "--compare", "127.0.0.1:1", "--rate", "50%").exit());
    }
}
