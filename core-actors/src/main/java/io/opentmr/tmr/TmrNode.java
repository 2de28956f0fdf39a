package io.opentmr.tmr;

import com.typesafe.config.Config;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.opentmr.access.AccessList;
import io.opentmr.peer.PeerConnection;
import io.opentmr.peer.PeerOptions;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.protocol.Serial;
import io.opentmr.server.FrameServer;
import io.opentmr.tmr.backend.BackendWatcher;
import io.opentmr.tmr.backend.PeerGroup;
import io.opentmr.tmr.backend.PeerLink;
import io.opentmr.tmr.lease.NodeLeases;
import io.opentmr.tmr.license.TmrLicense;
import io.opentmr.tmr.server.ClientAccess;
import io.opentmr.tmr.server.TmrSession;
import io.opentmr.tmr.tracking.NodeTrackingLog;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.function.LongFunction;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running TMR node: the virtual container over the three backends of a TMR group, its licenses and handles,
 * and the listener clients use. A single node always asks for the active lease; with
 * {@code opentmr.node.lease-on-request} it asks only while a {@code BackendQuorumLease} acquires it
 * ({@link NodeLeases}, registered here). Which journal keeps the node's state is
 * configuration ({@code pekko.persistence.journal.plugin}).
 *
 * <p>Clients pass the access list ({@code opentmr.node.access-list}, {@link #reloadAccessList}) at HELLO, and
 * what the node decides for them goes to its tracking log ({@link NodeTrackingLog}, {@code DATA_DIR/tracking.log}).
 */
public final class TmrNode implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(TmrNode.class);

    private final ActorSystem<Void> system;
    private final FrameServer server;
    private final EventLoopGroup peerLoop;
    private final Serial serial;

    private final NodeStatus status;
    private final PeerGroup peers;
    private final ClientAccess access;
    private final NodeTrackingLog tracking;

    private TmrNode(ActorSystem<Void> system, FrameServer server, EventLoopGroup peerLoop, Serial serial,
                    NodeStatus status, PeerGroup peers, ClientAccess access, NodeTrackingLog tracking) {
        this.peers = peers;
        this.access = access;
        this.tracking = tracking;
        this.system = system;
        this.server = server;
        this.peerLoop = peerLoop;
        this.serial = serial;
        this.status = status;
    }

    /**
     * Starts a node from a resolved configuration.
     *
     * @throws com.typesafe.config.ConfigException naming the key, for a bad or missing setting
     * @throws IllegalStateException               when it cannot listen or its actors do not start
     */
    public static TmrNode start(Config config, Clock clock) {
        NodeSettings settings = NodeSettings.from(config);
        // One event loop per backend: a license's three ALLOCATEs are written, and their answers read, side by side.
        EventLoopGroup peerLoop = new NioEventLoopGroup(settings.backends().size(),
                new DefaultThreadFactory("opentmr-peer", true));
        PeerOptions options = new PeerOptions(settings.backendTimeout(), settings.backendTimeout(), 1024,
                settings.codecLimits());
        PeerLink.Connector connector = backend -> {
            InetSocketAddress resolved = backend.isUnresolved()
                    ? new InetSocketAddress(backend.getHostString(), backend.getPort()) : backend;
            return PeerConnection.connect(resolved, settings.nodeName(), settings.peerAuth(), options, peerLoop)
                    .thenApply(PeerLink::of);
        };
        try {
            return start(settings, config, clock, connector, peerLoop);
        } catch (RuntimeException e) {
            peerLoop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            throw e;
        }
    }

    /** As {@link #start(Config, Clock)} with another way to reach the backends (tests: paused or failing links). */
    public static TmrNode start(Config config, Clock clock, PeerLink.Connector connector) {
        return start(NodeSettings.from(config), config, clock, connector, null);
    }

    private static TmrNode start(NodeSettings settings, Config config, Clock clock, PeerLink.Connector connector,
                                 EventLoopGroup peerLoop) {
        SecureRandom random = new SecureRandom();
        Serial serial;
        NodeTrackingLog tracking;
        try {
            Files.createDirectories(settings.dataDir(), PosixFilePermissions.asFileAttribute(
                    PosixFilePermissions.fromString("rwx------")));
            serial = virtualSerial(settings, random);
            tracking = NodeTrackingLog.open(settings.dataDir(), serial, settings.backends().stream()
                    .map(b -> b.getHostString() + ":" + b.getPort()).toList(), settings.nodeName(), clock,
                    settings.trackingZone());
        } catch (IOException e) {
            throw new IllegalStateException("cannot use the data directory " + settings.dataDir() + ": " + e, e);
        }
        if (settings.accessList().hasNameRules()) {
            LOG.warn(AccessList.nameRulesWarning(NodeSettings.PATH + ".access-list"));
        }
        ClientAccess access = new ClientAccess(settings.accessList());
        PeerGroup peers = new PeerGroup(settings.backends().size(), clock, settings.backendTimeout(),
                !settings.leaseOnRequest());
        NodeStatus status = new NodeStatus(peers);
        PeerAuth auth = settings.peerAuth();
        LongFunction<byte[]> tokens = handleId -> Arrays.copyOf(auth.derive("opentmr-handle-token",
                ByteBuffer.allocate(Long.BYTES).putLong(handleId).array()), 16);
        TmrLicense.Settings licenseSettings = new TmrLicense.Settings(settings.cleanupTimeout(),
                settings.snapshotEvery());
        CompletableFuture<ActorRef<VirtualContainer.Command>> containerRef = new CompletableFuture<>();
        Behavior<Void> guardian = Behaviors.setup(context -> {
            // Before any actor that could acquire it: a BackendQuorumLease finds the node's leases here.
            NodeLeases.get(context.getSystem()).register(peers.activeLease());
            ActorRef<VirtualContainer.Command> container = context.spawn(VirtualContainer.create(serial, peers, status,
                    clock, settings.heartbeat(), settings.reconcileTimeout(),
                    (key, parent) -> TmrLicense.create(key, peers, parent, clock, random, tokens, licenseSettings,
                            tracking), tracking),
                    "virtual-container");
            // Beside the container, not under it: a container restarted from its journal keeps its backends.
            context.spawn(Quorums.create(serial, settings.backends().size(), container, reports -> {
                Map<String, Behavior<BackendWatcher.Command>> watchers = new LinkedHashMap<>();
                for (int i = 0; i < settings.backends().size(); i++) {
                    watchers.put("backend-" + (i + 1), BackendWatcher.create(i, settings.backends().get(i),
                            settings, peers, connector, reports, clock, random));
                }
                return watchers;
            }), "quorums");
            containerRef.complete(container);
            return Behaviors.empty();
        });
        ActorSystem<Void> system;
        try {
            system = ActorSystem.create(guardian, "opentmr-node", config);
        } catch (RuntimeException e) {
            tracking.close();
            throw e;
        }
        system.getWhenTerminated().whenComplete((done, failure) -> tracking.close());
        try {
            ActorRef<VirtualContainer.Command> container = containerRef.get(30, TimeUnit.SECONDS);
            FrameServer server = FrameServer.start(settings.address(), settings.port(), settings.maxConnections(),
                    settings.codecLimits(), () -> new TmrSession(settings, status, serial, container,
                            system.scheduler(), random, access, tracking, clock));
            LOG.info("TMR node {} listening on {} with virtual container {} over backends {}", settings.nodeName(),
                    server.localAddress(), serial, settings.backends());
            return new TmrNode(system, server, peerLoop, serial, status, peers, access, tracking);
        } catch (ExecutionException | TimeoutException e) {
            system.terminate();
            throw new IllegalStateException("the node's actors did not start within 30 s", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            system.terminate();
            throw new IllegalStateException("interrupted while starting", e);
        } catch (Exception e) {
            // Also a BindException, which Netty throws without declaring it: the actor system must not leak.
            system.terminate();
            throw new IllegalStateException("cannot listen on " + settings.address() + ":" + settings.port() + ": "
                    + e, e);
        }
    }

    /** The configured serial, or the one chosen on first start and kept in the data directory. */
    private static Serial virtualSerial(NodeSettings settings, SecureRandom random) throws IOException {
        Path file = settings.dataDir().resolve("virtual-serial");
        if (settings.virtualSerial().isPresent()) {
            Serial configured = settings.virtualSerial().get();
            write(file, configured);
            return configured;
        }
        if (Files.exists(file)) {
            try {
                return Serial.parse(Files.readString(file, StandardCharsets.UTF_8).strip());
            } catch (IllegalArgumentException e) {
                throw new IOException(file + " does not hold a serial: " + e.getMessage(), e);
            }
        }
        Serial chosen = new Serial(Serial.MASK_VIRTUAL_TMR, 10_000_000 + random.nextInt(90_000_000));
        write(file, chosen);
        LOG.info("Virtual container serial {} chosen and kept in {}", chosen, file);
        return chosen;
    }

    private static void write(Path file, Serial serial) throws IOException {
        Path temporary = file.resolveSibling(file.getFileName() + ".tmp");
        Files.writeString(temporary, serial + "\n", StandardCharsets.UTF_8);
        Files.move(temporary, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    public InetSocketAddress address() {
        return server.localAddress();
    }

    /**
     * Reads {@code opentmr.node.access-list} from {@code config} and puts it in force: clients it still allows keep
     * their connections and handles; sessions of clients it no longer allows have their handles released and are
     * closed. A bad list changes nothing.
     *
     * @return the list now in force
     * @throws com.typesafe.config.ConfigException naming the key and the first bad rule; the old list stays
     */
    public AccessList reloadAccessList(Config config) {
        AccessList next = NodeSettings.accessList(config);
        if (next.hasNameRules()) {
            LOG.warn(AccessList.nameRulesWarning(NodeSettings.PATH + ".access-list"));
        }
        access.replace(next);
        return next;
    }

    /** The node's tracking log. */
    public NodeTrackingLog trackingLog() {
        return tracking;
    }

    /** Whether the node serves clients now (it holds the lease and has reconciled its licenses). */
    public boolean serving() {
        return status.serving();
    }

    /** Lease grants the node holds now (a certificate needs two of one epoch). */
    public int grantsHeld() {
        return peers.grantsHeld();
    }

    /** Backends the node has an authenticated connection to now. */
    public int backendsLinked() {
        int linked = 0;
        for (int i = 0; i < peers.size(); i++) {
            linked += peers.isLinked(i) ? 1 : 0;
        }
        return linked;
    }

    /** The node's actor system: its {@link NodeLeases}, and where a Pekko lease of the node is obtained. */
    public ActorSystem<Void> actorSystem() {
        return system;
    }

    public Serial virtualSerial() {
        return serial;
    }

    public CompletionStage<Done> whenTerminated() {
        return system.getWhenTerminated();
    }

    @Override
    public void close() {
        server.close();
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.warn("TMR node did not stop within 10 s: {}", e.toString());
        }
        if (peerLoop != null) {
            peerLoop.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
        }
        tracking.close();
    }
}
