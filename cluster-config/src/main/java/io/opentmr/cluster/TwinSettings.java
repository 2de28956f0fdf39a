package io.opentmr.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import io.opentmr.protocol.NodeName;
import io.opentmr.protocol.PeerAuth;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * How this node forms the twin's Pekko Cluster: {@code opentmr.node.*} (cluster address, port, seed nodes, keys)
 * and {@code opentmr.node.cluster.*} (timing), read once at start. A bad value fails here with a
 * {@link ConfigException} that names the key, before anything binds. {@link #pekkoConfig} renders the result as
 * the {@code pekko.*} settings of the node's ActorSystem.
 *
 * <p>The timing is tuned for two members on one LAN. The fail-over itself (≤ 2 s, DESIGN §6, §8) does not wait for
 * the cluster: the backends' lease decides which node is active ({@link TwinNode}). A cluster-driven fail-over, as
 * measured on a two-core machine of ours, took 2.0–2.3 s after kill -9 with 50 ms heartbeats, a 200 ms acceptable
 * pause and SBR stable-after 100 ms, and about 45 s with Pekko's defaults; the lease's take-over starts at the
 * standby's next heartbeat to the backends (250 ms).
 *
 * @param name                       {@code opentmr.node.name}; published as the member role {@link #nameRole} so
 *                                   that a second node under the same name sees it taken and refuses to start
 * @param host                       {@code cluster-address} (default {@code address}): where Artery binds and what
 *                                   the twin dials; this host's own address, never the virtual IP, which moves
 * @param port                       {@code cluster-port}: the port the twin dials (Artery's canonical port)
 * @param bindPort                   {@code cluster-bind-port}: the port Artery binds, when something between the
 *                                   nodes forwards {@code port} to it (a NAT, a port forward, the fault tests'
 *                                   relay); the same as {@code port} when not configured (0)
 * @param seeds                      {@code seed-nodes} in the order both nodes use ({@link #orderedSeeds}); this
 *                                   node alone when none were configured
 * @param keysDir                    {@code cluster-keys-dir}: {@code tls.key}, {@code tls.crt}, {@code ca.crt}
 *                                   ({@link ClusterKeys}); a process without them cannot join or read the traffic
 * @param heartbeatInterval          200 ms, not 1 s: the failure detector no longer decides a take-over (the backends'
 *                                   lease does, DESIGN §6), it only tells the lease holder that its twin is gone so
 *                                   that it leaves the membership; 50 ms (the setting measured for a downing driven
 *                                   by the detector) logged delayed heartbeats all the time on a loaded two-core box
 * @param acceptableHeartbeatPause   1 s, not 3 s: a longer stop of the JVM (GC, starved CPU) marks the twin
 *                                   unreachable, which alone changes nothing: only the lease holder downs, and only
 *                                   after {@code downUnreachableAfter}, so a false alarm never touches the active
 *                                   node and restarts a standby only if it lasts
 * @param reaperInterval             250 ms, not 1 s: the failure detector is only read at this tick, so the default
 *                                   adds up to a second to every detection
 * @param leaderActionsInterval      250 ms, not 1 s: Joining→Up and Down→Removed each wait for a leader tick
 * @param gossipInterval             250 ms, not 1 s: a membership change reaches the twin within one gossip; with
 *                                   two members that is one message per interval
 * @param seedNodeTimeout            3 s, not 5 s: the first seed forms a new cluster when its twin has not answered
 *                                   within this, and the other node asks again only this often (a node not yet a
 *                                   member refuses, and the asker waits a full timeout). 1 s made a restarted first
 *                                   seed form a second cluster beside a running twin whose first TLS handshake took
 *                                   longer than that on a loaded two-core machine; 3 s keeps two nodes started
 *                                   together at 3–5 s
 * @param retryUnsuccessfulJoinAfter 2 s, not 10 s: a Join whose Welcome was lost is sent again after this
 * @param aloneAfter                 10 s (ours): the node that is not the first seed never forms a cluster in
 *                                   Pekko; after this long without membership it asks again with itself first
 *                                   ({@link TwinJoin}), so it starts when its twin is down for good. Long enough
 *                                   that a first seed which is alive has long formed or joined by then
 * @param reconnectBackoff           100 ms, not 1 s (Artery's outbound-restart-backoff): a node whose twin is down
 *                                   keeps failing to connect to it and backs off; with 1 s a twin that came back
 *                                   reached it only ~5 s later, too late for its first-seed wait, and formed a second
 *                                   cluster. A refused connect on a LAN costs nothing
 * @param downUnreachableAfter       1 s: the node that holds the backends' lease downs a twin it has found
 *                                   unreachable this long ({@link LeaseDowning}); a node without the lease downs no
 *                                   one. The lease decides which node is active, so no take-over waits for this: it
 *                                   only tidies the membership, and long enough that a standby's GC pause does not
 *                                   restart it
 */
public record TwinSettings(
        String name,
        String host,
        int port,
        int bindPort,
        List<HostPort> seeds,
        Path keysDir,
        Duration heartbeatInterval,
        Duration acceptableHeartbeatPause,
        Duration reaperInterval,
        Duration leaderActionsInterval,
        Duration gossipInterval,
        Duration seedNodeTimeout,
        Duration retryUnsuccessfulJoinAfter,
        Duration aloneAfter,
        Duration reconnectBackoff,
        Duration downUnreachableAfter) {

    public static final String PATH = "opentmr.node";
    /** The prefix of the member role that carries a node's name. */
    public static final String NAME_ROLE_PREFIX = "opentmr-name:";
    public static final String KEY_FILE = "tls.key";
    public static final String CERT_FILE = "tls.crt";
    public static final String CA_CERT_FILE = "ca.crt";

    /** One seed node as configured. */
    public record HostPort(String host, int port) {
        @Override
        public String toString() {
            return host + ":" + port;
        }
    }

    public TwinSettings {
        seeds = List.copyOf(seeds);
    }

    public static TwinSettings from(Config root) {
        Config c = root.getConfig(PATH);
        String name = c.getString("name").strip();
        String badName = name.isEmpty() ? "must name this node (e.g. node-a), its own within the twin"
                : NodeName.problem(name);
        if (badName != null) {
            throw new ConfigException.BadValue(PATH + ".name", badName);
        }
        String host = c.getString("cluster-address").strip();
        if (host.isEmpty()) {
            host = c.getString("address").strip();
        }
        if (host.isEmpty() || host.equals("0.0.0.0") || host.equals("::")) {
            throw new ConfigException.BadValue(PATH + ".cluster-address", "must be this host's own address, the one "
                    + "its twin dials, not '" + host + "'");
        }
        int port = c.getInt("cluster-port");
        if (port <= 0 || port > 65_535) {
            throw new ConfigException.BadValue(PATH + ".cluster-port", "must be 1..65535, not " + port);
        }
        int bindPort = c.getInt("cluster-bind-port");
        if (bindPort == 0) {
            bindPort = port;
        } else if (bindPort < 0 || bindPort > 65_535) {
            throw new ConfigException.BadValue(PATH + ".cluster-bind-port", "must be 1..65535, or 0 for cluster-port, "
                    + "not " + bindPort);
        }
        HostPort self = new HostPort(host, port);
        List<HostPort> seeds = new ArrayList<>();
        for (String entry : c.getStringList("seed-nodes")) {
            seeds.add(hostPort(entry));
        }
        if (seeds.isEmpty()) {
            seeds.add(self);
        }
        if (seeds.size() > 2 || seeds.stream().distinct().count() != seeds.size()) {
            throw new ConfigException.BadValue(PATH + ".seed-nodes", "names the two nodes of the twin, each once: "
                    + seeds);
        }
        if (!seeds.contains(self)) {
            throw new ConfigException.BadValue(PATH + ".seed-nodes", "must name this node's own cluster address " + self
                    + ", spelled as in " + PATH + ".cluster-address, and the same list on both nodes: " + seeds);
        }
        Duration heartbeat = positive(c, "cluster.failure-detector.heartbeat-interval");
        Duration pause = positive(c, "cluster.failure-detector.acceptable-heartbeat-pause");
        if (pause.compareTo(heartbeat.multipliedBy(2)) < 0) {
            throw new ConfigException.BadValue(PATH + ".cluster.failure-detector.acceptable-heartbeat-pause",
                    "must be at least two heartbeat intervals, or one late heartbeat downs a node");
        }
        Duration seedNodeTimeout = positive(c, "cluster.seed-node-timeout");
        Duration aloneAfter = positive(c, "cluster.alone-after");
        // The twin, alive but not yet a member, refuses the first request; the next one, a timeout later, joins.
        if (aloneAfter.compareTo(seedNodeTimeout.multipliedBy(2)) < 0) {
            throw new ConfigException.BadValue(PATH + ".cluster.alone-after", "must be at least twice "
                    + PATH + ".cluster.seed-node-timeout, or a node forms a cluster alone while its twin still answers");
        }
        return new TwinSettings(name, host, port, bindPort, orderedSeeds(seeds), keysDir(root, c), heartbeat, pause,
                positive(c, "cluster.unreachable-nodes-reaper-interval"),
                positive(c, "cluster.leader-actions-interval"), positive(c, "cluster.gossip-interval"),
                seedNodeTimeout, positive(c, "cluster.retry-unsuccessful-join-after"), aloneAfter,
                positive(c, "cluster.reconnect-backoff"), positive(c, "cluster.down-unreachable-after"));
    }

    /**
     * The seeds in the order both nodes give Pekko. Pekko lets only the first seed form a new cluster; each node
     * listing itself first would let two nodes started together form two clusters of one, so both sort the same
     * list the same way and exactly one of them is first.
     */
    public static List<HostPort> orderedSeeds(List<HostPort> seeds) {
        return seeds.stream().sorted(Comparator.comparing(HostPort::host).thenComparingInt(HostPort::port)).toList();
    }

    public HostPort self() {
        return new HostPort(host, port);
    }

    /** Whether Pekko lets this node form the cluster (it is the first seed). */
    public boolean firstSeed() {
        return seeds.get(0).equals(self());
    }

    /** The member role that carries this node's name. */
    public String nameRole() {
        return NAME_ROLE_PREFIX + name;
    }

    /** {@code pekko://SYSTEM@HOST:PORT} of a seed. */
    public static String address(String systemName, HostPort node) {
        String host = node.host().contains(":") && !node.host().startsWith("[") ? "[" + node.host() + "]" : node.host();
        return "pekko://" + systemName + "@" + host + ":" + node.port();
    }

    /**
     * The {@code pekko.*} settings of this node's ActorSystem, to put in front of the rest of its configuration.
     * {@code systemName} is the ActorSystem's name, the same on both nodes (it is part of every seed address).
     */
    public Config pekkoConfig(String systemName) {
        Map<String, Object> p = new HashMap<>();
        p.put("pekko.actor.provider", "cluster");
        p.put("pekko.remote.artery.transport", "tls-tcp");
        p.put("pekko.remote.artery.canonical.hostname", host);
        p.put("pekko.remote.artery.canonical.port", port);
        p.put("pekko.remote.artery.bind.port", bindPort);
        // Mutual TLS on the installation's own CA; the provider reads PEM files and re-reads them every 5 minutes, so
        // keys can be replaced without a restart. It also checks that both certificates share a subject name.
        p.put("pekko.remote.artery.ssl.ssl-engine-provider",
                "org.apache.pekko.remote.artery.tcp.ssl.RotatingKeysSSLEngineProvider");
        p.put("pekko.remote.artery.ssl.rotating-keys-engine.key-file", keysDir.resolve(KEY_FILE).toString());
        p.put("pekko.remote.artery.ssl.rotating-keys-engine.cert-file", keysDir.resolve(CERT_FILE).toString());
        p.put("pekko.remote.artery.ssl.rotating-keys-engine.ca-cert-file", keysDir.resolve(CA_CERT_FILE).toString());
        p.put("pekko.remote.artery.advanced.outbound-restart-backoff", millis(reconnectBackoff));
        // Remoting on one thread. Every message between the twins (a replicated batch and its acknowledgement above
        // all) passes Artery's stream stages, the TLS stage and the TCP connection's actor. On Pekko's defaults those
        // run on two pools (the remote dispatcher, a fork-join pool of at least 2, with 4 inbound lanes; the internal
        // dispatcher for the connection), and each stage that handed to the next woke another thread: measured with
        // `tmr bench --demo`, 2.2 of the standby's 5.0 voluntary context switches per TMR pair went away with these
        // settings. Nothing of remoting blocks, so one thread keeps up; stages hand over on it with no wake-up.
        p.put("pekko.remote.artery.advanced.inbound-lanes", 1);
        p.put("pekko.remote.default-remote-dispatcher.executor", "thread-pool-executor");
        p.put("pekko.remote.default-remote-dispatcher.thread-pool-executor.fixed-pool-size", 1);
        p.put("pekko.io.tcp.worker-dispatcher", "pekko.remote.default-remote-dispatcher");

        p.put("pekko.cluster.seed-nodes", seeds.stream().map(s -> address(systemName, s)).toList());
        p.put("pekko.cluster.roles", List.of(nameRole()));
        p.put("pekko.cluster.seed-node-timeout", millis(seedNodeTimeout));
        p.put("pekko.cluster.retry-unsuccessful-join-after", millis(retryUnsuccessfulJoinAfter));
        p.put("pekko.cluster.failure-detector.heartbeat-interval", millis(heartbeatInterval));
        p.put("pekko.cluster.failure-detector.acceptable-heartbeat-pause", millis(acceptableHeartbeatPause));
        p.put("pekko.cluster.unreachable-nodes-reaper-interval", millis(reaperInterval));
        p.put("pekko.cluster.leader-actions-interval", millis(leaderActionsInterval));
        p.put("pekko.cluster.gossip-interval", millis(gossipInterval));

        // Downing is the backends' lease's (LeaseDowning), not the failure detector's: no downing provider here.
        p.put("pekko.cluster.downing-provider-class", "");
        // Leaving the cluster is a courtesy to the twin (the lease decides who is active): each cluster phase of the
        // shutdown gets 2 s, not Pekko's 10 s, so that a node whose twin is gone or half-joined still stops (and
        // restarts as the standby) in seconds; a shutdown was seen to take 40 s with the defaults.
        for (String phase : List.of("cluster-leave", "cluster-exiting", "cluster-exiting-done", "cluster-shutdown")) {
            p.put("pekko.coordinated-shutdown.phases." + phase + ".timeout", "2s");
        }
        // A downed node's ActorSystem stops (Pekko's default, said here because the process must then exit).
        p.put("pekko.cluster.run-coordinated-shutdown-when-down", "on");
        // SIGTERM stops the node through the process's own hook (TwinNode.stop: an active node hands its role over
        // first). Pekko's hooks would pull the ground from under that hand-over: coordinated shutdown stops the actor
        // system, and Artery's own hook shuts remoting down at once, so the standby's journal stops following (seen in
        // TwinFaultIT: replication DEGRADED two records short, the hand-over refused, the stop seconds longer).
        p.put("pekko.jvm-shutdown-hooks", "off");
        p.put("pekko.coordinated-shutdown.run-by-jvm-shutdown-hook", "off");
        return ConfigFactory.parseMap(p, "opentmr twin cluster (TwinSettings)");
    }

    private static String millis(Duration d) {
        return d.toMillis() + "ms";
    }

    private static Path keysDir(Config root, Config c) {
        String configured = c.getString("cluster-keys-dir").strip();
        String key = PATH + ".cluster-keys-dir";
        Path dir;
        if (!configured.isEmpty()) {
            dir = Path.of(configured);
        } else {
            String secret = root.hasPath(PeerAuth.SECRET_FILE_KEY) ? root.getString(PeerAuth.SECRET_FILE_KEY).strip() : "";
            if (secret.isEmpty()) {
                throw new ConfigException.BadValue(key, "must name the directory of this node's cluster keys (or set "
                        + PeerAuth.SECRET_FILE_KEY + ": the keys are then looked for in cluster-keys beside it)");
            }
            dir = Path.of(secret).toAbsolutePath().resolveSibling("cluster-keys");
        }
        for (String file : List.of(KEY_FILE, CERT_FILE, CA_CERT_FILE)) {
            if (!Files.isReadable(dir.resolve(file))) {
                throw new ConfigException.BadValue(key, dir.resolve(file) + " is missing or unreadable: a node joins "
                        + "its twin only with keys issued by the installation's cluster CA (ClusterKeys)");
            }
        }
        return dir.toAbsolutePath();
    }

    private static HostPort hostPort(String entry) {
        int colon = entry.lastIndexOf(':');
        try {
            if (colon <= 0) {
                throw new IllegalArgumentException("no port");
            }
            String host = entry.substring(0, colon).replace("[", "").replace("]", "").strip();
            int port = Integer.parseInt(entry.substring(colon + 1).strip());
            if (host.isEmpty() || port <= 0 || port > 65_535) {
                throw new IllegalArgumentException("no host, or port out of range");
            }
            return new HostPort(host, port);
        } catch (IllegalArgumentException e) {
            throw new ConfigException.BadValue(PATH + ".seed-nodes", "'" + entry + "' is not HOST:PORT ("
                    + e.getMessage() + ")");
        }
    }

    private static Duration positive(Config c, String key) {
        Duration value = c.getDuration(key);
        if (value.isNegative() || value.isZero()) {
            throw new ConfigException.BadValue(PATH + "." + key, "must be positive");
        }
        return value;
    }
}
