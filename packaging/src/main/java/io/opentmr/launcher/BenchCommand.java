package io.opentmr.launcher;

import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.protocol.AccessMode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure ACCESS+RELEASE pairs per second against a server, or the --echo ceiling.")
final class BenchCommand implements Callable<Integer> {

    static final class Target {
        @Option(names = "--server", split = ",", description = "HOST:PORT of the server (several: fail-over list).")
        List<String> servers;

        @Option(names = "--echo", description = "Measure the in-process echo server instead.")
        boolean echo;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Target target;

    @Option(names = "--firm", defaultValue = "0", description = "Firm code (not needed with --echo).")
    long firm;

    @Option(names = "--product", defaultValue = "0", description = "Product code (not needed with --echo).")
    long product;

    @Option(names = "--mode", defaultValue = "nouserlimit",
            description = "Access mode (default ${DEFAULT-VALUE}: measures the path, not the quantity).")
    String mode;

    @Option(names = "--clients", defaultValue = "16", description = "Concurrent clients (default ${DEFAULT-VALUE}).")
    int clients;

    @Option(names = "--duration", defaultValue = "10s", description = "How long to measure (default ${DEFAULT-VALUE}).")
    Duration duration;

    @Option(names = "--warmup", defaultValue = "2s", description = "Unmeasured warm-up (default ${DEFAULT-VALUE}).")
    Duration warmup;

    @Option(names = "--json", description = "One JSON object on stdout.")
    boolean json;

    @Override
    public Integer call() throws Exception {
        if (clients < 1 || clients > 4096) {
            throw new IllegalArgumentException("--clients must be 1..4096");
        }
        if (!target.echo && (firm == 0 || product == 0)) {
            throw new IllegalArgumentException("--firm and --product name the product item to measure");
        }
        AccessMode accessMode = AccessMode.valueOf(mode.toUpperCase(java.util.Locale.ROOT));
        EchoServer echo = target.echo ? new EchoServer(1) : null;
        try {
            List<String> addresses = echo == null ? target.servers
                    : List.of("127.0.0.1:" + echo.address().getPort());
            Result result = run(addresses, echo == null ? firm : 1, echo == null ? product : 1, accessMode);
            Map<String, Object> fields = result.toMap();
            if (echo != null) {
                fields.put("requestsPerSecond", Math.round(result.pairsPerSecond() * 2));
            }
            new Output(json, System.out, System.err).result(result.text(echo != null), fields);
            return Output.OK;
        } finally {
            if (echo != null) {
                echo.close();
            }
        }
    }

    private Result run(List<String> addresses, long firmCode, long productCode, AccessMode accessMode)
            throws InterruptedException {
        Recorder latencies = new Recorder(TimeUnit.SECONDS.toNanos(60), 3);
        Map<Integer, AtomicLong> errors = new ConcurrentHashMap<>();
        AtomicLong pairs = new AtomicLong();
        AtomicLong maxStallNanos = new AtomicLong();
        AtomicLongArray pairStarted = new AtomicLongArray(clients);
        long start = System.nanoTime();
        long measureFrom = start + warmup.toNanos();
        long end = measureFrom + duration.toNanos();

        List<Thread> threads = new ArrayList<>();
        List<TmrClient> connections = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            TmrClient client = TmrClient.connect(TmrClientOptions.builder().addresses(addresses.toArray(String[]::new))
                    .clientName("tmr-bench-" + i).requestTimeout(Duration.ofSeconds(5)).build());
            connections.add(client);
            int slot = i;
            Thread thread = new Thread(() -> {
                while (true) {
                    long t0 = System.nanoTime();
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
        while (System.nanoTime() - end < 0) {
            Thread.sleep(Math.max(1, Math.min(1000, TimeUnit.NANOSECONDS.toMillis(end - System.nanoTime()))));
            long now = pairs.get();
            System.err.printf("tmr bench: %,d pairs, %,d in the last second, %d error(s)%n", now, now - lastPairs,
                    errors.values().stream().mapToLong(AtomicLong::get).sum());
            lastPairs = now;
        }
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
        return new Result(pairs.get(), duration, total, byCode, maxStallNanos.get(), clients);
    }

    record Result(long pairs, Duration duration, Histogram latency, Map<Integer, Long> errorsByCode,
                  long maxStallNanos, int clients) {

        double pairsPerSecond() {
            return pairs / (duration.toNanos() / 1e9);
        }

        double ms(double percentile) {
            return latency.getTotalCount() == 0 ? 0 : latency.getValueAtPercentile(percentile) / 1e6;
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("clients", clients);
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
            return m;
        }

        String text(boolean echo) {
            return String.format("%s: %,d ACCESS+RELEASE pairs in %s with %d clients = %,.0f pairs/s%s%n"
                            + "latency per pair: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; longest stall %.1f ms%n"
                            + "errors: %s", echo ? "echo ceiling" : "server", pairs, duration, clients, pairsPerSecond(),
                    echo ? String.format(" (%,.0f requests/s)", pairsPerSecond() * 2) : "", ms(50), ms(99), ms(99.9),
                    maxStallNanos / 1e6, errorsByCode.isEmpty() ? "none" : errorsByCode);
        }

        private static double round(double value) {
            return Math.round(value * 1000) / 1000.0;
        }
    }
}
