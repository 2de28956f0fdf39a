package io.opentmr.cluster;

import com.typesafe.config.Config;
import io.opentmr.testing.TmrTestGroup;
import java.io.IOException;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The settings of a twin's two nodes over a test's {@link TmrTestGroup}: cluster keys of one installation for
 * {@code node-a} and {@code node-b}, loopback addresses of the test's own ({@code 127.A.B.1} and {@code .2}, one random
 * /24 per test, so tests running beside each other never share an address), each node's journal in its data directory.
 */
public final class TwinFixture {

    /** Every node's client port and cluster port (each node has an address of its own). */
    public static final int PORT = 22350;
    public static final int CLUSTER_PORT = 25520;

    private final Path keys;
    private final TmrTestGroup group;
    private final Path dir;
    private final String prefix;

    /**
     * @param keys the directory {@link #keys} filled
     * @param dir  where the nodes' data directories go
     */
    public TwinFixture(Path keys, TmrTestGroup group, Path dir) {
        this.keys = keys;
        this.group = group;
        this.dir = dir;
        ThreadLocalRandom random = ThreadLocalRandom.current();
        this.prefix = "127." + random.nextInt(100, 250) + "." + random.nextInt(1, 250) + ".";
    }

    /** A cluster authority in {@code keys/ca}, and the keys it issued to node-a and node-b beside it. */
    public static ClusterKeys keys(Path keys) throws IOException {
        ClusterKeys generator = new ClusterKeys(new SecureRandom(), Clock.systemUTC(), 2048);
        generator.createAuthority(keys.resolve("ca"));
        generator.issue(keys.resolve("ca"), "node-a", keys.resolve("node-a"));
        generator.issue(keys.resolve("ca"), "node-b", keys.resolve("node-b"));
        return generator;
    }

    /** {@code 127.A.B.n}: another address of this test's own. */
    public String host(int n) {
        return prefix + n;
    }

    /** node-a's address, or node-b's. */
    public String host(String name) {
        return host(name.equals("node-a") ? 1 : 2);
    }

    /** The other node of the twin. */
    public static String other(String name) {
        return name.equals("node-a") ? "node-b" : "node-a";
    }

    /** The journal and snapshot store of a node (twin or single) in {@code dataDir}. */
    public Map<String, Object> persistence(String dataDir) {
        Map<String, Object> overrides = new HashMap<>();
        overrides.put("pekko.persistence.journal.plugin", "opentmr.persistence.journal");
        overrides.put("pekko.persistence.snapshot-store.plugin", "opentmr.persistence.snapshot-store");
        overrides.put("opentmr.persistence.dir", dir.resolve(dataDir).resolve("journal").toString());
        return overrides;
    }

    /**
     * {@code name}'s configuration: its clients on its own address, its cluster on {@code clusterHost}, its data in
     * {@code dataDir} (a node that comes back in the same JVM may need both of its own), its twin the other name.
     */
    public Config config(String name, String clusterHost, String dataDir, Map<String, Object> extra) {
        Map<String, Object> overrides = persistence(dataDir);
        overrides.put("opentmr.node.port", PORT);
        overrides.put("opentmr.node.cluster-address", clusterHost);
        overrides.put("opentmr.node.cluster-port", CLUSTER_PORT);
        overrides.put("opentmr.node.seed-nodes", List.of(clusterHost + ":" + CLUSTER_PORT,
                host(other(name)) + ":" + CLUSTER_PORT));
        overrides.put("opentmr.node.cluster-keys-dir", keys.resolve(name).toString());
        overrides.putAll(extra);
        return group.nodeConfig(name, host(name), dataDir, overrides);
    }

    /** Starts {@code name} of the twin with its cluster on {@code clusterHost} and its data in {@code dataDir}. */
    public TwinNode start(String name, String clusterHost, String dataDir, Map<String, Object> extra) {
        return TwinNode.start(config(name, clusterHost, dataDir, extra), (full, activation) ->
                io.opentmr.tmr.TmrNode.start(full, Clock.systemUTC(), group.connector(name), activation));
    }

    /** Waits until {@code condition} holds, polling every 20 ms; fails naming {@code what} after {@code bound}. */
    public static void await(String what, java.time.Duration bound, java.util.function.BooleanSupplier condition)
            throws InterruptedException {
        long deadline = System.nanoTime() + bound.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(what + " not within " + bound.toSeconds() + " s");
            }
            Thread.sleep(20);
        }
    }
}
