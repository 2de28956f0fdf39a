package io.opentmr.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Nodes of one test's twin cluster on loopback addresses of their own ({@code 127.A.B.n}, one random /24 per test,
 * so tests and builds running beside each other never share an address), each started as a product node would be:
 * {@link TwinSettings#from} then {@link TwinSettings#pekkoConfig}.
 */
final class TestTwin implements AutoCloseable {

    static final String SYSTEM = "opentmr-node";
    static final int PORT = 25520;

    private final String prefix;
    private final List<ActorSystem<Void>> systems = new ArrayList<>();

    TestTwin() {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        prefix = "127." + random.nextInt(100, 250) + "." + random.nextInt(1, 250) + ".";
    }

    String host(int node) {
        return prefix + node;
    }

    String hostPort(int node) {
        return host(node) + ":" + PORT;
    }

    /**
     * A node's configuration. The failure detector is forgiving here: these tests are about joining, and a loaded
     * two-core machine must not down a member in the middle of one.
     */
    Config config(String name, int node, Path keys, List<Integer> seeds, Map<String, Object> overrides) {
        Map<String, Object> map = new HashMap<>();
        map.put("opentmr.node.name", name);
        map.put("opentmr.node.cluster-address", host(node));
        map.put("opentmr.node.cluster-port", PORT);
        map.put("opentmr.node.seed-nodes", seeds.stream().map(this::hostPort).toList());
        map.put("opentmr.node.cluster-keys-dir", keys.toString());
        map.put("opentmr.node.cluster.failure-detector.acceptable-heartbeat-pause", "5s");
        map.putAll(overrides);
        return ConfigFactory.parseMap(map).withFallback(ConfigFactory.load());
    }

    ActorSystem<Void> start(Config config) {
        TwinSettings settings = TwinSettings.from(config);
        return startWith(settings.pekkoConfig(SYSTEM).withFallback(config));
    }

    /** A system from a finished configuration (an intruder's, say, that no TwinSettings would accept). */
    ActorSystem<Void> startWith(Config pekkoConfig) {
        ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), SYSTEM, pekkoConfig);
        synchronized (this) {
            systems.add(system);
        }
        return system;
    }

    @Override
    public synchronized void close() throws ExecutionException, TimeoutException {
        systems.forEach(ActorSystem::terminate);
        try {
            for (ActorSystem<Void> system : systems) {
                // Artery over TLS has held a refused node's last shutdown phase for about a minute (past the phase's
                // 10 s timeout) in some runs of TwinClusterTest: bounded, but not by 20 s.
                system.getWhenTerminated().toCompletableFuture().get(90, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while stopping the nodes", e);
        }
    }
}
