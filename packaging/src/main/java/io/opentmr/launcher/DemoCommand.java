package io.opentmr.launcher;

import io.opentmr.client.TmrClient;
import io.opentmr.client.HelloProbe;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.cluster.ClusterKeys;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.protocol.AdminToken;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import java.io.IOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code tmr demo}: three backends and the twin TMR nodes on this machine, each its own process of this launcher,
 * on loopback addresses and the real port (DESIGN §7), with a vendor key, a cluster secret, the twin's cluster keys
 * and sample TMR licenses. node-a starts first and becomes the active node; node-b is its standby. Runs until
 * SIGTERM or Ctrl-C, which stop every child.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Run 3 backends (127.0.1.1-3) and the twin TMR nodes (127.0.2.1 active, 127.0.2.2 standby) as "
                + "processes, with sample TMR licenses, until Ctrl-C.",
                "Everything is kept in --dir: a second run reuses it."})
final class DemoCommand implements Callable<Integer> {

    static final long CM_ACT_ID = 7;
    static final List<String> BACKEND_HOSTS = List.of("127.0.1.1", "127.0.1.2", "127.0.1.3");
    static final String NODE_HOST = "127.0.2.1";
    static final String STANDBY_HOST = "127.0.2.2";

    @Spec
    CommandSpec spec;

    @Option(names = "--dir", defaultValue = "demo", description = "Directory of the demo's keys, licenses, data "
            + "and logs (default ${DEFAULT-VALUE}).")
    Path dir;

    @Option(names = "--port", defaultValue = "22350", description = "Port of every component (default "
            + "${DEFAULT-VALUE}); they differ by address.")
    int port;

    @Option(names = "--management-port", defaultValue = "7626", description = "Port of every component's "
            + "management HTTP (default ${DEFAULT-VALUE}), on its own address.")
    int managementPort;

    @Option(names = "--ready-timeout", defaultValue = "90s", description = "Bound on each component's start and "
            + "on the node showing the licenses (default ${DEFAULT-VALUE}).")
    Duration readyTimeout;

    @Option(names = "--nodes", defaultValue = "2", description = "TMR nodes: 2, the twin (default), or 1, a single "
            + "node without a standby.")
    int nodes;

    @Option(names = "--cluster-port", defaultValue = "25520", description = "The twin's cluster port on each node's "
            + "address (default ${DEFAULT-VALUE}).")
    int clusterPort;

    @Option(names = "--cluster-bind-port", defaultValue = "0", description = "The port each node's cluster binds, when "
            + "something else listens on --cluster-port and forwards the twin's traffic to it (a relay a test cuts to "
            + "part the twins); default: --cluster-port.")
    int clusterBindPort;

    @Option(names = "--child-heap", defaultValue = "256m", description = "Heap of each child JVM, fixed at this size "
            + "(-Xms and -Xmx; default ${DEFAULT-VALUE}).")
    String childHeap;

    /**
     * A server's heap, fixed at {@code size}. Left to grow from its small initial size, G1 kept a standby node's heap
     * near 60 MB with 27 MB live, and started a concurrent marking cycle after almost every young collection (290
     * cycles for 318 collections, 15 % of the standby's CPU under `tmr bench --demo`).
     */
    static List<String> serverHeap(String size) {
        return List.of("-Xms" + size, "-Xmx" + size);
    }

    @Override
    public Integer call() throws Exception {
        if (port < 1 || port > 0xFFFF) {
            throw new ParameterException(spec.commandLine(), "--port must be 1..65535");
        }
        Path home = dir.toAbsolutePath().normalize();
        Files.createDirectories(home);
        List<String> backends = BACKEND_HOSTS.stream().map(h -> h + ":" + port).toList();
        if (clusterPort < 1 || clusterPort > 0xFFFF) {
            throw new ParameterException(spec.commandLine(), "--cluster-port must be 1..65535");
        }
        if (clusterBindPort < 0 || clusterBindPort > 0xFFFF) {
            throw new ParameterException(spec.commandLine(), "--cluster-bind-port must be 1..65535 (0: --cluster-port)");
        }
        // With a bind port of its own, --cluster-port is the forwarder's: what the nodes bind is the bind port.
        int clusterBound = clusterBindPort == 0 ? clusterPort : clusterBindPort;
        if (nodes != 1 && nodes != 2) {
            throw new ParameterException(spec.commandLine(), "--nodes must be 1 or 2");
        }
        String node = NODE_HOST + ":" + port;
        if (managementPort < 1 || managementPort > 0xFFFF || managementPort == port) {
            throw new ParameterException(spec.commandLine(), "--management-port must be 1..65535 and not --port");
        }
        List<String> all = new ArrayList<>(backends);
        all.add(node);
        BACKEND_HOSTS.forEach(host -> all.add(host + ":" + managementPort));
        all.add(NODE_HOST + ":" + managementPort);
        if (nodes == 2) {
            all.add(STANDBY_HOST + ":" + port);
            all.add(STANDBY_HOST + ":" + managementPort);
            all.add(NODE_HOST + ":" + clusterBound);
            all.add(STANDBY_HOST + ":" + clusterBound);
        }
        checkBindable(all);

        Path vendor = home.resolve("vendor");
        if (!Files.exists(vendor.resolve(VendorKeyFiles.PRIVATE_FILE))) {
            VendorKeyFiles.generate(vendor);
            System.out.println("Vendor key written to " + vendor);
        }
        Path secret = DemoFiles.clusterSecret(home.resolve(DemoFiles.SECRET_FILE), new SecureRandom());
        if (nodes == 2) {
            clusterKeys(home.resolve("cluster-keys"));
        }
        Path adminToken = home.resolve(DemoFiles.ADMIN_TOKEN_FILE);
        AdminToken.createIfMissing(adminToken);
        System.out.println("Admin token (management HTTP writes: Authorization: Bearer TOKEN) in " + adminToken);

        DemoProcesses processes = new DemoProcesses(System.err, serverHeap(childHeap));
        Thread stopOnSignal = new Thread(() -> {
            System.out.println("tmr demo: stopping every component");
            processes.stopAll(Duration.ofSeconds(20));
            System.out.println("tmr demo: stopped");
            System.out.flush();
            System.err.flush();
            // Ctrl-C and SIGTERM are how this command is meant to end: exit 0, not the JVM's 130 / 143.
            // Nothing else in this JVM has a shutdown hook that halt() would cut short.
            Runtime.getRuntime().halt(Output.OK);
        }, "opentmr-demo-shutdown");
        Runtime.getRuntime().addShutdownHook(stopOnSignal);
        try {
            return run(home, backends, node, secret, adminToken, vendor, processes);
        } finally {
            // Only here when the demo ends on its own (failure, or every child gone): stop what is left and
            // let the exit code through.
            try {
                Runtime.getRuntime().removeShutdownHook(stopOnSignal);
                processes.stopAll(Duration.ofSeconds(20));
            } catch (IllegalStateException shutdownInProgress) {
                // A signal came meanwhile: the hook stops the children.
            }
        }
    }

    private int run(Path home, List<String> backends, String node, Path secret, Path adminToken, Path vendor,
                    DemoProcesses processes) throws Exception {
        List<String> admin = List.of("--admin-token-file", adminToken.toString(), "--management-port",
                String.valueOf(managementPort));
        Duration each = readyTimeout;
        List<DemoProcesses.Child> started = new ArrayList<>();
        for (int i = 0; i < backends.size(); i++) {
            String name = "backend-" + (i + 1);
            Path data = home.resolve(name);
            List<String> args = new ArrayList<>(List.of(
                    "backend", "--address", BACKEND_HOSTS.get(i), "--port", String.valueOf(port),
                    "--data-dir", data.toString(), "--vendor-key", vendor.resolve(VendorKeyFiles.PUBLIC_FILE).toString(),
                    "--cm-act-id", String.valueOf(CM_ACT_ID), "--secret-file", secret.toString()));
            args.addAll(admin);
            started.add(processes.start(name, "backend", backends.get(i), adminUrl(BACKEND_HOSTS.get(i)),
                    data.resolve(name + ".log"), args));
        }
        for (DemoProcesses.Child child : started) {
            DemoProcesses.awaitListening(child, socket(child.address()), each);
        }
        System.out.println("Backends listening on " + String.join(", ", backends));
        new DemoLicenses(home, vendor.resolve(VendorKeyFiles.PRIVATE_FILE), System.out).ensure(backends);

        // A node's name is its component's name: the backends hold the lease under it.
        String nodeName = "node-a";
        Path nodeData = home.resolve(nodeName);
        List<String> args = new ArrayList<>(nodeArgs(nodeName, NODE_HOST, port, nodeData, backends, secret, home));
        args.addAll(admin);
        DemoProcesses.Child nodeA = processes.start(nodeName, "active", node, adminUrl(NODE_HOST),
                nodeData.resolve(nodeName + ".log"), args);
        DemoProcesses.awaitListening(nodeA, socket(node), each);
        Optional<Serial> virtual = awaitVirtualContainer(nodeA, node, each);
        if (nodes == 2) {
            // Started once node-a serves, so that node-a is the active node and node-b its standby.
            Path standbyData = home.resolve("node-b");
            List<String> standbyArgs = new ArrayList<>(nodeArgs("node-b", STANDBY_HOST, port, standbyData, backends,
                    secret, home));
            standbyArgs.addAll(admin);
            DemoProcesses.Child nodeB = processes.start("node-b", "standby", STANDBY_HOST + ":" + port,
                    adminUrl(STANDBY_HOST), standbyData.resolve("node-b.log"), standbyArgs);
            DemoProcesses.awaitListening(nodeB, socket(STANDBY_HOST + ":" + port), each);
            awaitFollowing(socket(STANDBY_HOST + ":" + port), node, each);
        }

        List<DemoFiles.Component> components = processes.children().stream().map(DemoProcesses.Child::component)
                .toList();
        Map<String, Object> extra = new LinkedHashMap<>();
        extra.put("virtualContainer", virtual.map(Serial::toString).orElse(null));
        extra.put("licenses", DemoLicenses.SAMPLES.stream().map(DemoLicenses.Sample::toMap).toList());
        Map<String, Object> bench = new LinkedHashMap<>();
        bench.put("tmr", Map.of("server", node, "firm", DemoLicenses.FIRM, "product", DemoLicenses.SEATS.product()));
        bench.put("direct", Map.of("server", backends.get(0), "firm", DemoLicenses.FIRM, "product",
                DemoLicenses.DIRECT.product()));
        extra.put("bench", bench);
        Path manifest = DemoFiles.writeManifest(home, components, extra);
        // A node started again (DemoProcesses) has a new pid: the manifest follows, for tmr bench --failover.
        processes.onRestart(() -> {
            try {
                DemoFiles.writeManifest(home, processes.children().stream().map(DemoProcesses.Child::component)
                        .toList(), extra);
            } catch (IOException e) {
                System.err.println("tmr demo: cannot write " + manifest + " anew: " + e);
            }
        });

        System.out.println();
        System.out.print(DemoFiles.table(components));
        System.out.println("Written to " + manifest);
        System.out.println();
        System.out.print(nextSteps(node, components, adminToken));
        System.out.println("Ctrl-C stops the demo.");
        System.out.flush();

        processes.allExited().join();
        while (processes.stopping()) {
            // Ctrl-C or SIGTERM stopped the children: the shutdown hook ends this JVM with 0.
            Thread.sleep(1000);
        }
        System.err.println("tmr demo: every component has stopped; see the messages above");
        return Output.CM_ERROR;
    }

    /**
     * The launcher arguments of a demo node: its name is its component's name (node-a); with the twin, its cluster
     * address is its own loopback address and its keys are {@code cluster-keys/NAME} in the demo's directory.
     */
    List<String> nodeArgs(String name, String host, int port, Path data, List<String> backends, Path secret,
                          Path home) {
        List<String> args = new ArrayList<>(List.of("node", "--name", name, "--address", host, "--port",
                String.valueOf(port), "--data-dir", data.toString(), "--backends", String.join(",", backends),
                "--secret-file", secret.toString()));
        if (nodes == 2) {
            args.addAll(List.of("--seed-nodes", NODE_HOST + ":" + clusterPort + "," + STANDBY_HOST + ":" + clusterPort,
                    "--cluster-port", String.valueOf(clusterPort),
                    "--cluster-keys-dir", home.resolve("cluster-keys").resolve(name).toString()));
            if (clusterBindPort != 0) {
                args.addAll(List.of("--cluster-bind-port", String.valueOf(clusterBindPort)));
            }
        }
        return args;
    }

    /**
     * node-b names node-a as the active node once its journal follows node-a's: from then on what node-a
     * acknowledges is in both journals, and killing node-a loses no handle. Bounded; a warning if it does not.
     */
    private static void awaitFollowing(InetSocketAddress standby, String active, Duration max)
            throws InterruptedException {
        long deadline = System.nanoTime() + max.toNanos();
        String last = "no answer";
        while (System.nanoTime() - deadline < 0) {
            try {
                Message answer = HelloProbe.hello(standby, Duration.ofSeconds(2));
                if (answer instanceof Message.NotActive notActive && notActive.activeAddress().equals(active)) {
                    System.out.println("node-b follows node-a's journal (standby)");
                    return;
                }
                last = String.valueOf(answer);
            } catch (IOException e) {
                last = e.toString();
            }
            Thread.sleep(200);
        }
        System.err.println("tmr demo: node-b does not follow node-a's journal after " + max.toSeconds() + " s ("
                + last + "); until it does, node-a acknowledges writes alone");
    }

    /** The twin's cluster CA and both nodes' keys, created on the first run and kept. */
    private static void clusterKeys(Path dir) throws IOException {
        ClusterKeys keys = new ClusterKeys();
        Path ca = dir.resolve("ca");
        if (!Files.exists(ca.resolve(ClusterKeys.CA_CERT_FILE))) {
            keys.createAuthority(ca);
        }
        for (String name : List.of("node-a", "node-b")) {
            if (!Files.exists(dir.resolve(name).resolve("tls.crt"))) {
                keys.issue(ca, name, dir.resolve(name));
                System.out.println("Cluster keys of " + name + " written to " + dir.resolve(name));
            }
        }
    }

    /** Why the node does not serve yet (it is starting, or reconciling with the backends), or empty once it does. */
    private static Optional<String> notServingYet(String node) {
        int colon = node.lastIndexOf(':');
        InetSocketAddress address = new InetSocketAddress(node.substring(0, colon),
                Integer.parseInt(node.substring(colon + 1)));
        try {
            Message answer = HelloProbe.hello(address, Duration.ofSeconds(2));
            return answer instanceof Message.HelloOk ? Optional.empty()
                    : Optional.of("it answers " + answer.type() + " (still reconciling with the backends)");
        } catch (IOException e) {
            return Optional.of("it does not answer yet: " + e.getMessage());
        }
    }

    /** The node lists its virtual container 131-… with the sample TMR licenses: bounded wait. */
    private Optional<Serial> awaitVirtualContainer(DemoProcesses.Child nodeA, String node, Duration max)
            throws InterruptedException {
        Set<Long> wanted = DemoLicenses.TMR_SAMPLES.stream().map(DemoLicenses.Sample::product)
                .collect(Collectors.toSet());
        long deadline = System.nanoTime() + max.toNanos();
        String last = "no answer yet";
        while (System.nanoTime() - deadline < 0 && nodeA.process().isAlive()) {
            // Until the node serves it answers NOT_ACTIVE, which the SDK would retry with a warning: probe first.
            Optional<String> notYet = notServingYet(node);
            if (notYet.isPresent()) {
                last = notYet.get();
                Thread.sleep(200);
                continue;
            }
            try (TmrClient client = TmrClient.connect(TmrClientOptions.builder().addresses(node)
                    .clientName("tmr-demo").connectTimeout(Duration.ofSeconds(2)).requestTimeout(Duration.ofSeconds(2))
                    .build())) {
                List<ContainerInfo> containers = client.listContainers();
                for (ContainerInfo container : containers) {
                    Set<Long> products = container.products().stream().filter(p -> p.firmCode() == DemoLicenses.FIRM)
                            .map(ProductInfo::productCode).collect(Collectors.toSet());
                    if (container.serial().mask() == Serial.MASK_VIRTUAL_TMR && products.containsAll(wanted)) {
                        System.out.println("The node shows virtual container " + container.serial() + " with "
                                + wanted.size() + " TMR licenses");
                        return Optional.of(container.serial());
                    }
                }
                last = "it lists " + containers.stream().map(c -> c.serial() + " " + c.products().size() + " item(s)")
                        .toList();
            } catch (RuntimeException e) {
                last = e.getMessage();
            }
            Thread.sleep(500);
        }
        System.err.println("tmr demo: node-a does not show a virtual container with the sample licenses after "
                + max.toSeconds() + " s (" + last + "); the demo keeps running, see " + nodeA.log());
        return Optional.empty();
    }

    private String adminUrl(String host) {
        return "http://" + host + ":" + managementPort;
    }

    private String nextSteps(String node, List<DemoFiles.Component> components, Path adminToken) {
        String server = port == TmrClientOptions.DEFAULT_PORT ? NODE_HOST : node;
        if (nodes == 2) {
            // Both nodes: the SDK tries the next address when one is down or answers NOT_ACTIVE.
            server = port == TmrClientOptions.DEFAULT_PORT ? NODE_HOST + "," + STANDBY_HOST
                    : node + "," + STANDBY_HOST + ":" + port;
        }
        long backend2 = components.stream().filter(c -> c.name().equals("backend-2")).findFirst().orElseThrow().pid();
        long backend3 = components.stream().filter(c -> c.name().equals("backend-3")).findFirst().orElseThrow().pid();
        return String.join("\n",
                "Next, in another terminal:",
                "  ./tmr client --server " + server + " list",
                "  ./tmr client --server " + server + " access --firm " + DemoLicenses.FIRM + " --product "
                        + DemoLicenses.SEATS.product() + " --hold 60 &",
                "  ./tmr client --server " + server + " units --firm " + DemoLicenses.FIRM + " --product "
                        + DemoLicenses.UNITS.product() + " --decrement 5",
                "  kill -9 " + backend2 + "     # backend-2 down: the licenses stay, 2 of 3 copies are left",
                "  kill -9 " + backend3 + "     # backend-3 down too: no lease, the node answers NOT_ACTIVE (TMR_STANDBY)",
                nodes == 2 ? "  kill -9 " + components.stream().filter(c -> c.name().equals("node-a")).findFirst()
                        .orElseThrow().pid() + "     # (with 3 backends up) node-a down: node-b takes over, the "
                        + "held handle stays" : "",
                "  ./tmr bench --demo " + dir + " --duration 10s     # TMR node against one backend directly",
                "Dashboard: " + adminUrl(NODE_HOST) + "/ in a browser (each ADMIN address above has its own)",
                "Management HTTP (docs/management-http.md):",
                "  curl -s " + adminUrl(NODE_HOST) + "/tmr/status",
                "  curl -s " + adminUrl(NODE_HOST) + "/tmr/handles",
                "  curl -s " + adminUrl(NODE_HOST) + "/metrics | grep ^opentmr_",
                "  curl -s -X DELETE -H \"Authorization: Bearer $(cat " + adminToken + ")\" " + adminUrl(NODE_HOST)
                        + "/tmr/handles/ID     # force-release a handle",
                "");
    }

    private static InetSocketAddress socket(String hostPort) {
        int colon = hostPort.lastIndexOf(':');
        return new InetSocketAddress(hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)));
    }

    /** Every address must be free to bind here; says why not (no such address, or a server already on it). */
    static void checkBindable(List<String> addresses) {
        for (String address : addresses) {
            InetSocketAddress socket = socket(address);
            try (ServerSocket probe = new ServerSocket()) {
                probe.bind(socket);
            } catch (BindException e) {
                String why = e.getMessage() == null ? "" : e.getMessage();
                if (why.contains("in use")) {
                    throw new IllegalStateException("cannot bind " + address + ": something already listens there "
                            + "(a demo still running? see its demo.json, or: ss -ltnp | grep " + socket.getPort() + ")");
                }
                throw new IllegalStateException("cannot bind " + address + " (" + why + "): the demo needs the "
                        + "loopback addresses 127.0.1.1-3 and 127.0.2.1. Linux has all of 127.0.0.0/8; elsewhere add "
                        + "them, e.g. on macOS: sudo ifconfig lo0 alias " + socket.getHostString() + " up");
            } catch (IOException e) {
                throw new IllegalStateException("cannot bind " + address + ": " + e.getMessage(), e);
            }
        }
    }
}
