package io.opentmr.launcher;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.protocol.AccessMode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code tmr bench}: N clients, each its own SDK connection, in ACCESS+RELEASE loops for a bounded
 * time. Prints pairs per second, latency percentiles, errors by number and the longest stall (a pair
 * still unanswered at the end counts with its age). {@code --echo} drives an in-process server that
 * answers with canned replies: the ceiling for the same clients on the same machine.
 *
 * <p>{@code --compare} (or {@code --demo DIR}) measures a second server right after the first, with the same
 * clients and times: a TMR node and then one of its backends with an equivalent non-TMR license, and how
 * the two compare against the design's targets (DESIGN §8): with 1 client the TMR pair's p50 at most
 * {@value #P50_RATIO_TARGET} × the direct one; with 16 clients TMR pairs/s at least {@value #PAIRS_RATIO_TARGET}
 * × direct. With {@code --demo} it also reports the CPU milliseconds per pair of every demo process, from
 * {@code /proc} (Linux), over each measured phase.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Measure ACCESS+RELEASE pairs per second against a server, or the --echo ceiling.",
                "--compare / --demo: a TMR node and one backend directly in the same run, their ratios and the "
                        + "targets (1 client: TMR p50 at most 2.5x direct; 16 clients: TMR pairs/s at least 0.25x "
                        + "direct); --demo adds each demo process's CPU ms per pair (Linux /proc)."})
final class BenchCommand implements Callable<Integer> {

    /** Bound on --duration and --warmup: a bench is a measurement, not a soak. */
    static final Duration MAX_DURATION = Duration.ofMinutes(10);

    /** DESIGN §8: with {@link #LATENCY_TARGET_CLIENTS} client, TMR pair p50 at most this many times direct. */
    static final double P50_RATIO_TARGET = 2.5;
    static final int LATENCY_TARGET_CLIENTS = 1;

    /** DESIGN §8: with {@link #THROUGHPUT_TARGET_CLIENTS} clients, TMR pairs/s at least this share of direct. */
    static final double PAIRS_RATIO_TARGET = 0.25;
    static final int THROUGHPUT_TARGET_CLIENTS = 16;

    static final class Target {
        @Option(names = "--server", split = ",", description = "HOST:PORT of the server (several: fail-over list).")
        List<String> servers;

        @Option(names = "--echo", description = "Measure the in-process echo server instead.")
        boolean echo;

        @Option(names = "--demo", paramLabel = "DIR", description = "Measure the TMR node of a running tmr demo "
                + "(DIR/demo.json) and then backend-1 directly with the equivalent non-TMR license.")
        Path demo;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Target target;

    @Option(names = "--firm", defaultValue = "0", description = "Firm code (not needed with --echo).")
    long firm;

    @Option(names = "--product", defaultValue = "0", description = "Product code (not needed with --echo).")
    long product;

    @Option(names = "--compare", paramLabel = "HOST:PORT", description = "After --server, measure this server "
            + "too (a backend with an equivalent non-TMR license) and print the ratio of the two.")
    String compare;

    @Option(names = "--compare-firm", description = "Firm code on the --compare server (default: --firm).")
    Long compareFirm;

    @Option(names = "--compare-product", description = "Product code on the --compare server (default: --product).")
    Long compareProduct;

    @Option(names = "--mode", defaultValue = "nouserlimit",
            description = "Access mode (default ${DEFAULT-VALUE}: measures the path, not the quantity).")
    String mode;

    @Option(names = "--clients", defaultValue = "16", description = "Concurrent clients (default ${DEFAULT-VALUE}).")
    int clients;

    @Option(names = "--duration", defaultValue = "10s", description = "How long to measure (default ${DEFAULT-VALUE}).")
    Duration duration;

    @Option(names = "--warmup", defaultValue = "2s", description = "Unmeasured warm-up (default ${DEFAULT-VALUE}).")
    Duration warmup;

    @Option(names = "--rate", defaultValue = "0", description = "Open loop: start this many pairs per second in "
            + "all, spread over the clients, whether or not the earlier ones were answered; latency counts from "
            + "when a pair was due, so a stalled server shows in it. 0 (default): closed loop, each client starts its "
            + "next pair when the last one ends.")
    double rate;

    @Option(names = "--json", description = "One JSON object on stdout.")
    boolean json;

    @Override
    public Integer call() throws Exception {
        if (clients < 1 || clients > 4096) {
            throw new IllegalArgumentException("--clients must be 1..4096");
        }
        if (duration.isNegative() || duration.isZero() || duration.compareTo(MAX_DURATION) > 0
                || warmup.isNegative() || warmup.compareTo(MAX_DURATION) > 0) {
            throw new IllegalArgumentException("--duration must be above 0 and --warmup at least 0, both at most "
                    + MAX_DURATION.toMinutes() + " min");
        }
        if (rate < 0 || Double.isNaN(rate)) {
            throw new IllegalArgumentException("--rate must be 0 (closed loop) or a number of pairs per second");
        }
        AccessMode accessMode = AccessMode.valueOf(mode.toUpperCase(java.util.Locale.ROOT));
        if (target.demo != null) {
            return compare(Side.fromDemo(target.demo, "tmr"), Side.fromDemo(target.demo, "direct"), accessMode,
                    CpuMeter.forDemo(target.demo));
        }
        if (!target.echo && (firm == 0 || product == 0)) {
            throw new IllegalArgumentException("--firm and --product name the product item to measure");
        }
        if (compare != null) {
            if (target.echo) {
                throw new IllegalArgumentException("--compare goes with --server, not --echo");
            }
            return compare(new Side(target.servers, firm, product), new Side(List.of(compare),
                    compareFirm == null ? firm : compareFirm, compareProduct == null ? product : compareProduct),
                    accessMode, CpuMeter.NONE);
        }
        EchoServer echo = target.echo ? new EchoServer(1) : null;
        try {
            List<String> addresses = echo == null ? target.servers
                    : List.of("127.0.0.1:" + echo.address().getPort());
            Result result = run(addresses, echo == null ? firm : 1, echo == null ? product : 1, accessMode,
                    CpuMeter.NONE);
            Map<String, Object> fields = result.toMap();
            if (echo != null) {
                fields.put("requestsPerSecond", Math.round(result.pairsPerSecond() * 2));
            }
            new Output(json, System.out, System.err).result(result.text(echo != null ? "echo ceiling" : "server",
                    echo != null), fields);
            return Output.OK;
        } finally {
            if (echo != null) {
                echo.close();
            }
        }
    }

    /** Where one side of a comparison measures. */
    record Side(List<String> servers, long firm, long product) {

        /** The {@code tmr} or {@code direct} side that {@code tmr demo} wrote into its demo.json. */
        static Side fromDemo(Path dir, String side) throws java.io.IOException {
            Path manifest = dir.resolve(DemoFiles.MANIFEST_FILE);
            if (!Files.isRegularFile(manifest)) {
                throw new java.nio.file.NoSuchFileException(manifest.toString(), null, "is tmr demo running there?");
            }
            JsonNode bench = new ObjectMapper().readTree(manifest.toFile()).path("bench").path(side);
            if (!bench.hasNonNull("server") || !bench.hasNonNull("product")) {
                throw new IllegalArgumentException(manifest + " names no '" + side + "' server to measure");
            }
            return new Side(List.of(bench.get("server").asText()), bench.path("firm").asLong(),
                    bench.get("product").asLong());
        }

        Map<String, Object> describe() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("server", String.join(",", servers));
            m.put("firm", firm);
            m.put("product", product);
            return m;
        }
    }

    /**
     * Which processes' CPU a phase reports: the demo's components (name and pid from demo.json), read with
     * {@code reader}; none outside {@code --demo}. {@code reader} is empty where there is no {@code /proc}:
     * then the figures are {@value ProcessCpu#NOT_AVAILABLE}.
     */
    record CpuMeter(boolean wanted, Optional<ProcessCpu> reader, Map<String, Long> pids) {

        static final CpuMeter NONE = new CpuMeter(false, Optional.empty(), Map.of());

        static CpuMeter forDemo(Path dir) throws java.io.IOException {
            return new CpuMeter(true, ProcessCpu.ofThisMachine(), demoProcesses(dir));
        }

        /** Name → pid of every component listed in DIR/demo.json, in its order. */
        static Map<String, Long> demoProcesses(Path dir) throws java.io.IOException {
            JsonNode components = new ObjectMapper().readTree(dir.resolve(DemoFiles.MANIFEST_FILE).toFile())
                    .path("components");
            Map<String, Long> pids = new LinkedHashMap<>();
            for (JsonNode component : components) {
                if (component.hasNonNull("name") && component.path("pid").canConvertToLong()
                        && component.path("pid").asLong() > 0) {
                    pids.put(component.get("name").asText(), component.get("pid").asLong());
                }
            }
            return pids;
        }

        Map<String, Optional<ProcessCpu.Stat>> sample() {
            return reader.map(r -> r.sample(pids)).orElse(null);
        }

        /** The phase's usage between two samples; null when not wanted or not available. */
        ProcessCpu.Usage between(Map<String, Optional<ProcessCpu.Stat>> before,
                                 Map<String, Optional<ProcessCpu.Stat>> after) {
            return reader.isPresent() && before != null && after != null ? reader.get().between(before, after) : null;
        }
    }

    /** The TMR node, then the backend directly, with the same clients and times; both, their ratios and targets. */
    private int compare(Side tmr, Side direct, AccessMode accessMode, CpuMeter cpu) throws InterruptedException {
        System.err.println("tmr bench: TMR " + tmr.describe() + ", then direct " + direct.describe());
        Result viaTmr = run(tmr.servers(), tmr.firm(), tmr.product(), accessMode, cpu);
        Result viaDirect = run(direct.servers(), direct.firm(), direct.product(), accessMode, cpu);
        Map<String, Object> fields = new LinkedHashMap<>();
        Map<String, Object> tmrFields = new LinkedHashMap<>(tmr.describe());
        tmrFields.putAll(viaTmr.toMap());
        Map<String, Object> directFields = new LinkedHashMap<>(direct.describe());
        directFields.putAll(viaDirect.toMap());
        fields.put("tmr", tmrFields);
        fields.put("direct", directFields);
        Targets targets = Targets.of(viaTmr, viaDirect);
        fields.putAll(targets.toMap());
        new Output(json, System.out, System.err).result(viaTmr.text("TMR node " + String.join(",", tmr.servers()),
                false) + "\n" + viaDirect.text("direct " + String.join(",", direct.servers()), false) + "\n"
                + targets.text(), fields);
        return Output.OK;
    }

    /**
     * The two ratios of a comparison, in one run, against DESIGN §8's targets: each target holds for one
     * client count, so a run with another count reports its ratio without a verdict.
     *
     * @param p50Ratio   TMR pair p50 / direct pair p50 (0 when direct has none)
     * @param pairsRatio TMR pairs/s / direct pairs/s (0 when direct has none)
     */
    record Targets(int clients, double p50Ratio, double pairsRatio) {

        static Targets of(Result tmr, Result direct) {
            double p50 = direct.ms(50) == 0 ? 0 : tmr.ms(50) / direct.ms(50);
            double pairs = direct.pairsPerSecond() == 0 ? 0 : tmr.pairsPerSecond() / direct.pairsPerSecond();
            return new Targets(tmr.clients(), p50, pairs);
        }

        /** Whether the latency target is met; empty when this run's client count is not the target's. */
        Optional<Boolean> latencyMet() {
            return clients == LATENCY_TARGET_CLIENTS ? Optional.of(p50Ratio > 0 && p50Ratio <= P50_RATIO_TARGET)
                    : Optional.empty();
        }

        /** Whether the throughput target is met; empty when this run's client count is not the target's. */
        Optional<Boolean> throughputMet() {
            return clients == THROUGHPUT_TARGET_CLIENTS ? Optional.of(pairsRatio >= PAIRS_RATIO_TARGET)
                    : Optional.empty();
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("ratio", Result.round(pairsRatio));
            m.put("p50Ratio", Result.round(p50Ratio));
            Map<String, Object> latency = new LinkedHashMap<>();
            latency.put("clients", LATENCY_TARGET_CLIENTS);
            latency.put("p50RatioAtMost", P50_RATIO_TARGET);
            latency.put("met", latencyMet().orElse(null));
            Map<String, Object> throughput = new LinkedHashMap<>();
            throughput.put("clients", THROUGHPUT_TARGET_CLIENTS);
            throughput.put("pairsRatioAtLeast", PAIRS_RATIO_TARGET);
            throughput.put("met", throughputMet().orElse(null));
            Map<String, Object> targets = new LinkedHashMap<>();
            targets.put("latency", latency);
            targets.put("throughput", throughput);
            m.put("targets", targets);
            return m;
        }

        String text() {
            return String.format(java.util.Locale.ROOT,
                    "TMR/direct p50 latency: %.2f× (target with %d client: at most %.1f×%s)%n"
                            + "TMR/direct pairs/s: %.2f (target with %d clients: at least %.2f%s)",
                    p50Ratio, LATENCY_TARGET_CLIENTS, P50_RATIO_TARGET, verdict(latencyMet(), LATENCY_TARGET_CLIENTS),
                    pairsRatio, THROUGHPUT_TARGET_CLIENTS, PAIRS_RATIO_TARGET,
                    verdict(throughputMet(), THROUGHPUT_TARGET_CLIENTS));
        }

        private static String verdict(Optional<Boolean> met, int forClients) {
            return met.map(ok -> ok ? ": met" : ": NOT met")
                    .orElse("; measure with --clients " + forClients + " to check it");
        }
    }

    private Result run(List<String> addresses, long firmCode, long productCode, AccessMode accessMode, CpuMeter cpu)
            throws InterruptedException {
        Recorder latencies = new Recorder(TimeUnit.SECONDS.toNanos(60), 3);
        Map<Integer, AtomicLong> errors = new ConcurrentHashMap<>();
        AtomicLong pairs = new AtomicLong();
        AtomicLong maxStallNanos = new AtomicLong();
        AtomicLongArray pairStarted = new AtomicLongArray(clients);
        List<TmrClient> connections = new ArrayList<>();
        try {
            for (int i = 0; i < clients; i++) {
                connections.add(TmrClient.connect(TmrClientOptions.builder()
                        .addresses(addresses.toArray(String[]::new)).clientName("tmr-bench-" + i)
                        .requestTimeout(Duration.ofSeconds(5)).build()));
            }
        } catch (RuntimeException e) {
            connections.forEach(TmrClient::close);
            throw e;
        }
        // Times start once every client is connected: connecting is neither warm-up nor measured.
        long start = System.nanoTime();
        long measureFrom = start + warmup.toNanos();
        long end = measureFrom + duration.toNanos();

        List<Thread> threads = new ArrayList<>();
        // Open loop: each client's pairs are due every `every` ns, the clients' schedules staggered.
        long every = rate > 0 ? Math.max(1, Math.round(clients * 1e9 / rate)) : 0;
        for (int i = 0; i < clients; i++) {
            TmrClient client = connections.get(i);
            int slot = i;
            Thread thread = new Thread(() -> {
                long due = start + (every * slot) / clients;
                while (true) {
                    long t0;
                    if (every > 0) {
                        for (long wait; (wait = due - System.nanoTime()) > 0; ) {
                            java.util.concurrent.locks.LockSupport.parkNanos(wait);
                        }
                        t0 = due;
                        due += every;
                    } else {
                        t0 = System.nanoTime();
                    }
                    if (t0 - end >= 0) {
                        break;
                    }
                    pairStarted.set(slot, t0);
                    try (LicenseHandle handle = client.access(firmCode, productCode, 0, accessMode)) {
                        handle.handleId();
                    } catch (CmException e) {
                        if (t0 - measureFrom >= 0) {
                            errors.computeIfAbsent(e.code(), code -> new AtomicLong()).incrementAndGet();
                        }
                    }
                    long t1 = System.nanoTime();
                    pairStarted.set(slot, 0);
                    if (t0 - measureFrom >= 0) {
                        latencies.recordValue(Math.min(t1 - t0, TimeUnit.SECONDS.toNanos(60)));
                        pairs.incrementAndGet();
                        maxStallNanos.accumulateAndGet(t1 - t0, Math::max);
                    }
                }
            }, "tmr-bench-" + i);
            thread.setDaemon(true);
            threads.add(thread);
        }
        threads.forEach(Thread::start);

        long lastPairs = 0;
        long nextReport = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
        // CPU is sampled when the measurement starts (after the warm-up) and when it ends: the pairs counted.
        Map<String, Optional<ProcessCpu.Stat>> cpuBefore = null;
        boolean cpuSampled = !cpu.wanted();
        while (true) {
            long now = System.nanoTime();
            if (!cpuSampled && now - measureFrom >= 0) {
                cpuBefore = cpu.sample();
                cpuSampled = true;
            }
            if (now - end >= 0) {
                break;
            }
            long wake = end - nextReport < 0 ? end : nextReport;
            if (!cpuSampled && measureFrom - wake < 0) {
                wake = measureFrom;
            }
            Thread.sleep(Math.max(1, TimeUnit.NANOSECONDS.toMillis(wake - now)));
            if (System.nanoTime() - nextReport >= 0) {
                long count = pairs.get();
                System.err.printf("tmr bench: %,d pairs, %,d in the last second, %d error(s)%n", count,
                        count - lastPairs, errors.values().stream().mapToLong(AtomicLong::get).sum());
                lastPairs = count;
                nextReport += TimeUnit.SECONDS.toNanos(1);
            }
        }
        ProcessCpu.Usage cpuUsage = cpu.wanted() ? cpu.between(cpuBefore, cpu.sample()) : null;
        for (Thread thread : threads) {
            thread.join(TimeUnit.SECONDS.toMillis(10));
        }
        long stopped = System.nanoTime();
        for (int i = 0; i < clients; i++) {
            long pending = pairStarted.get(i);
            if (pending != 0) {
                maxStallNanos.accumulateAndGet(stopped - pending, Math::max);
            }
        }
        connections.forEach(TmrClient::close);
        Histogram total = latencies.getIntervalHistogram();
        Map<Integer, Long> byCode = new TreeMap<>();
        errors.forEach((code, count) -> byCode.put(code, count.get()));
        return new Result(pairs.get(), duration, total, byCode, maxStallNanos.get(), clients, rate, cpu.wanted(),
                cpuUsage);
    }

    /**
     * One phase's figures.
     *
     * @param rate      pairs per second started open-loop ({@code --rate}), 0 for a closed loop
     * @param cpuWanted whether CPU per pair is reported ({@code --demo})
     * @param cpu       the demo processes' CPU over the measured time; null when not wanted or not available
     */
    record Result(long pairs, Duration duration, Histogram latency, Map<Integer, Long> errorsByCode,
                  long maxStallNanos, int clients, double rate, boolean cpuWanted, ProcessCpu.Usage cpu) {

        double pairsPerSecond() {
            return pairs / (duration.toNanos() / 1e9);
        }

        double ms(double percentile) {
            return latency.getTotalCount() == 0 ? 0 : latency.getValueAtPercentile(percentile) / 1e6;
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("clients", clients);
            if (rate > 0) {
                m.put("ratePerSecond", rate);
            }
            m.put("pairs", pairs);
            m.put("pairsPerSecond", Math.round(pairsPerSecond()));
            m.put("p50Ms", round(ms(50)));
            m.put("p99Ms", round(ms(99)));
            m.put("p999Ms", round(ms(99.9)));
            m.put("errors", errorsByCode.values().stream().mapToLong(Long::longValue).sum());
            Map<String, Long> codes = new LinkedHashMap<>();
            errorsByCode.forEach((code, count) -> codes.put(String.valueOf(code), count));
            m.put("errorsByCode", codes);
            m.put("maxStallMs", round(maxStallNanos / 1e6));
            if (cpuWanted) {
                if (cpu == null) {
                    m.put("cpuMsPerPair", ProcessCpu.NOT_AVAILABLE);
                } else {
                    m.put("cpuMsPerPair", cpu.perPair(pairs));
                    m.put("cpuMsPerPairAll", cpu.allPerPair(pairs).map(v -> (Object) round(v))
                            .orElse(ProcessCpu.NOT_AVAILABLE));
                    m.put("cpuMs", cpu.total());
                    m.put("clockTicksPerSecond", cpu.clockTicksPerSecond());
                }
            }
            return m;
        }

        String text(String label, boolean echo) {
            return String.format("%s: %,d ACCESS+RELEASE pairs in %s with %d clients%s = %,.0f pairs/s%s%n"
                            + "latency per pair: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; longest stall %.1f ms%n"
                            + "errors: %s", label, pairs, duration, clients,
                    rate > 0 ? String.format(" (open loop, %,.0f due per second)", rate) : "", pairsPerSecond(),
                    echo ? String.format(" (%,.0f requests/s)", pairsPerSecond() * 2) : "", ms(50), ms(99), ms(99.9),
                    maxStallNanos / 1e6, errorsByCode.isEmpty() ? "none" : errorsByCode)
                    + (cpuWanted ? String.format("%nCPU per pair (utime+stime from /proc over the measured time): %s",
                    cpu == null ? ProcessCpu.NOT_AVAILABLE + " (needs Linux /proc)" : cpu.text(pairs)) : "");
        }

        static double round(double value) {
            return Math.round(value * 1000) / 1000.0;
        }
    }
}
