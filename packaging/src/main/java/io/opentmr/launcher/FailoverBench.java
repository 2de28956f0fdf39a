package io.opentmr.launcher;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.opentmr.client.CmException;
import io.opentmr.client.TmrClient;
import io.opentmr.client.HelloProbe;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Message;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.ProcessBuilder.Redirect;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code tmr bench --demo DIR --failover N}: N rounds of kill -9 of the active node of a running twin demo, under a
 * closed-loop ACCESS+RELEASE load and with long-lived handles held, each round restarting the killed node (it comes
 * back as the standby) before the next. Measures, per round, the time from the kill to the first successful ACCESS
 * of a client that was connected to the killed node, and at the end whether every held handle is still there.
 */
final class FailoverBench {

    /** How long a take-over may take before the round counts as failed. */
    static final Duration TAKEOVER_BOUND = Duration.ofSeconds(60);
    /** How long a restarted node may take to listen again and answer as the standby. */
    static final Duration RESTART_BOUND = Duration.ofSeconds(90);
    /**
     * After a restart: how long the new standby may take to catch up with the active's journal (the active's
     * {@code /tmr/status} says {@code in_sync} with no record lacking) before the next kill goes ahead anyway.
     */
    static final Duration SYNC_BOUND = Duration.ofSeconds(120);
    /** After the standby caught up: a pause for it to fold what it got into its warm tables. */
    static final Duration SETTLE = Duration.ofSeconds(2);

    /** A node of the demo: where it listens, its process now, and how to start it again. */
    static final class Node {
        final String name;
        final InetSocketAddress address;
        final List<String> command;
        final Path log;
        /** Its management HTTP base ({@code http://HOST:PORT}), or empty when the demo has none. */
        final String admin;
        long pid;

        Node(String name, InetSocketAddress address, long pid, List<String> command, Path log, String admin) {
            this.name = name;
            this.address = address;
            this.pid = pid;
            this.command = command;
            this.log = log;
            this.admin = admin;
        }
    }

    /**
     * @param takeoverMillis per round, kill to first successful ACCESS; -1 for a round that did not recover
     * @param errorsByCode   errors the load clients saw, by CodeMeter error number (-1: not a CodeMeter error)
     * @param maxStallMillis the longest a load client's ACCESS+RELEASE took
     */
    record Result(List<Long> takeoverMillis, long pairs, Map<Integer, Long> errorsByCode, long maxStallMillis,
                  HeldHandles.Outcome held, List<String> restarted) {

        /** p-th percentile of the rounds that recovered ({@link #percentile}). */
        long takeoverPercentile(double p) {
            return percentile(takeoverMillis, p);
        }

        long roundsNotRecovered() {
            return takeoverMillis.stream().filter(m -> m < 0).count();
        }

        long errors() {
            return errorsByCode.values().stream().mapToLong(Long::longValue).sum();
        }

        /** Held handles the final check found gone or could not reach, and those never opened. */
        int heldLost() {
            return held == null ? 0 : held.lost() + held.notOpened();
        }
    }

    private FailoverBench() {
    }

    /** The twin's nodes from DIR/demo.json (they must have been started by a demo of this version). */
    static List<Node> nodes(Path demoDir) throws IOException {
        JsonNode manifest = new ObjectMapper().readTree(demoDir.resolve(DemoFiles.MANIFEST_FILE).toFile());
        List<Node> nodes = new ArrayList<>();
        for (JsonNode component : manifest.path("components")) {
            String role = component.path("role").asText();
            if (!role.equals("active") && !role.equals("standby")) {
                continue;
            }
            List<String> command = new ArrayList<>();
            component.path("command").forEach(part -> command.add(part.asText()));
            if (command.isEmpty()) {
                throw new IllegalArgumentException(demoDir.resolve(DemoFiles.MANIFEST_FILE) + " has no command for "
                        + component.path("name").asText() + ": restart the demo with this version of tmr");
            }
            InetSocketAddress address = TmrClientOptions.parseAddress(component.path("address").asText());
            nodes.add(new Node(component.path("name").asText(),
                    new InetSocketAddress(address.getHostString(), address.getPort()),
                    component.path("pid").asLong(), command, Path.of(component.path("log").asText()),
                    component.path("admin").asText("")));
        }
        if (nodes.size() != 2) {
            throw new IllegalArgumentException("--failover needs the twin: " + demoDir + " lists " + nodes.size()
                    + " node(s) (run tmr demo without --nodes 1)");
        }
        return nodes;
    }

    static Result run(List<Node> nodes, int rounds, int clients, int hold, long firm, long product, AccessMode mode,
                      PrintStream progress) throws Exception {
        InetSocketAddress[] both = nodes.stream().map(n -> n.address).toArray(InetSocketAddress[]::new);
        TmrClientOptions options = TmrClientOptions.builder().addresses(both).clientName("tmr-bench-failover")
                .requestTimeout(Duration.ofSeconds(30)).build();
        List<TmrClient> connections = new ArrayList<>();
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong pairs = new AtomicLong();
        AtomicLong maxStall = new AtomicLong();
        Map<Integer, AtomicLong> errors = new ConcurrentHashMap<>();
        List<Thread> load = new ArrayList<>();
        List<Long> takeovers = new ArrayList<>();
        List<String> restarted = new ArrayList<>();
        HeldHandles held = null;
        try {
            for (int c = 0; c < Math.max(1, clients); c++) {
                connections.add(TmrClient.connect(options));
            }
            if (hold > 0) {
                held = HeldHandles.open(connections, firm, product, mode, hold);
            }
            for (int c = 0; c < clients; c++) {
                TmrClient client = connections.get(c);
                Thread thread = new Thread(() -> {
                    while (!stop.get()) {
                        long start = System.nanoTime();
                        try {
                            client.access(firm, product, 0, mode).close();
                            pairs.incrementAndGet();
                        } catch (CmException e) {
                            errors.computeIfAbsent(e.code(), k -> new AtomicLong()).incrementAndGet();
                        } catch (RuntimeException e) {
                            errors.computeIfAbsent(-1, k -> new AtomicLong()).incrementAndGet();
                        }
                        maxStall.accumulateAndGet((System.nanoTime() - start) / 1_000_000, Math::max);
                    }
                }, "tmr-bench-failover-" + c);
                thread.setDaemon(true);
                thread.start();
                load.add(thread);
            }
            for (int round = 1; round <= rounds; round++) {
                Node active = serving(nodes);
                try (TmrClient prober = TmrClient.connect(options)) {
                    // The node serves, but a license may still be re-syncing a backend it lost (130): ask again.
                    if (firstAccess(prober, firm, product, mode, System.nanoTime()) < 0) {
                        throw new IllegalStateException("no ACCESS succeeded on " + active.name + " within "
                                + TAKEOVER_BOUND.toSeconds() + " s before round " + round);
                    }
                    ProcessHandle victim = ProcessHandle.of(active.pid).orElseThrow(() ->
                            new IllegalStateException(active.name + " (pid " + active.pid + ") is not running"));
                    long killed = System.nanoTime();
                    victim.destroyForcibly();
                    long tookMillis = firstAccess(prober, firm, product, mode, killed);
                    takeovers.add(tookMillis);
                    progress.printf("tmr bench: round %d: kill -9 of %s (pid %d), next ACCESS after %s%n", round,
                            active.name, active.pid, tookMillis < 0 ? "(none within " + TAKEOVER_BOUND.toSeconds()
                                    + " s)" : tookMillis + " ms");
                    victim.onExit().get(10, TimeUnit.SECONDS);
                }
                restart(active);
                restarted.add(active.name + " pid " + active.pid);
                progress.printf("tmr bench: %s restarted (pid %d), standby again%n", active.name, active.pid);
                if (round < rounds) {
                    progress.printf("tmr bench: %s%n", awaitInSync(nodes));
                    Thread.sleep(SETTLE.toMillis());
                }
            }
        } finally {
            stop.set(true);
            for (Thread thread : load) {
                thread.join(TimeUnit.SECONDS.toMillis(40));
            }
        }
        HeldHandles.Outcome outcome = held == null ? null : held.checkAndRelease();
        connections.forEach(TmrClient::close);
        Map<Integer, Long> errorCounts = new TreeMap<>();
        errors.forEach((code, count) -> errorCounts.put(code, count.get()));
        return new Result(takeovers, pairs.get(), errorCounts, maxStall.get(), outcome, restarted);
    }

    /** The node that serves now (HELLO_OK), waiting a bounded time for one. */
    private static Node serving(List<Node> nodes) throws InterruptedException {
        long deadline = System.nanoTime() + TAKEOVER_BOUND.toNanos();
        while (System.nanoTime() - deadline < 0) {
            for (Node node : nodes) {
                try {
                    if (HelloProbe.hello(node.address, Duration.ofSeconds(2)) instanceof Message.HelloOk) {
                        return node;
                    }
                } catch (IOException e) {
                    // Not listening (yet): the other one, or again later.
                }
            }
            Thread.sleep(100);
        }
        throw new IllegalStateException("no node of the twin serves after " + TAKEOVER_BOUND.toSeconds() + " s");
    }

    /** Milliseconds from {@code killed} to the first ACCESS that succeeded, or -1 after {@link #TAKEOVER_BOUND}. */
    private static long firstAccess(TmrClient prober, long firm, long product, AccessMode mode, long killed) {
        while (System.nanoTime() - killed < TAKEOVER_BOUND.toNanos()) {
            try {
                prober.access(firm, product, 0, mode).close();
                return (System.nanoTime() - killed) / 1_000_000;
            } catch (CmException e) {
                // The SDK gave up one fail-over round (its timeout), or a license is not usable yet (130): ask
                // again shortly, the clock keeps running.
                java.util.concurrent.locks.LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(20));
            }
        }
        return -1;
    }

    /**
     * Waits (at most {@link #SYNC_BOUND}) until a node reports on its {@code /tmr/status} that it is the active one
     * and that its standby has every record of its journal; says how long that took, or that it did not happen.
     */
    static String awaitInSync(List<Node> nodes) throws InterruptedException {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        ObjectMapper json = new ObjectMapper();
        long start = System.nanoTime();
        String last = "no node answered on its management port";
        while (System.nanoTime() - start < SYNC_BOUND.toNanos()) {
            for (Node node : nodes) {
                if (node.admin.isEmpty()) {
                    return "no management address in demo.json: not waiting for the standby to catch up";
                }
                try {
                    HttpResponse<String> response = http.send(HttpRequest.newBuilder(
                                    URI.create(node.admin + "/tmr/status")).timeout(Duration.ofSeconds(2)).build(),
                            HttpResponse.BodyHandlers.ofString());
                    JsonNode status = json.readTree(response.body());
                    if (!"active".equals(status.path("role").asText())) {
                        continue;
                    }
                    JsonNode replication = status.path("replication");
                    last = node.name + " replication " + replication.path("state").asText() + ", "
                            + replication.path("lagRecords").asText() + " record(s) behind";
                    if ("in_sync".equals(replication.path("state").asText())
                            && replication.path("lagRecords").asLong(-1) == 0) {
                        return "standby of " + node.name + " in sync after "
                                + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) + " ms";
                    }
                } catch (IOException e) {
                    // Not listening (yet), or a half-written answer: the other node, or again later.
                }
            }
            Thread.sleep(200);
        }
        return "the standby did not catch up within " + SYNC_BOUND.toSeconds() + " s (" + last
                + "); the next round goes ahead";
    }

    /** Starts the node again as the demo did, appending to its log; waits until it answers (as the standby). */
    private static void restart(Node node) throws IOException, InterruptedException {
        Process process = new ProcessBuilder(node.command).redirectErrorStream(true)
                .redirectOutput(Redirect.appendTo(node.log.toFile())).start();
        node.pid = process.pid();
        long deadline = System.nanoTime() + RESTART_BOUND.toNanos();
        while (System.nanoTime() - deadline < 0 && process.isAlive()) {
            try {
                HelloProbe.hello(node.address, Duration.ofSeconds(2));
                return;
            } catch (IOException e) {
                Thread.sleep(200);
            }
        }
        throw new IllegalStateException(node.name + " did not listen again within " + RESTART_BOUND.toSeconds()
                + " s; see " + node.log);
    }

    /** p-th percentile (nearest rank) of the rounds that recovered. */
    static long percentile(List<Long> millis, double p) {
        List<Long> sorted = new ArrayList<>(millis.stream().filter(m -> m >= 0).toList());
        if (sorted.isEmpty()) {
            return -1;
        }
        Collections.sort(sorted);
        int rank = (int) Math.ceil(p / 100.0 * sorted.size());
        return sorted.get(Math.max(0, rank - 1));
    }
}
