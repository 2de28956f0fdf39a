package io.opentmr.launcher;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.cluster.TwinNode;
import io.opentmr.management.Management;
import io.opentmr.management.ManagementSettings;
import io.opentmr.protocol.AdminToken;
import io.opentmr.protocol.NodeName;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.tmr.TmrNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code tmr node}: a TMR node in the foreground until SIGTERM or Ctrl-C (DESIGN §5); SIGHUP reloads its access
 * list. Its tracking log is {@code DATA_DIR/tracking.log}, written by the node itself.
 */
@Command(name = "node", mixinStandardHelpOptions = true,
        subcommands = {NodeKeysCommand.class, NodeStepDownCommand.class},
        description = {"Run a TMR node on port 22350: it joins the copies on 3 backends into one virtual container.",
                "With --seed-nodes it is one node of a twin: the node holding the backends' lease serves, the other "
                        + "is its standby and takes over when it fails.",
                "Every flag is also a HOCON key under opentmr.node (see --config)."})
final class NodeCommand implements Callable<Integer> {

    static final String PATH = "opentmr.node";
    static final String ADDRESS = PATH + ".address";
    static final String PORT = PATH + ".port";
    static final String DATA_DIR = PATH + ".data-dir";
    static final String BACKENDS = PATH + ".backends";
    static final String VIRTUAL_SERIAL = PATH + ".virtual-serial";
    static final String NAME = PATH + ".name";
    static final String SEED_NODES = PATH + ".seed-nodes";
    static final String CLUSTER_ADDRESS = PATH + ".cluster-address";
    static final String CLUSTER_PORT = PATH + ".cluster-port";
    static final String CLUSTER_BIND_PORT = PATH + ".cluster-bind-port";
    static final String CLUSTER_KEYS_DIR = PATH + ".cluster-keys-dir";

    @Option(names = "--name", description = "This node's name, e.g. node-a (" + NAME + "); required, its own for "
            + "every node of the group: the backends hold the active lease under it.")
    String name;

    @Option(names = "--address", description = "IP address clients connect to (" + ADDRESS + ").")
    String address;

    @Option(names = "--port", description = "Port (" + PORT + "), default 22350.")
    Integer port;

    @Option(names = "--data-dir", description = "Journal and the virtual container's serial (" + DATA_DIR + ").")
    Path dataDir;

    @Option(names = "--backends", split = ",", paramLabel = "HOST:PORT",
            description = "The 3 backends of the TMR group, comma-separated (" + BACKENDS + ").")
    List<String> backends;

    @Option(names = "--secret-file", description = "The cluster secret shared with the backends ("
            + PeerAuth.SECRET_FILE_KEY + ").")
    Path secretFile;

    @Option(names = "--virtual-serial", description = "Serial of the virtual container, e.g. 131-59885682 ("
            + VIRTUAL_SERIAL + "); default: random on first start, then kept in the data directory.")
    String virtualSerial;

    @Option(names = "--seed-nodes", split = ",", paramLabel = "HOST:PORT",
            description = "Both nodes of the twin as cluster HOST:PORT, this one's own among them, the same list on "
                    + "both (" + SEED_NODES + "); without it the node runs alone.")
    List<String> seedNodes;

    @Option(names = "--cluster-address", description = "This host's own address for the twin's cluster ("
            + CLUSTER_ADDRESS + "); default: --address. Never a virtual IP.")
    String clusterAddress;

    @Option(names = "--cluster-port", description = "The twin cluster's port (" + CLUSTER_PORT + "), default 25520.")
    Integer clusterPort;

    @Option(names = "--cluster-bind-port", description = "The port the cluster binds when the twin reaches this node on "
            + "--cluster-port through a NAT, port forward or relay (" + CLUSTER_BIND_PORT + "); default: --cluster-port.")
    Integer clusterBindPort;

    @Option(names = "--cluster-keys-dir", description = "This node's cluster keys, from `tmr node keys` ("
            + CLUSTER_KEYS_DIR + "); default: cluster-keys beside the secret file.")
    Path clusterKeysDir;

    @Option(names = "--admin-token-file", description = "File (mode 0600) with the installation's admin token: "
            + "management HTTP writes need it, and the node presents it to its backends when it imports license "
            + "files (" + AdminToken.TOKEN_FILE_KEY + ").")
    Path adminTokenFile;

    @Option(names = "--management-port", description = "Port of management HTTP on the node's address "
            + "(opentmr.management.port), default 7626; 0: a free port.")
    Integer managementPort;

    @Option(names = "--config", description = "HOCON file with opentmr.node.* and other settings.")
    Path config;

    @Override
    public Integer call() throws Exception {
        Config resolved = resolve();
        ManagementSettings management = ManagementSettings.from(resolved, resolved.getString(ADDRESS));
        Files.createDirectories(Path.of(resolved.getString(DATA_DIR)));
        if (!resolved.getStringList(SEED_NODES).isEmpty()) {
            return twin(resolved, management);
        }
        TmrNode node = TmrNode.start(management.enabled() ? management.pekkoConfig(
                ManagementSettings.clusterMember(resolved)).withFallback(resolved) : resolved, Clock.systemUTC());
        Management http;
        try {
            http = management.enabled() ? Management.forNode(node, management) : null;
        } catch (RuntimeException e) {
            node.close();
            throw e;
        }
        AtomicBoolean asked = new AtomicBoolean();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            asked.set(true);
            if (http != null) {
                http.close();
            }
            node.close();
        }, "opentmr-node-shutdown"));
        if (!Hangup.onHangup(() -> reloadAccessList(node))) {
            System.err.println("tmr: this JVM cannot handle SIGHUP; the access list is read at start only");
        }
        System.out.println("TMR node " + resolved.getString(NAME) + " listening on " + node.address().getAddress().getHostAddress() + ":"
                + node.address().getPort() + ", backends " + String.join(", ", resolved.getStringList(BACKENDS)));
        if (http != null) {
            System.out.println("Management HTTP on " + http.url());
        }
        node.whenTerminated().toCompletableFuture().join();
        if (!asked.get()) {
            // Not a SIGTERM or Ctrl-C: the node failed, and a supervisor (systemd) must see it.
            System.err.println("tmr: the TMR node stopped without being asked to; see the log above");
            return Output.CM_ERROR;
        }
        return Output.OK;
    }

    /** One node of a twin: runs (restarting in-process as standby when it loses the active role) until stopped. */
    private Integer twin(Config resolved, ManagementSettings management) {
        // Each incarnation (a restart as standby is a new actor system) gets its own management HTTP, on the same
        // port: it stops with that actor system.
        TwinNode node = TwinNode.start(resolved, (full, activation) -> {
            TmrNode started = TmrNode.start(management.enabled() ? management.pekkoConfig(
                    ManagementSettings.clusterMember(full)).withFallback(full) : full, Clock.systemUTC(), activation);
            if (management.enabled()) {
                try {
                    Management http = Management.forNode(started, management);
                    System.out.println("Management HTTP on " + http.url());
                } catch (RuntimeException e) {
                    started.close();
                    throw e;
                }
            }
            return started;
        }, () -> {
            // A restart in this process would wait for the old actor system's ports and journal lock: exit, and let
            // the supervisor (systemd's Restart=) start the node afresh, as the standby.
            System.err.println("tmr: the node's previous actor system does not stop; exiting with code "
                    + Output.RESTART + " for the supervisor to restart this node");
            Runtime.getRuntime().halt(Output.RESTART);
        });
        AtomicBoolean asked = new AtomicBoolean();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            asked.set(true);
            // The active node hands its role over to a standby in sync first: a planned stop loses nothing.
            node.stop();
        }, "opentmr-node-shutdown"));
        // The node running now; a node restarted in-process as standby reads the list of its start again.
        if (!Hangup.onHangup(() -> reloadAccessList(node.node()))) {
            System.err.println("tmr: this JVM cannot handle SIGHUP; the access list is read at start only");
        }
        System.out.println("TMR node " + resolved.getString(NAME) + " of a twin listening on "
                + node.node().address().getAddress().getHostAddress() + ":" + node.node().address().getPort()
                + ", cluster " + node.settings().self() + " with " + node.settings().seeds() + ", backends "
                + String.join(", ", resolved.getStringList(BACKENDS)));
        try {
            node.whenStopped().toCompletableFuture().join();
        } catch (java.util.concurrent.CompletionException e) {
            System.err.println("tmr: " + e.getCause().getMessage());
            return Output.CM_ERROR;
        }
        if (!asked.get()) {
            System.err.println("tmr: the TMR node stopped without being asked to; see the log above");
            return Output.CM_ERROR;
        }
        return Output.OK;
    }

    /**
     * On SIGHUP: the configuration is read again (flags, {@code --config} file) and its
     * {@code opentmr.node.access-list} put in force; a file that does not parse, or a bad rule, keeps the old list.
     */
    private void reloadAccessList(TmrNode node) {
        try {
            node.reloadAccessList(resolve());
        } catch (ConfigException e) {
            LoggerFactory.getLogger(NodeCommand.class).error("Access list not reloaded, the old one stays: {}",
                    e.getMessage());
        } catch (RuntimeException e) {
            LoggerFactory.getLogger(NodeCommand.class).error("Access list not reloaded, the old one stays", e);
        }
    }

    /**
     * Flags over {@code --config} over wiring over reference.conf, and the keys a node cannot start
     * without checked here, so that the message names the flag as well as the key. The node checks the
     * rest of its settings itself.
     */
    Config resolve() {
        Map<String, Object> flags = new HashMap<>();
        if (address != null) {
            flags.put(ADDRESS, address);
        }
        if (port != null) {
            flags.put(PORT, port);
        }
        if (dataDir != null) {
            flags.put(DATA_DIR, dataDir.toAbsolutePath().toString());
        }
        if (backends != null) {
            flags.put(BACKENDS, backends);
        }
        if (secretFile != null) {
            flags.put(PeerAuth.SECRET_FILE_KEY, secretFile.toAbsolutePath().toString());
        }
        if (virtualSerial != null) {
            flags.put(VIRTUAL_SERIAL, virtualSerial);
        }
        if (name != null) {
            flags.put(NAME, name);
        }
        if (seedNodes != null) {
            flags.put(SEED_NODES, seedNodes);
        }
        if (clusterAddress != null) {
            flags.put(CLUSTER_ADDRESS, clusterAddress);
        }
        if (clusterBindPort != null) {
            flags.put(CLUSTER_BIND_PORT, clusterBindPort);
        }
        if (clusterPort != null) {
            flags.put(CLUSTER_PORT, clusterPort);
        }
        if (clusterKeysDir != null) {
            flags.put(CLUSTER_KEYS_DIR, clusterKeysDir.toAbsolutePath().toString());
        }
        if (adminTokenFile != null) {
            flags.put(AdminToken.TOKEN_FILE_KEY, adminTokenFile.toAbsolutePath().toString());
        }
        if (managementPort != null) {
            flags.put(ManagementSettings.PATH + ".port", managementPort);
        }
        Config resolved = LauncherConfig.resolve(flags, config, DATA_DIR);
        if (!resolved.hasPath(DATA_DIR) || resolved.getString(DATA_DIR).isBlank()) {
            throw new ConfigException.BadValue(DATA_DIR, "--data-dir is required: the node's journal lives there");
        }
        List<String> group = resolved.hasPath(BACKENDS) ? resolved.getStringList(BACKENDS) : List.of();
        if (group.size() != 3) {
            throw new ConfigException.BadValue(BACKENDS, "--backends names exactly 3 backends HOST:PORT,HOST:PORT,"
                    + "HOST:PORT, not " + group.size());
        }
        for (String backend : group) {
            try {
                TmrClientOptions.parseAddress(backend);
            } catch (IllegalArgumentException e) {
                throw new ConfigException.BadValue(BACKENDS, "--backends: " + e.getMessage());
            }
        }
        String secret = resolved.hasPath(PeerAuth.SECRET_FILE_KEY) ? resolved.getString(PeerAuth.SECRET_FILE_KEY) : "";
        if (secret.isBlank()) {
            throw new ConfigException.BadValue(PeerAuth.SECRET_FILE_KEY,
                    "--secret-file is required: a node authenticates to its backends with the cluster secret");
        }
        try {
            PeerAuth.fromFile(Path.of(secret));
        } catch (IllegalArgumentException e) {
            throw new ConfigException.BadValue(PeerAuth.SECRET_FILE_KEY, "--secret-file: " + e.getMessage());
        }
        String nodeName = resolved.hasPath(NAME) ? resolved.getString(NAME).strip() : "";
        if (nodeName.isEmpty()) {
            throw new ConfigException.BadValue(NAME, "--name is required (e.g. --name node-a): the backends hold "
                    + "the active lease under this name, so each node of a group needs its own");
        }
        try {
            AdminToken.fromSetting(resolved.hasPath(AdminToken.TOKEN_FILE_KEY)
                    ? resolved.getString(AdminToken.TOKEN_FILE_KEY) : "");
        } catch (IllegalArgumentException e) {
            throw new ConfigException.BadValue(AdminToken.TOKEN_FILE_KEY, "--admin-token-file: " + e.getMessage());
        }
        String badName = NodeName.problem(nodeName);
        if (badName != null) {
            throw new ConfigException.BadValue(NAME, "--name: " + badName);
        }
        return resolved;
    }
}
