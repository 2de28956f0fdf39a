package io.opentmr.launcher;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
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
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import org.HdrHistogram.Histogram;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

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
 *
 * <p>{@code --rate R} makes the load open-loop ({@link OpenLoop}): R pairs per second over all clients, each
 * sent at its scheduled time and timed from it, so a stall of the server shows in every pair due during it;
 * with {@code --compare} / {@code --demo} both sides get the same rate. {@code --rate P%} first measures the
 * closed-loop maximum, then runs at P % of it: with 50 % it checks DESIGN §8's backend target, p99 below
 * {@value #P99_AT_HALF_MAXIMUM_MS} ms at half the maximum rate.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Measure ACCESS+RELEASE pairs per second against a server, or the --echo ceiling.",
                "--compare / --demo: a TMR node and one backend directly in the same run, their ratios and the "
                        + "targets (1 client: TMR p50 at most 2.5x direct; 16 clients: TMR pairs/s at least 0.25x "
                        + "direct); --demo adds each demo process's CPU ms per pair (Linux /proc).",
                "--rate: open loop at a fixed rate, latency from each pair's scheduled time; --rate 50%% measures "
                        + "the closed-loop maximum first and checks p99 below 5 ms at half of it."})
final class BenchCommand implements Callable<Integer> {

    /** Bound on --duration and --warmup: a bench is a measurement, not a soak. */
    static final Duration MAX_DURATION = Duration.ofMinutes(10);
    /** Bound on --rounds. */
    static final int MAX_ROUNDS = 20;

    /** DESIGN §8: with {@link #LATENCY_TARGET_CLIENTS} client, TMR pair p50 at most this many times direct. */
    static final double P50_RATIO_TARGET = 2.5;
    static final int LATENCY_TARGET_CLIENTS = 1;

    /** DESIGN §8: with {@link #THROUGHPUT_TARGET_CLIENTS} clients, TMR pairs/s at least this share of direct. */
    static final double PAIRS_RATIO_TARGET = 0.25;
    static final int THROUGHPUT_TARGET_CLIENTS = 16;

    /** DESIGN §8: a backend's p99 below this at {@link #HALF_MAXIMUM_PERCENT} % of its maximum rate (open loop). */
    static final double P99_AT_HALF_MAXIMUM_MS = 5;
    static final double HALF_MAXIMUM_PERCENT = 50;

    /**
     * With {@code --warmup auto} and {@code --rate}: the open loop's unmeasured start at its rate, after the
     * closed-loop warm-up of the server.
     */
    static final Duration OPEN_LOOP_SETTLE = Duration.ofSeconds(10);

    /** Bounds on --rate: a bench, not a flood. */
    static final double MAX_RATE = 1_000_000;

    /** With --rate: pairs in flight per client (the servers allow 64 requests per connection), and in all. */
    static final int DEFAULT_OUTSTANDING = 8;
    static final int MAX_OUTSTANDING = 64;
    static final int MAX_IN_FLIGHT = 4096;
    /** {@code --hold-handles}: at most this many (a node holds 100 000 in its heap of 1 GiB, DESIGN §8). */
    static final int MAX_HELD = 1_000_000;

    /** The bound on each of a pair's two requests (the SDK adds a second of slack). */
    static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(5);

    static final class Target {
        @Option(names = "--server", split = ",", description = "HOST:PORT of the server (several: fail-over list).")
        List<String> servers;

        @Option(names = "--echo", description = "Measure the in-process echo server instead.")
        boolean echo;

        @Option(names = "--demo", paramLabel = "DIR", description = "Measure the TMR node of a running tmr demo "
                + "(DIR/demo.json) and then backend-1 directly with the equivalent non-TMR license.")
        Path demo;
    }

    @Spec
    CommandSpec spec;

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

    @Option(names = "--rounds", defaultValue = "1", description = "With --compare / --demo: measure the two servers "
            + "this many times in turn (TMR, direct, TMR, direct, ...), each time for --duration, and judge the "
            + "targets by the median of the rounds' ratios; every round is printed (default ${DEFAULT-VALUE}, at most "
            + MAX_ROUNDS + ").")
    int rounds;

    @Option(names = "--warmup", defaultValue = "auto", description = "Unmeasured warm-up: a duration, or auto "
            + "(default): the load runs until its rate stops rising (the last 20 s at most 5%% above the 20 s before; "
            + "at least 40 s, at most 3 min), once per server measured.")
    String warmup;

    /** {@code --warmup} as a duration; null for auto ({@link WarmUp}). */
    private Duration fixedWarmup;

    /** The servers warmed up until their rate settled (auto): a second run on them (--rate P%) needs none. */
    private final java.util.Set<List<String>> warmed = new java.util.HashSet<>();

    @Option(names = "--rate", paramLabel = "R|P%", description = {"Open loop: R ACCESS+RELEASE pairs per second over "
            + "all clients, each pair sent at its scheduled time whatever the answers do, its latency measured from "
            + "that time. P%% first measures the closed-loop maximum (same clients and times), then runs at P%% of "
            + "it (50%% checks the backend target: p99 below 5 ms at half the maximum rate)."})
    String rate;

    @Option(names = "--outstanding", paramLabel = "N", description = "With --rate: pairs in flight per client at "
            + "most (1.." + MAX_OUTSTANDING + "; default " + DEFAULT_OUTSTANDING + ", fewer when --clients × "
            + DEFAULT_OUTSTANDING + " exceeds " + MAX_IN_FLIGHT + ").")
    Integer outstanding;

    @Option(names = "--hold-handles", paramLabel = "H", defaultValue = "0", description = {"Open H handles before "
            + "the load (spread over the clients), keep them open while it runs, and ask each for its INFO at the "
            + "end: heldHandles and heldLost in the output. With --server only; for a fail-over, give both nodes:",
            "--server 127.0.2.1,127.0.2.2 --hold-handles 1000 --duration 60s, and kill the active node meanwhile."})
    int holdHandles;

    @Option(names = "--failover", paramLabel = "N", defaultValue = "0", description = {"With --demo (the twin): N "
            + "rounds of kill -9 of the active node under the load of --clients, --hold-handles H held meanwhile, "
            + "the killed node restarted between rounds (it comes back as the standby; the restarted processes are "
            + "not the demo's children: stop them yourself). Prints the time from each kill to the first "
            + "successful ACCESS (p50, p95, max), the load's errors and longest stall, and the held handles lost."})
    int failover;

    @Option(names = "--floor", paramLabel = "DIR", description = {"With one --server and --clients 1: also measure "
            + "the floor of a pair, two durable writes (fdatasync in DIR: the backend's data directory or one on its "
            + "disk) and two round trips (the same client against the in-process echo server), and the server's "
            + "pair p50 as a multiple of it (backend target: at most 1.5x)."})
    Path floor;

    @Option(names = "--json", description = "One JSON object on stdout.")
    boolean json;

    private Rate pace;

    @Override
    public Integer call() throws Exception {
        if (clients < 1 || clients > 4096) {
            throw new ParameterException(spec.commandLine(), "--clients must be 1..4096");
        }
        try {
            fixedWarmup = "auto".equals(warmup.strip()) ? null : DurationConverter.parse(warmup);
        } catch (picocli.CommandLine.TypeConversionException e) {
            throw new ParameterException(spec.commandLine(), "--warmup takes a duration or auto: "
                    + e.getMessage());
        }
        if (duration.isNegative() || duration.isZero() || duration.compareTo(MAX_DURATION) > 0
                || fixedWarmup != null && (fixedWarmup.isNegative() || fixedWarmup.compareTo(MAX_DURATION) > 0)) {
            throw new ParameterException(spec.commandLine(), "--duration must be above 0 and --warmup at least 0, "
                    + "both at most " + MAX_DURATION.toMinutes() + " min");
        }
        AccessMode accessMode = AccessMode.valueOf(mode.toUpperCase(java.util.Locale.ROOT));
        try {
            pace = rate == null ? null : Rate.parse(rate);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
        if (outstanding != null && (pace == null || outstanding < 1 || outstanding > MAX_OUTSTANDING
                || (long) outstanding * clients > MAX_IN_FLIGHT)) {
            throw new ParameterException(spec.commandLine(), "--outstanding goes with --rate, 1.." + MAX_OUTSTANDING
                    + " and --clients × --outstanding at most " + MAX_IN_FLIGHT);
        }
        if (pace != null && pace.ofMaximum() && (target.demo != null || compare != null)) {
            throw new ParameterException(spec.commandLine(), "--rate P% goes with one --server or --echo: --compare "
                    + "and --demo measure both sides at one rate, so give it in pairs/s");
        }
        if (holdHandles < 0 || holdHandles > MAX_HELD) {
            throw new ParameterException(spec.commandLine(), String.format("--hold-handles must be 0..%,d", MAX_HELD));
        }
        if (failover < 0 || failover > 1000) {
            throw new ParameterException(spec.commandLine(), "--failover must be 0..1000");
        }
        if (failover > 0) {
            if (target.demo == null || compare != null || pace != null) {
                throw new ParameterException(spec.commandLine(), "--failover goes with --demo DIR (the twin), without "
                        + "--compare or --rate");
            }
            return failover(accessMode);
        }
        if (holdHandles > 0 && (target.demo != null || target.echo || compare != null
                || pace != null && pace.ofMaximum())) {
            throw new ParameterException(spec.commandLine(), "--hold-handles goes with --server, without --compare, "
                    + "--demo or --rate P%");
        }
        if (floor != null && (target.servers == null || compare != null || clients != 1 || pace != null
                || holdHandles > 0)) {
            throw new ParameterException(spec.commandLine(), "--floor goes with one --server and --clients 1, without "
                    + "--compare, --rate or --hold-handles: it is the floor of one client's closed-loop pair");
        }
        if (floor != null && !Files.isDirectory(floor)) {
            throw new ParameterException(spec.commandLine(), "--floor " + floor + " is not a directory (give the "
                    + "backend's data directory, or one on the same disk)");
        }
        if (rounds < 1 || rounds > MAX_ROUNDS) {
            throw new ParameterException(spec.commandLine(), "--rounds must be 1.." + MAX_ROUNDS + ": " + rounds);
        }
        if (rounds > 1 && target.demo == null && compare == null) {
            throw new ParameterException(spec.commandLine(), "--rounds goes with --compare or --demo: it alternates "
                    + "the two servers' measurements");
        }
        if (target.demo != null) {
            return compare(Side.fromDemo(target.demo, "tmr"), Side.fromDemo(target.demo, "direct"), accessMode,
                    CpuMeter.forDemo(target.demo));
        }
        if (!target.echo && (firm == 0 || product == 0)) {
            throw new ParameterException(spec.commandLine(), "--firm and --product name the product item to measure");
        }
        if (compare != null) {
            if (target.echo) {
                throw new ParameterException(spec.commandLine(), "--compare goes with --server, not --echo");
            }
            return compare(new Side(target.servers, firm, product), new Side(List.of(compare),
                    compareFirm == null ? firm : compareFirm, compareProduct == null ? product : compareProduct),
                    accessMode, CpuMeter.NONE);
        }
        EchoServer echo = target.echo ? new EchoServer(1) : null;
        try {
            List<String> addresses = echo == null ? target.servers
                    : List.of("127.0.0.1:" + echo.address().getPort());
            long firmCode = echo == null ? firm : 1;
            long productCode = echo == null ? product : 1;
            String label = echo != null ? "echo ceiling" : "server";
            Result maximum = null;
            Double pairsPerSecond = pace == null ? null : pace.pairsPerSecond();
            if (pace != null && pace.ofMaximum()) {
                System.err.println("tmr bench: the closed-loop maximum first, then " + pace);
                maximum = run(addresses, firmCode, productCode, accessMode, CpuMeter.NONE, null);
                pairsPerSecond = maximum.pairsPerSecond() * pace.percentOfMaximum() / 100;
                if (!(pairsPerSecond > 0)) {
                    throw new IllegalStateException("the closed-loop run answered no pair: no maximum to take "
                            + pace + " of");
                }
                pairsPerSecond = Math.min(pairsPerSecond, MAX_RATE);
            }
            Result result = run(addresses, firmCode, productCode, accessMode, CpuMeter.NONE, pairsPerSecond);
            Map<String, Object> fields = result.toMap();
            if (echo != null) {
                fields.put("requestsPerSecond", Math.round(result.pairsPerSecond() * 2));
            }
            String text = result.text(label, echo != null);
            if (maximum != null) {
                HalfMaximum verdict = new HalfMaximum(pace.percentOfMaximum(), result.ms(99));
                Map<String, Object> max = maximum.toMap();
                if (echo != null) {
                    max.put("requestsPerSecond", Math.round(maximum.pairsPerSecond() * 2));
                }
                fields.put("percentOfMaximum", pace.percentOfMaximum());
                fields.put("maximum", max);
                fields.put("targets", verdict.toMap());
                text = maximum.text(label + " maximum (closed loop)", echo != null) + "\n"
                        + result.text(label + " at " + pace, echo != null) + "\n" + verdict.text();
            }
            if (floor != null) {
                Floor.Verdict verdict = floor(result, accessMode);
                fields.put("floor", verdict.toMap());
                text = text + "\n" + verdict.text();
            }
            new Output(json, System.out, System.err).result(text, fields);
            return Output.OK;
        } finally {
            if (echo != null) {
                echo.close();
            }
        }
    }

    /**
     * {@code --floor}: right after the server's run, the durable writes in the directory and the same client's pairs
     * against the in-process echo server, with the same times ({@link Floor}).
     */
    private Floor.Verdict floor(Result server, AccessMode accessMode) throws Exception {
        System.err.println("tmr bench: the floor: fdatasyncs in " + floor + ", then the same client against the "
                + "in-process echo server");
        Floor.Fsync fsync = Floor.fsync(floor);
        try (EchoServer echo = new EchoServer(1)) {
            Result pairs = run(List.of("127.0.0.1:" + echo.address().getPort()), 1, 1, accessMode, CpuMeter.NONE,
                    null);
            return new Floor.Verdict(fsync, pairs.ms(50), server.ms(50));
        }
    }

    /** With --rate: pairs in flight per client at most. */
    int outstandingPerClient() {
        return outstanding != null ? outstanding : Math.max(1, Math.min(DEFAULT_OUTSTANDING, MAX_IN_FLIGHT / clients));
    }

    /**
     * {@code --rate}: pairs per second, or a percentage of the maximum that a closed-loop run measures first.
     *
     * @param pairsPerSecond   the rate; 0 when it is a percentage
     * @param percentOfMaximum the percentage; 0 when the rate is given
     */
    record Rate(double pairsPerSecond, double percentOfMaximum) {

        static Rate parse(String text) {
            String t = text.strip();
            boolean percent = t.endsWith("%");
            double value;
            try {
                value = Double.parseDouble(percent ? t.substring(0, t.length() - 1).strip() : t);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--rate takes pairs per second (5000) or a percentage of the "
                        + "closed-loop maximum (50%), not '" + text + "'");
            }
            if (percent ? !(value > 0 && value <= 100) : !(value > 0 && value <= MAX_RATE)) {
                throw new IllegalArgumentException("--rate must be above 0 and at most "
                        + (percent ? "100%" : String.format("%,.0f pairs/s", MAX_RATE)) + ": " + text);
            }
            return percent ? new Rate(0, value) : new Rate(value, 0);
        }

        boolean ofMaximum() {
            return percentOfMaximum > 0;
        }

        @Override
        public String toString() {
            return ofMaximum() ? String.format(java.util.Locale.ROOT, "%s%% of the maximum",
                    Result.round(percentOfMaximum)) : String.format("%,.0f pairs/s", pairsPerSecond);
        }
    }

    /**
     * DESIGN §8's backend latency target: p99 (open loop, from the scheduled time) below
     * {@value #P99_AT_HALF_MAXIMUM_MS} ms at {@value #HALF_MAXIMUM_PERCENT} % of the closed-loop maximum. It
     * is checked when the rate is that share; the bench does not know whether it measures a backend.
     */
    record HalfMaximum(double percentOfMaximum, double p99Ms) {

        Optional<Boolean> met() {
            return percentOfMaximum == HALF_MAXIMUM_PERCENT ? Optional.of(p99Ms < P99_AT_HALF_MAXIMUM_MS)
                    : Optional.empty();
        }

        Map<String, Object> toMap() {
            Map<String, Object> target = new LinkedHashMap<>();
            target.put("percentOfMaximum", HALF_MAXIMUM_PERCENT);
            target.put("p99MsBelow", P99_AT_HALF_MAXIMUM_MS);
            target.put("met", met().orElse(null));
            return Map.of("p99AtHalfMaximum", target);
        }

        String text() {
            return String.format(java.util.Locale.ROOT, "p99 from the scheduled time at %s%% of the maximum: %.2f ms "
                            + "(backend target at %s%%: below %s ms%s)", Result.round(percentOfMaximum), p99Ms,
                    Result.round(HALF_MAXIMUM_PERCENT), Result.round(P99_AT_HALF_MAXIMUM_MS),
                    met().map(ok -> ok ? ": met" : ": NOT met").orElse("; measure with --rate 50% to check it"));
        }
    }

    /** Where one side of a comparison measures. */
    private int failover(AccessMode accessMode) throws Exception {
        Side tmr = Side.fromDemo(target.demo, "tmr");
        FailoverBench.Result r = FailoverBench.run(FailoverBench.nodes(target.demo), failover, clients, holdHandles,
                tmr.firm(), tmr.product(), accessMode, System.err);
        long failed = r.roundsNotRecovered();
        long errors = r.errors();
        int lost = r.heldLost();
        Map<String, Object> fields = failoverFields(failover, clients, r);
        String text = String.format("fail-over: %d round(s) of kill -9 of the active node, %d client(s) under load%n"
                        + "kill to first successful ACCESS: p50 %d ms, p95 %d ms, max %d ms (target p95 at most 2000 ms)"
                        + "%s%n"
                        + "load: %,d pairs, %,d error(s) %s, longest stall %d ms%n"
                        + "held handles: %,d held, %,d lost%s%n"
                        + "restarted (not the demo's children, stop them yourself): %s",
                failover, clients, r.takeoverPercentile(50), r.takeoverPercentile(95), r.takeoverPercentile(100),
                failed > 0 ? "; " + failed + " round(s) did not recover" : "",
                r.pairs(), errors, r.errorsByCode(), r.maxStallMillis(),
                r.held() == null ? 0 : r.held().opened(), lost, r.held() == null || r.held().lost() == 0 ? ""
                        : " (by code, -1 not checked in time: " + r.held().lostByCode() + ")",
                String.join(", ", r.restarted()));
        new Output(json, System.out, System.err).result(text, fields);
        return failed == 0 && errors == 0 && lost == 0 ? Output.OK : Output.CM_ERROR;
    }

    /**
     * The fail-over's JSON fields. {@code heldLost} counts the handles the check found gone and those never opened;
     * {@code heldLostByCode} says why the check counted each (the answer's CodeMeter error, -1 for a handle the check
     * could not reach within its bound: not shown gone, not shown kept).
     */
    static Map<String, Object> failoverFields(int rounds, int clients, FailoverBench.Result r) {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("rounds", rounds);
        fields.put("clients", clients);
        fields.put("takeoverMillis", r.takeoverMillis());
        fields.put("takeoverP50Ms", r.takeoverPercentile(50));
        fields.put("takeoverP95Ms", r.takeoverPercentile(95));
        fields.put("takeoverMaxMs", r.takeoverPercentile(100));
        fields.put("roundsNotRecovered", r.roundsNotRecovered());
        fields.put("pairs", r.pairs());
        fields.put("errors", r.errors());
        fields.put("errorsByCode", r.errorsByCode());
        fields.put("maxStallMs", r.maxStallMillis());
        fields.put("heldHandles", r.held() == null ? 0 : r.held().opened());
        fields.put("heldLost", r.heldLost());
        if (r.held() != null) {
            fields.put("heldLostByCode", byCode(r.held().lostByCode()));
        }
        if (r.held() != null && r.held().notOpened() > 0) {
            // Counted in heldLost too; said apart, with why, so that a run that could not open them is not read as
            // a take-over that lost them.
            fields.put("heldNotOpened", r.held().notOpened());
            fields.put("heldOpenErrorsByCode", byCode(r.held().openErrors()));
        }
        fields.put("restarted", r.restarted());
        return fields;
    }

    /** Counts by CodeMeter error number, keyed by the number as text (JSON object keys). */
    static Map<String, Long> byCode(Map<Integer, Long> counts) {
        Map<String, Long> byCode = new LinkedHashMap<>();
        counts.forEach((code, count) -> byCode.put(String.valueOf(code), count));
        return byCode;
    }

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
    /**
     * Measures {@code tmr}, then {@code direct}, {@link #rounds} times in turn. On a shared machine the speed a
     * process gets drifts over minutes; measuring the two in turn, each round's pair close together in time, and
     * taking the median of the rounds' ratios keeps one slow minute from deciding the comparison.
     */
    private int compare(Side tmr, Side direct, AccessMode accessMode, CpuMeter cpu) throws InterruptedException {
        System.err.println("tmr bench: TMR " + tmr.describe() + ", then direct " + direct.describe()
                + (rounds > 1 ? ", " + rounds + " rounds in turn" : ""));
        Double pairsPerSecond = pace == null ? null : pace.pairsPerSecond();
        List<Map<String, Object>> roundFields = new ArrayList<>();
        List<Targets> measured = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        for (int round = 1; round <= rounds; round++) {
            Result viaTmr = run(tmr.servers(), tmr.firm(), tmr.product(), accessMode, cpu, pairsPerSecond);
            Result viaDirect = run(direct.servers(), direct.firm(), direct.product(), accessMode, cpu,
                    pairsPerSecond);
            Map<String, Object> fields = new LinkedHashMap<>();
            Map<String, Object> tmrFields = new LinkedHashMap<>(tmr.describe());
            tmrFields.putAll(viaTmr.toMap());
            Map<String, Object> directFields = new LinkedHashMap<>(direct.describe());
            directFields.putAll(viaDirect.toMap());
            fields.put("tmr", tmrFields);
            fields.put("direct", directFields);
            Targets targets = Targets.of(viaTmr, viaDirect);
            measured.add(targets);
            String both = viaTmr.text("TMR node " + String.join(",", tmr.servers()), false) + "\n"
                    + viaDirect.text("direct " + String.join(",", direct.servers()), false) + "\n";
            if (rounds == 1) {
                fields.putAll(targets.toMap());
                new Output(json, System.out, System.err).result(both + targets.text(), fields);
                return Output.OK;
            }
            fields.put("ratio", Result.round(targets.pairsRatio()));
            fields.put("p50Ratio", Result.round(targets.p50Ratio()));
            roundFields.add(fields);
            text.append(String.format(java.util.Locale.ROOT, "round %d of %d:%n", round, rounds)).append(both)
                    .append(String.format(java.util.Locale.ROOT, "round %d: TMR/direct pairs/s %.2f, p50 %.2f×%n",
                            round, targets.pairsRatio(), targets.p50Ratio()));
        }
        Targets median = Targets.median(measured);
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("rounds", roundFields);
        fields.putAll(median.toMap());
        text.append(String.format(java.util.Locale.ROOT, "the median of %d rounds:%n", rounds)).append(median.text());
        new Output(json, System.out, System.err).result(text.toString(), fields);
        return Output.OK;
    }

    /**
     * The two ratios of a comparison, in one run, against DESIGN §8's targets: each target holds for one
     * client count, so a run with another count reports its ratio without a verdict; both are closed-loop
     * targets, so an open-loop run ({@code --rate}, where both sides get the same pairs/s) has no verdict either.
     *
     * @param p50Ratio   TMR pair p50 / direct pair p50 (0 when direct has none)
     * @param pairsRatio TMR pairs/s / direct pairs/s (0 when direct has none)
     */
    record Targets(int clients, double p50Ratio, double pairsRatio, boolean closedLoop) {

        Targets(int clients, double p50Ratio, double pairsRatio) {
            this(clients, p50Ratio, pairsRatio, true);
        }

        /**
         * The median of each ratio over rounds of one comparison, each taken on its own (for an even count, the mean
         * of the middle two). A round without a latency ratio (a side answered nothing: 0) counts as the worst
         * latency, not the best; if that is the median, the median is 0 too (not met).
         */
        static Targets median(List<Targets> rounds) {
            Targets first = rounds.get(0);
            double p50 = median(rounds.stream().mapToDouble(t -> t.p50Ratio() > 0 ? t.p50Ratio()
                    : Double.POSITIVE_INFINITY).toArray());
            return new Targets(first.clients(), Double.isInfinite(p50) ? 0 : p50,
                    median(rounds.stream().mapToDouble(Targets::pairsRatio).toArray()), first.closedLoop());
        }

        private static double median(double[] values) {
            double[] sorted = values.clone();
            java.util.Arrays.sort(sorted);
            int middle = sorted.length / 2;
            return sorted.length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
        }

        static Targets of(Result tmr, Result direct) {
            double p50 = direct.ms(50) == 0 ? 0 : tmr.ms(50) / direct.ms(50);
            double pairs = direct.pairsPerSecond() == 0 ? 0 : tmr.pairsPerSecond() / direct.pairsPerSecond();
            return new Targets(tmr.clients(), p50, pairs, tmr.figures().pacing() == null);
        }

        /** Whether the latency target is met; empty when this run's client count is not the target's. */
        Optional<Boolean> latencyMet() {
            return closedLoop && clients == LATENCY_TARGET_CLIENTS
                    ? Optional.of(p50Ratio > 0 && p50Ratio <= P50_RATIO_TARGET) : Optional.empty();
        }

        /** Whether the throughput target is met; empty when this run's client count is not the target's. */
        Optional<Boolean> throughputMet() {
            return closedLoop && clients == THROUGHPUT_TARGET_CLIENTS
                    ? Optional.of(pairsRatio >= PAIRS_RATIO_TARGET) : Optional.empty();
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

        private String verdict(Optional<Boolean> met, int forClients) {
            return met.map(ok -> ok ? ": met" : ": NOT met").orElse(closedLoop
                    ? "; measure with --clients " + forClients + " to check it"
                    : "; a closed-loop target: measure without --rate to check it");
        }
    }

    private Result run(List<String> addresses, long firmCode, long productCode, AccessMode accessMode, CpuMeter cpu,
                       Double rate) throws InterruptedException {
        List<TmrClient> connections = new ArrayList<>();
        try {
            for (int i = 0; i < clients; i++) {
                connections.add(TmrClient.connect(TmrClientOptions.builder()
                        .addresses(addresses.toArray(String[]::new)).clientName("tmr-bench-" + i)
                        .requestTimeout(REQUEST_TIMEOUT).build()));
            }
        } catch (RuntimeException e) {
            connections.forEach(TmrClient::close);
            throw e;
        }
        HeldHandles held = null;
        if (holdHandles > 0) {
            try {
                held = HeldHandles.open(connections, firmCode, productCode, accessMode, holdHandles);
            } catch (InterruptedException | RuntimeException e) {
                connections.forEach(TmrClient::close);
                throw e;
            }
        }
        WarmUp.Outcome warmedUp = null;
        if (fixedWarmup == null && warmed.add(List.copyOf(addresses))) {
            try {
                warmedUp = warmUp(connections, firmCode, productCode, accessMode);
            } catch (InterruptedException | RuntimeException e) {
                connections.forEach(TmrClient::close);
                throw e;
            }
        }
        // Times start once every client is connected: connecting is neither warm-up nor measured.
        long start = System.nanoTime();
        // With --warmup auto an open loop first runs OPEN_LOOP_SETTLE at its rate, unmeasured: the auto warm-up is
        // closed-loop, and the open loop's own first seconds (its threads starting, its code compiled) delayed sends
        // by 0.4 s, which the latency from the scheduled time counts as the server's.
        Duration unmeasured = unmeasured(fixedWarmup, rate);
        if (fixedWarmup == null && rate != null) {
            System.err.printf("tmr bench: the open loop runs %d s at its rate before it is measured%n",
                    OPEN_LOOP_SETTLE.toSeconds());
        }
        long measureFrom = start + unmeasured.toNanos();
        long end = measureFrom + duration.toNanos();
        Load load;
        List<Thread> threads;
        if (rate == null) {
            ClosedLoop closed = new ClosedLoop(Load.Clock.SYSTEM, clients, measureFrom, end);
            load = closed;
            threads = workers(closed, connections, firmCode, productCode, accessMode, "");
        } else {
            OpenLoop open = new OpenLoop(Load.Clock.SYSTEM, rate, clients, outstandingPerClient(), start, measureFrom,
                    end);
            load = open;
            threads = List.of(pacer(open, connections, firmCode, productCode, accessMode));
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
                long count = load.pairsSoFar();
                System.err.printf("tmr bench: %,d pairs, %,d in the last second, %d error(s)%s%n", count,
                        count - lastPairs, load.errorsSoFar(), load.progress(System.nanoTime()));
                lastPairs = count;
                nextReport += TimeUnit.SECONDS.toNanos(1);
            }
        }
        ProcessCpu.Usage cpuUsage = cpu.wanted() ? cpu.between(cpuBefore, cpu.sample()) : null;
        long joinBy = join(threads);
        if (load instanceof OpenLoop open && !open.awaitAnswers(joinBy)) {
            System.err.println("tmr bench: pairs still unanswered after their timeouts count with their age now");
        }
        long stopped = System.nanoTime();
        // Taken before the clients close: closing fails what is still in flight, an error the bench made itself.
        Load.Figures figures = load.figures(stopped);
        HeldHandles.Outcome kept = held == null ? null : held.checkAndRelease();
        connections.forEach(TmrClient::close);
        return new Result(figures, duration, clients, cpu.wanted(), cpuUsage, kept, warmedUp);
    }

    /**
     * The unmeasured start of a run's load: {@code --warmup}'s duration; with auto (null), {@link #OPEN_LOOP_SETTLE}
     * for an open loop ({@code rate} not null) and nothing for a closed one (the auto warm-up ran before).
     */
    static Duration unmeasured(Duration fixedWarmup, Double rate) {
        return fixedWarmup != null ? fixedWarmup : rate != null ? OPEN_LOOP_SETTLE : Duration.ZERO;
    }

    /**
     * {@code --warmup auto}: the clients' closed loop, unmeasured, until its rate settles ({@link WarmUp}), with a
     * line a second on stderr.
     */
    private WarmUp.Outcome warmUp(List<TmrClient> connections, long firmCode, long productCode, AccessMode accessMode)
            throws InterruptedException {
        long start = System.nanoTime();
        ClosedLoop load = new ClosedLoop(Load.Clock.SYSTEM, clients, start, start + WarmUp.MAX.toNanos());
        List<Thread> threads = workers(load, connections, firmCode, productCode, accessMode, "-warmup");
        threads.forEach(Thread::start);
        WarmUp warm = new WarmUp();
        try {
            // Pairs answered without an error: a server that refuses every pair has no rate to settle.
            long succeeded = 0;
            long next = start;
            while (!warm.done()) {
                next += TimeUnit.SECONDS.toNanos(1);
                Load.Clock.SYSTEM.sleepUntil(next);
                // A failed pair counts as an error a moment before it counts as a pair (ClosedLoop), so the pairs
                // are read first: every failed pair among them has its error counted by the time the errors are read.
                // (Read the other way round, a pair failing between the two reads counted as one answered without
                // an error, and a refusing server's warm-up did not end after IDLE seconds.) Never below 0.
                long pairs = load.pairsSoFar();
                long errors = load.errorsSoFar();
                long now = Math.max(succeeded, pairs - errors);
                warm.second(now - succeeded);
                System.err.printf("tmr bench: warming up (until the rate settles), %,d pairs in the last second, "
                        + "%d error(s) so far%n", now - succeeded, errors);
                succeeded = now;
            }
        } finally {
            load.stop(System.nanoTime());
            join(threads);
        }
        return warm.outcome();
    }

    /**
     * The workers of {@code load}: each runs ACCESS+RELEASE pairs on its client's connection, one after the other;
     * their threads are named {@code tmr-bench-CLIENT} and {@code suffix}.
     */
    private List<Thread> workers(ClosedLoop load, List<TmrClient> connections, long firmCode, long productCode,
                                 AccessMode accessMode, String suffix) {
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < connections.size(); i++) {
            TmrClient client = connections.get(i);
            Load.Pair pair = () -> {
                try (LicenseHandle handle = client.access(firmCode, productCode, 0, accessMode)) {
                    handle.handleId();
                }
            };
            int slot = i;
            Thread thread = new Thread(() -> load.work(slot, pair), "tmr-bench-" + i + suffix);
            thread.setDaemon(true);
            threads.add(thread);
        }
        return threads;
    }

    /**
     * The open loop's pacing thread ({@code tmr-bench-pacer}): it starts each connection's pairs at their due time
     * with the SDK's asynchronous ACCESS, and the RELEASE follows on the client's I/O thread when the grant comes.
     */
    private static Thread pacer(OpenLoop load, List<TmrClient> connections, long firmCode, long productCode,
                                AccessMode accessMode) {
        List<OpenLoop.AsyncPair> pairs = new ArrayList<>();
        for (TmrClient client : connections) {
            pairs.add(() -> client.accessAsync(firmCode, productCode, 0, accessMode)
                    .thenCompose(LicenseHandle::closeAsync));
        }
        Thread thread = new Thread(() -> {
            try {
                load.run(pairs);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "tmr-bench-pacer");
        thread.setDaemon(true);
        return thread;
    }

    /**
     * A pair in flight at the end is two requests, each answered or failed within the request timeout and the SDK's
     * second of slack: one bound for all the threads and the pairs in flight, returned; one given up on counts with
     * its age.
     */
    private static long join(List<Thread> threads) throws InterruptedException {
        long joinBy = System.nanoTime() + 2 * (REQUEST_TIMEOUT.toNanos() + TimeUnit.SECONDS.toNanos(1));
        for (Thread thread : threads) {
            TimeUnit.NANOSECONDS.timedJoin(thread, Math.max(1, joinBy - System.nanoTime()));
        }
        return joinBy;
    }

    /**
     * One phase's figures.
     *
     * @param cpuWanted whether CPU per pair is reported ({@code --demo})
     * @param cpu       the demo processes' CPU over the measured time; null when not wanted or not available
     */
    record Result(Load.Figures figures, Duration duration, int clients, boolean cpuWanted, ProcessCpu.Usage cpu,
                  HeldHandles.Outcome held, WarmUp.Outcome warmedUp) {

        long pairs() {
            return figures.pairs();
        }

        double pairsPerSecond() {
            return pairs() / (duration.toNanos() / 1e9);
        }

        double ms(double percentile) {
            Histogram latency = figures.latency();
            return latency.getTotalCount() == 0 ? 0 : latency.getValueAtPercentile(percentile) / 1e6;
        }

        /** The pacing thread's lateness at {@code percentile} (100: the longest), in ms; 0 without an open loop. */
        double pacerLateMs(double percentile) {
            Histogram late = figures.pacing() == null ? null : figures.pacing().pacerLate();
            return late == null || late.getTotalCount() == 0 ? 0
                    : (percentile >= 100 ? late.getMaxValue() : late.getValueAtPercentile(percentile)) / 1e6;
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("clients", clients);
            Load.Pacing pacing = figures.pacing();
            if (pacing != null) {
                m.put("targetRate", round(pacing.targetRate()));
                m.put("outstandingPerClient", pacing.outstanding());
                m.put("scheduled", pacing.scheduled());
                m.put("unsent", pacing.unsent());
                m.put("maxSendLagMs", round(pacing.maxLagNanos() / 1e6));
                m.put("pacerLateP99Ms", round(pacerLateMs(99)));
                m.put("pacerLateMaxMs", round(pacerLateMs(100)));
            }
            m.put("pairs", pairs());
            m.put("pairsPerSecond", Math.round(pairsPerSecond()));
            m.put("p50Ms", round(ms(50)));
            m.put("p99Ms", round(ms(99)));
            m.put("p999Ms", round(ms(99.9)));
            m.put("errors", figures.errorsByCode().values().stream().mapToLong(Long::longValue).sum());
            m.put("errorsByCode", byCode(figures.errorsByCode()));
            m.put("maxStallMs", round(figures.maxNanos() / 1e6));
            if (warmedUp != null) {
                m.put("warmUp", warmedUp.toMap());
            }
            if (held != null) {
                m.put("heldHandles", held.opened());
                m.put("heldLost", held.lost());
                m.put("heldLostByCode", byCode(held.lostByCode()));
                if (held.notOpened() > 0) {
                    m.put("heldNotOpened", held.notOpened());
                    m.put("heldOpenErrorsByCode", byCode(held.openErrors()));
                }
            }
            if (cpuWanted) {
                if (cpu == null) {
                    m.put("cpuMsPerPair", ProcessCpu.NOT_AVAILABLE);
                } else {
                    m.put("cpuMsPerPair", cpu.perPair(pairs()));
                    m.put("cpuMsPerPairAll", cpu.allPerPair(pairs()).map(v -> (Object) round(v))
                            .orElse(ProcessCpu.NOT_AVAILABLE));
                    m.put("cpuMs", cpu.total());
                    m.put("clockTicksPerSecond", cpu.clockTicksPerSecond());
                }
            }
            return m;
        }

        String text(String label, boolean echo) {
            Load.Pacing pacing = figures.pacing();
            String requests = echo ? String.format(" (%,.0f requests/s)", pairsPerSecond() * 2) : "";
            String lines;
            if (pacing == null) {
                lines = String.format("%s: %,d ACCESS+RELEASE pairs in %s with %d clients = %,.0f pairs/s%s%n"
                                + "latency per pair: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; longest stall %.1f ms",
                        label, pairs(), duration, clients, pairsPerSecond(), requests, ms(50), ms(99), ms(99.9),
                        figures.maxNanos() / 1e6);
            } else {
                lines = String.format("%s: %,d ACCESS+RELEASE pairs in %s with %d clients = %,.0f pairs/s%s of "
                                + "%,.0f/s asked (open loop, at most %d in flight per client)%n"
                                + "latency per pair from its scheduled time: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; "
                                + "longest %.1f ms%n"
                                + "schedule: %,d of %,d pairs not sent in the time (counted in the latency with their "
                                + "age at the end); a pair sent at most %.1f ms late%n"
                                + "the bench's own delay (its pacing thread woke late, counted in the latency): "
                                + "p99 %.2f ms, at most %.1f ms",
                        label, pairs(), duration, clients, pairsPerSecond(), requests, pacing.targetRate(),
                        pacing.outstanding(), ms(50), ms(99), ms(99.9), figures.maxNanos() / 1e6, pacing.unsent(),
                        pacing.scheduled(), pacing.maxLagNanos() / 1e6, pacerLateMs(99), pacerLateMs(100));
            }
            return (warmedUp == null ? "" : warmedUp.text() + String.format("%n")) + lines
                    + String.format("%nerrors: %s", figures.errorsByCode().isEmpty() ? "none"
                    : figures.errorsByCode())
                    + (cpuWanted ? String.format("%nCPU per pair (utime+stime from /proc over the measured time): %s",
                    cpu == null ? ProcessCpu.NOT_AVAILABLE + " (needs Linux /proc)" : cpu.text(pairs())) : "")
                    + (held == null ? "" : String.format("%nheld handles: %,d opened before the load, %,d lost%s%s",
                    held.opened(), held.lost(), held.lost() == 0 ? "" : " " + held.lostByCode(),
                    held.notOpened() == 0 ? "" : String.format("; %,d could not be opened %s", held.notOpened(),
                            held.openErrors())));
        }

        static double round(double value) {
            return Math.round(value * 1000) / 1000.0;
        }
    }
}
