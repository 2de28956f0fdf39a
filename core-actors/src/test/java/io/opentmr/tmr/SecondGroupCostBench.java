package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a further virtual container costs the backends (docs/several-containers.md §2): peer requests by type a
 * backend answers in a window while the node idles, over backends of one container and of two. Prints its numbers;
 * asserts only that a node over backends of one container forms no further group. Run with -Dopentmr.bench=true.
 */
@Timeout(180)
@EnabledIfSystemProperty(named = "opentmr.bench", matches = "true")
class SecondGroupCostBench {

    private static final long WINDOW_MILLIS = 10_000;

    @TempDir
    Path dir;

    @Test
    void peerRequestsPerSecondWithOneAndTwoGroups() throws Exception {
        Map<String, Double> one = measure(dir.resolve("one"), Map.of());
        Map<String, Double> two = measure(dir.resolve("two"), Map.of("opentmr.backend.additional-containers",
                List.of(8)));
        System.out.printf("peer requests/s on backend 1 while idle (window %d ms, load %s):%n  one group:  %s%n"
                + "  two groups: %s%n", WINDOW_MILLIS, java.nio.file.Files.readString(Path.of("/proc/loadavg"))
                .strip(), one, two);
    }

    private static Map<String, Double> measure(Path dir, Map<String, Object> backends) throws Exception {
        try (TmrTestGroup group = new TmrTestGroup(dir, Clock.systemUTC(), backends)) {
            group.issueTmr(TmrTestGroup.seats(42, 2));
            group.startNode(Map.of());
            Await.until("the node serves", group.node()::serving);
            int groups = backends.isEmpty() ? 0 : 1;
            Await.until("the further groups serve", () -> group.node().otherContainers().size() == groups
                    && group.node().otherContainers().stream().allMatch(g -> g.status().serving()));
            Thread.sleep(2_000);
            Map<String, Long> before = counts(group);
            long start = System.nanoTime();
            Thread.sleep(WINDOW_MILLIS);
            Map<String, Long> after = counts(group);
            double seconds = (System.nanoTime() - start) / 1e9;
            Map<String, Double> rates = new java.util.TreeMap<>();
            after.forEach((type, count) -> {
                long delta = count - before.getOrDefault(type, 0L);
                if (delta > 0) {
                    rates.put(type, Math.round(delta / seconds * 10) / 10.0);
                }
            });
            assertEquals(groups, group.node().otherContainers().size());
            return rates;
        }
    }

    private static Map<String, Long> counts(TmrTestGroup group) {
        Map<String, Long> counts = new java.util.TreeMap<>();
        for (MetricSnapshot snapshot : group.backend(0).metrics().registry().scrape()) {
            if (snapshot instanceof HistogramSnapshot histogram
                    && histogram.getMetadata().getName().equals("opentmr_request_duration_seconds")) {
                histogram.getDataPoints().forEach(point -> counts.put(point.getLabels().get("request"),
                        point.getCount()));
            }
        }
        return counts;
    }
}
