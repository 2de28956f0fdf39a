package io.opentmr.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.opentmr.client.AdminClient;
import io.opentmr.client.HelloProbe;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.license.VendorState;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.Serial;
import java.io.IOException;
import java.lang.ProcessBuilder.Redirect;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * {@code tmr demo} (three backends, the twin) as processes, for tests that stop, kill, freeze and restart its
 * components: each component's pid, address, management URL, log and command from {@code demo.json}; a node is
 * restarted by this harness with the demo's command (the demo restarts nothing itself). {@link #close} stops the
 * demo and kills every process it or this harness started.
 */
final class TwinDemo implements AutoCloseable {

    static final long FIRM = 6_000_010;
    /** The demo's seat-limited TMR license: product 101, 10 seats. */
    static final long SEATS = 101;
    static final int QUANTITY = 10;
    static final List<String> HOSTS = List.of("127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.2.1", "127.0.2.2");
    static final List<String> BACKENDS = List.of("backend-1", "backend-2", "backend-3");
    static final List<String> NODES = List.of("node-a", "node-b");

    /** A component of the demo, its process now (the demo's child, or one this harness restarted). */
    static final class Component {
        final String name;
        final String address;
        final String admin;
        final List<String> command;
        final Path log;
        volatile long pid;

        Component(JsonNode json) {
            name = json.get("name").asText();
            address = json.get("address").asText();
            admin = json.get("admin").asText();
            pid = json.get("pid").asLong();
            log = Path.of(json.get("log").asText());
            List<String> parts = new ArrayList<>();
            json.path("command").forEach(part -> parts.add(part.asText()));
            command = List.copyOf(parts);
        }

        InetSocketAddress socketAddress() {
            InetSocketAddress parsed = TmrClientOptions.parseAddress(address);
            return new InetSocketAddress(parsed.getHostString(), parsed.getPort());
        }
    }

    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(2)).build();

    final Path home;
    final TmrProcess demo;
    final Map<String, Component> components = new LinkedHashMap<>();
    private final List<Process> restarted = new ArrayList<>();
    private final List<ClusterRelay> relays = new ArrayList<>();

    private TwinDemo(Path home, TmrProcess demo) {
        this.home = home;
        this.demo = demo;
    }

    /** Starts the demo in {@code dir} on ports free on all its addresses and waits until it is ready. */
    static TwinDemo start(Path dir) throws Exception {
        return start(dir, false);
    }

    /**
     * As {@link #start(Path)}; with {@code relayed}, the twins' cluster traffic passes through a {@link ClusterRelay}
     * in front of each node ({@link #part()}, {@link #heal()}): each relay listens on its node's cluster port, which
     * the twin dials, and the node binds another ({@code --cluster-bind-port}).
     */
    static TwinDemo start(Path dir, boolean relayed) throws Exception {
        List<Integer> ports = new ArrayList<>();
        while (ports.size() < (relayed ? 4 : 3)) {
            int candidate = portFreeOnEveryHost(-1);
            if (!ports.contains(candidate)) {
                ports.add(candidate);
            }
        }
        int port = ports.get(0);
        int clusterPort = ports.get(1);
        int managementPort = ports.get(2);
        Path home = dir.resolve("demo");
        List<String> args = new ArrayList<>(List.of("demo", "--dir", home.toString(), "--port", String.valueOf(port),
                "--cluster-port", String.valueOf(clusterPort), "--management-port", String.valueOf(managementPort),
                "--ready-timeout", "120s"));
        List<ClusterRelay> relays = new ArrayList<>();
        if (relayed) {
            int bindPort = ports.get(3);
            args.addAll(List.of("--cluster-bind-port", String.valueOf(bindPort)));
            for (String host : List.of(HOSTS.get(3), HOSTS.get(4))) {
                relays.add(ClusterRelay.start(new InetSocketAddress(host, clusterPort),
                        new InetSocketAddress(host, bindPort)));
            }
        }
        TmrProcess process;
        try {
            process = TmrProcess.start(dir.resolve("demo.out"), "Ctrl-C stops the demo", args.toArray(String[]::new));
        } catch (IOException | RuntimeException e) {
            relays.forEach(ClusterRelay::close);
            throw e;
        }
        TwinDemo demo = new TwinDemo(home, process);
        demo.relays.addAll(relays);
        try {
            process.awaitReady(Duration.ofSeconds(240));
            JsonNode manifest = new ObjectMapper().readTree(home.resolve("demo.json").toFile());
            manifest.get("components").forEach(c -> demo.components.put(c.get("name").asText(), new Component(c)));
            if (!demo.components.keySet().containsAll(NODES) || !demo.components.keySet().containsAll(BACKENDS)) {
                throw new AssertionError("the demo lists " + demo.components.keySet());
            }
            demo.await("node-a serves", Duration.ofSeconds(60), () -> demo.role("node-a").equals("active"));
        } catch (Throwable e) {
            demo.close();
            throw e;
        }
        return demo;
    }

    Component component(String name) {
        return components.get(name);
    }

    /** Both nodes' client addresses, the active one first. */
    InetSocketAddress[] nodeAddresses() {
        return NODES.stream().map(n -> component(n).socketAddress()).toArray(InetSocketAddress[]::new);
    }

    /** {@code active} (HELLO_OK), {@code standby} (NOT_ACTIVE), or {@code down} (no answer). */
    String role(String node) {
        try {
            Message answer = HelloProbe.hello(component(node).socketAddress(), Duration.ofSeconds(2));
            return answer instanceof Message.HelloOk ? "active" : answer instanceof Message.NotActive ? "standby"
                    : answer.type().name();
        } catch (IOException e) {
            return "down";
        }
    }

    /** SIGKILL, and the bounded wait for the process to be gone. */
    void kill(String name) throws Exception {
        ProcessHandle process = handle(name);
        process.destroyForcibly();
        process.onExit().get(10, TimeUnit.SECONDS);
    }

    /** SIGTERM, not waiting: the process stops in its own time ({@link #awaitExit}). */
    void sigterm(String name) {
        handle(name).destroy();
    }

    /** The exit code of the component's process, waiting at most {@code max} for it to end. */
    int awaitExit(String name, Duration max) throws Exception {
        long pid = component(name).pid;
        ProcessHandle.of(pid).ifPresent(process -> {
            try {
                process.onExit().get(max.toMillis(), TimeUnit.MILLISECONDS);
            } catch (Exception e) {
                throw new AssertionError(name + " (pid " + pid + ") still runs " + max.toSeconds() + " s later");
            }
        });
        for (Process own : restarted) {
            if (own.pid() == pid) {
                return own.exitValue();
            }
        }
        // A child of the demo: the demo logs its exit code.
        String exited = name + " (pid " + pid + ") exited";
        await(name + "'s exit in the demo's output", Duration.ofSeconds(10), () -> output().contains(exited));
        String line = output().lines().filter(l -> l.contains(exited)).findFirst().orElseThrow();
        java.util.regex.Matcher code = java.util.regex.Pattern.compile("code (-?\\d+)").matcher(line);
        return code.find() ? Integer.parseInt(code.group(1)) : Integer.MIN_VALUE;
    }

    /** Sends {@code signal} (STOP, CONT) with kill(1). */
    void signal(String name, String signal) throws Exception {
        Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(component(name).pid)).start();
        if (!kill.waitFor(10, TimeUnit.SECONDS) || kill.exitValue() != 0) {
            throw new AssertionError("kill -" + signal + " " + component(name).pid + " failed");
        }
    }

    boolean alive(String name) {
        return ProcessHandle.of(component(name).pid).map(ProcessHandle::isAlive).orElse(false);
    }

    /**
     * Follows a node that the demo started again because it exited to be restarted (exit code 75): takes its new pid
     * from the demo's output. False at once for a process this harness started, and when the demo reports a plain exit
     * or nothing within {@code max}.
     */
    boolean followRestart(String name, Duration max) throws Exception {
        long pid = component(name).pid;
        if (restarted.stream().anyMatch(own -> own.pid() == pid)) {
            return false;
        }
        java.util.regex.Pattern again = java.util.regex.Pattern.compile(java.util.regex.Pattern.quote(name + " (pid "
                + pid + ") exited with code ") + "\\d+ to be restarted; started it again \\(pid (\\d+)\\)");
        String plain = name + " (pid " + pid + ") exited with code ";
        long deadline = System.nanoTime() + max.toNanos();
        while (System.nanoTime() < deadline) {
            String said = output();
            java.util.regex.Matcher matched = again.matcher(said);
            if (matched.find()) {
                component(name).pid = Long.parseLong(matched.group(1));
                return true;
            }
            if (said.lines().anyMatch(line -> line.contains(plain) && !line.contains("to be restarted"))) {
                return false;
            }
            Thread.sleep(200);
        }
        return false;
    }

    /** Starts the component again with the demo's command, its output appended to its log; waits until it answers. */
    void restart(String name) throws Exception {
        Component component = component(name);
        Process process = new ProcessBuilder(component.command).redirectErrorStream(true)
                .redirectOutput(Redirect.appendTo(component.log.toFile())).start();
        restarted.add(process);
        component.pid = process.pid();
        await(name + " listens again", Duration.ofSeconds(90), () -> !role(name).equals("down")
                || !process.isAlive());
        if (!process.isAlive()) {
            throw new AssertionError(name + " exited at once after its restart:\n" + log(name));
        }
    }

    String log(String name) throws IOException {
        Path log = component(name).log;
        return Files.exists(log) ? Files.readString(log) : "(no log)";
    }

    String output() {
        try {
            return demo.output();
        } catch (IOException e) {
            return "(" + e + ")";
        }
    }

    /** GET of a management route as JSON (the demo's components allow loopback readers). */
    JsonNode get(String name, String path) throws IOException, InterruptedException {
        HttpResponse<String> response = HTTP.send(HttpRequest.newBuilder(URI.create(component(name).admin + path))
                .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 200) {
            throw new IOException(path + " on " + name + " answered " + response.statusCode() + ": "
                    + response.body());
        }
        return new ObjectMapper().readTree(response.body());
    }

    /** The handle ids (of {@code kind}: handle on a node, allocation on a backend) a component lists now. */
    Set<Long> handles(String name, String kind) throws IOException, InterruptedException {
        Set<Long> ids = new HashSet<>();
        for (JsonNode row : get(name, "/tmr/handles?limit=1000").get("handles")) {
            if (row.get("kind").asText().equals(kind)) {
                ids.add(Long.parseUnsignedLong(row.get("id").asText()));
            }
        }
        return ids;
    }

    /** Seats of the demo's seat-limited license that {@code backend} has allocated to the TMR node now. */
    int allocatedSeats(String backend) throws IOException, InterruptedException {
        return allocatedSeats(backend, SEATS);
    }

    /** Seats of the TMR license of {@code product} that {@code backend} has allocated to the TMR node now. */
    int allocatedSeats(String backend, long product) throws IOException, InterruptedException {
        for (JsonNode license : get(backend, "/tmr/licenses").get("licenses")) {
            if (license.get("firmCode").asLong() == FIRM && license.get("productCode").asLong() == product) {
                return license.get("allocations").asInt();
            }
        }
        throw new IOException(backend + " lists no license " + FIRM + ":" + product);
    }

    /**
     * Issues a TMR license of {@code product} with the demo's vendor key and imports its three copies into the
     * backends, as the demo does with its samples ({@code tmr license context / issue / import}).
     */
    void issueTmrLicense(long product, long quantity, String text) throws Exception {
        Path vendor = home.resolve("vendor");
        LicenseIssuer issuer = new LicenseIssuer(VendorKeyFiles.readPrivate(vendor.resolve(VendorKeyFiles.PRIVATE_FILE)),
                VendorKeyFiles.readPublic(vendor.resolve(VendorKeyFiles.PUBLIC_FILE)), Clock.systemUTC(),
                new SecureRandom());
        Map<String, String> backendOf = new LinkedHashMap<>();
        List<ContainerContext> contexts = new ArrayList<>();
        for (String backend : BACKENDS) {
            try (AdminClient admin = admin(backend)) {
                ContainerContext context = ContainerContext.parse(admin.licenseContext(Serial.NONE));
                contexts.add(context);
                backendOf.put(context.serial(), backend);
            }
        }
        Path state = vendor.resolve("state.json");
        LicenseIssuer.Result issued = issuer.issue(VendorState.load(state), contexts, new LicenseIssuer.Request(FIRM,
                product, quantity, true, null, null, null, null, null, 0, text));
        issued.state().save(state);
        for (LicenseIssuer.Issued file : issued.files()) {
            try (AdminClient admin = admin(backendOf.get(file.context().serial()))) {
                admin.importLicense(file.file().toJson());
            }
        }
    }

    private AdminClient admin(String backend) {
        return AdminClient.connect(TmrClientOptions.builder().addresses(component(backend).address)
                .clientName("twin-fault-it").requestTimeout(Duration.ofSeconds(30)).build(), "");
    }

    /** A TMR node's write on a backend, from the backend's tracking log ({@code allocate} or {@code free}). */
    record NodeWrite(String event, String node, long leaseEpoch, String tmrHandle) {
    }

    /** The TMR nodes' allocations and frees {@code backend} has tracked, in the order of its log. */
    List<NodeWrite> nodeWrites(String backend) throws IOException {
        Path log = home.resolve(backend).resolve("tracking.log");
        List<NodeWrite> writes = new ArrayList<>();
        if (!Files.exists(log)) {
            return writes;
        }
        ObjectMapper json = new ObjectMapper();
        for (String line : Files.readAllLines(log)) {
            if (line.isBlank()) {
                continue;
            }
            JsonNode row = json.readTree(line);
            String event = row.path("event").asText();
            if (event.equals("allocate") || event.equals("free")) {
                if (!row.has("leaseEpoch")) {
                    throw new IOException(backend + " tracked a node's " + event + " without its lease epoch: " + line);
                }
                writes.add(new NodeWrite(event, row.path("node").asText(), row.path("leaseEpoch").asLong(),
                        row.path("tmrHandle").asText()));
            }
        }
        return writes;
    }

    /** Parts the twins: their cluster traffic stops both ways until {@link #heal()}; backends and clients unaffected. */
    void part() {
        if (relays.isEmpty()) {
            throw new IllegalStateException("the demo was started without relays (start(dir, true))");
        }
        relays.forEach(ClusterRelay::part);
    }

    void heal() {
        relays.forEach(ClusterRelay::heal);
    }

    /** Bytes the relays passed between the twins so far. */
    long relayed() {
        return relays.stream().mapToLong(ClusterRelay::forwarded).sum();
    }

    void await(String what, Duration bound, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + bound.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError(what + " not within " + bound.toSeconds() + " s; see " + home);
            }
            Thread.sleep(100);
        }
    }

    private ProcessHandle handle(String name) {
        long pid = component(name).pid;
        return ProcessHandle.of(pid).orElseThrow(() -> new AssertionError(name + " (pid " + pid
                + ") is not running; see " + home));
    }

    /** Stops the demo (SIGTERM, bounded) and kills whatever is left of its components and of the restarted ones. */
    @Override
    public void close() {
        for (Component component : components.values()) {
            // A frozen process ignores SIGTERM until it runs again.
            ProcessHandle.of(component.pid).ifPresent(p -> {
                try {
                    new ProcessBuilder("kill", "-CONT", Long.toString(component.pid)).start().waitFor(5,
                            TimeUnit.SECONDS);
                } catch (IOException e) {
                    // Gone already.
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
        }
        demo.close();
        for (Process process : restarted) {
            process.destroyForcibly();
        }
        for (Component component : components.values()) {
            ProcessHandle.of(component.pid).ifPresent(ProcessHandle::destroyForcibly);
        }
        for (Process process : restarted) {
            try {
                process.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        relays.forEach(ClusterRelay::close);
    }

    /** A port free on all the demo's addresses (but {@code not}), so the test does not collide with a demo. */
    static int portFreeOnEveryHost(int not) throws IOException {
        for (int attempt = 0; attempt < 50; attempt++) {
            int port;
            try (ServerSocket probe = new ServerSocket(0, 1, java.net.InetAddress.getByName(HOSTS.get(0)))) {
                port = probe.getLocalPort();
            }
            if (port != not && HOSTS.stream().allMatch(host -> bindable(host, port))) {
                return port;
            }
        }
        throw new IllegalStateException("no port free on all of " + HOSTS);
    }

    private static boolean bindable(String host, int port) {
        try (ServerSocket socket = new ServerSocket()) {
            socket.bind(new InetSocketAddress(host, port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }
}
