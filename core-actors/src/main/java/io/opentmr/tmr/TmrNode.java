package io.opentmr.tmr;

import com.typesafe.config.Config;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
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
import io.opentmr.tmr.server.TmrSession;
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
 */
public final class TmrNode implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(TmrNode.class);

    /** The node's ActorSystem name, the same on both nodes of a twin (it is part of every cluster address). */
    public static final String SYSTEM_NAME = "opentmr-node";

    private final ActorSystem<Void> system;
    private final FrameServer server;
    private final EventLoopGroup peerLoop;
    private final Serial serial;

    private final NodeStatus status;
    private final PeerGroup peers;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    private TmrNode(ActorSystem<Void> system, FrameServer server, EventLoopGroup peerLoop, Serial serial,
                    NodeStatus status, PeerGroup peers) {
        this.peers = peers;
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
        return start(config, clock, (Activation) null);
    }

    /**
     * Starts a node of a twin: it runs no persistent actor until it holds the backends' lease, then
     * {@code activation} prepares the journal and the virtual container starts ({@link TwinRole}). With
     * {@code null}, a single node: the virtual container runs from the start.
     */
    public static TmrNode start(Config config, Clock clock, Activation activation) {
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
            return start(settings, config, clock, connector, peerLoop, activation);
        } catch (RuntimeException e) {
            peerLoop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            throw e;
        }
    }

    /** As {@link #start(Config, Clock)} with another way to reach the backends (tests: paused or failing links). */
    public static TmrNode start(Config config, Clock clock, PeerLink.Connector connector) {
        return start(NodeSettings.from(config), config, clock, connector, null, null);
    }

    /** As {@link #start(Config, Clock, Activation)} with another way to reach the backends. */
    public static TmrNode start(Config config, Clock clock, PeerLink.Connector connector, Activation activation) {
        return start(NodeSettings.from(config), config, clock, connector, null, activation);
    }

    private static TmrNode start(NodeSettings settings, Config config, Clock clock, PeerLink.Connector connector,
                                 EventLoopGroup peerLoop, Activation activation) {
        SecureRandom random = new SecureRandom();
        Serial serial;
        try {
            Files.createDirectories(settings.dataDir(), PosixFilePermissions.asFileAttribute(
                    PosixFilePermissions.fromString("rwx------")));
            serial = activation == null ? virtualSerial(settings, random) : twinSerial(settings);
        } catch (IOException e) {
            throw new IllegalStateException("cannot use the data directory " + settings.dataDir() + ": " + e, e);
        }
        PeerGroup peers = new PeerGroup(settings.backends().size(), clock, settings.backendTimeout(),
                !settings.leaseOnRequest());
        NodeStatus status = new NodeStatus(peers);
        PeerAuth auth = settings.peerAuth();
        LongFunction<byte[]> tokens = handleId -> Arrays.copyOf(auth.derive("opentmr-handle-token",
                ByteBuffer.allocate(Long.BYTES).putLong(handleId).array()), 16);
        // A twin's journal is copied to the standby without its snapshots, and the standby recovers from events
        // alone: a twin keeps every event and takes no snapshot (snapshotEvery 0).
        TmrLicense.Settings licenseSettings = new TmrLicense.Settings(settings.cleanupTimeout(),
                activation == null ? settings.snapshotEvery() : 0);
        ContainerHolder holder = new ContainerHolder();
        CompletableFuture<Void> started = new CompletableFuture<>();
        Behavior<Void> guardian = Behaviors.setup(context -> {
            // Before any actor that could acquire it: a BackendQuorumLease finds the node's leases here.
            NodeLeases.get(context.getSystem()).register(peers.activeLease());
            Behavior<VirtualContainer.Command> containerBehavior = VirtualContainer.create(serial, peers, status,
                    clock, settings.heartbeat(), settings.reconcileTimeout(),
                    (key, parent) -> TmrLicense.create(key, peers, parent, clock, random, tokens, licenseSettings));
            java.util.function.Function<ActorRef<VirtualContainer.Counted>, Behavior<Quorums.Command>> quorums =
                    views -> Quorums.create(serial, settings.backends().size(), views, reports -> {
                        Map<String, Behavior<BackendWatcher.Command>> watchers = new LinkedHashMap<>();
                        for (int i = 0; i < settings.backends().size(); i++) {
                            watchers.put("backend-" + (i + 1), BackendWatcher.create(i, settings.backends().get(i),
                                    settings, peers, connector, reports, clock, random));
                        }
                        return watchers;
                    });
            if (activation == null) {
                ActorRef<VirtualContainer.Command> container = context.spawn(containerBehavior, "virtual-container");
                holder.set(container);
                // Beside the container, not under it: a container restarted from its journal keeps its backends.
                context.spawn(quorums.apply(container.narrow()), "quorums");
            } else {
                context.spawn(TwinRole.create(peers, status, activation, containerBehavior, holder, quorums,
                        TWIN_LEASE_CHECK, TWIN_ACTIVATION_TIMEOUT), "twin-role");
            }
            started.complete(null);
            return Behaviors.empty();
        });
        ActorSystem<Void> system = ActorSystem.create(guardian, SYSTEM_NAME, config);
        try {
            started.get(30, TimeUnit.SECONDS);
            FrameServer server = FrameServer.start(settings.address(), settings.port(), settings.maxConnections(),
                    settings.codecLimits(), () -> new TmrSession(settings, status, serial, holder,
                            system.scheduler(), random));
            LOG.info("TMR node {} listening on {} with virtual container {} over backends {}", settings.nodeName(),
                    server.localAddress(), serial, settings.backends());
            return new TmrNode(system, server, peerLoop, serial, status, peers);
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

    /** How often a twin node looks whether it holds the lease: the take-over waits up to this after the grants. */
    private static final java.time.Duration TWIN_LEASE_CHECK = java.time.Duration.ofMillis(50);
    /**
     * How long a twin node that holds the lease may take to make its journal ready (stop following, let the log's
     * writer finish what the follower queued, start leading): milliseconds normally; a node still not ready after this
     * gives up the role (it restarts as the standby), so it does not hold the lease from its twin without serving.
     */
    private static final java.time.Duration TWIN_ACTIVATION_TIMEOUT = java.time.Duration.ofSeconds(10);

    /**
     * How a node of a twin becomes the active one ({@link TwinRole}), and what happens when it stops being it.
     * Both are called on an actor's thread and must not block it.
     */
    public interface Activation {

        /**
         * The node holds the backends' lease under {@code epoch} and is about to start its persistent actors: make
         * the journal ready for them (stop copying the twin's, write under this epoch, replicate to the twin). The
         * virtual container starts once the stage completes; a failed stage ends the role as
         * {@link #deactivated} does.
         */
        CompletionStage<Void> activate(ActorSystem<Void> system, long epoch);

        /**
         * The node is no longer the active one (lost the lease, or holds it under another epoch): it serves no
         * client from now on, and its state must not serve again, since another node may have written meanwhile.
         * Called once; the caller restarts the node as a standby.
         */
        void deactivated(String reason);
    }

    /** The running virtual container, for the sessions: none on a standby. */
    public static final class ContainerHolder {
        private volatile ActorRef<VirtualContainer.Command> container;

        /** The container, or {@code null} while none runs (then the node does not serve). */
        public ActorRef<VirtualContainer.Command> get() {
            return container;
        }

        void set(ActorRef<VirtualContainer.Command> container) {
            this.container = container;
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

    /**
     * A twin's serial, the same on both nodes without a word between them: the configured one, or else one derived
     * from the cluster secret the two share. A data directory that kept another serial (a single node's, before it
     * became one of a twin) is refused, naming the setting that keeps it.
     */
    private static Serial twinSerial(NodeSettings settings) throws IOException {
        Path file = settings.dataDir().resolve("virtual-serial");
        Serial serial = settings.virtualSerial().orElseGet(() -> {
            byte[] derived = settings.peerAuth().derive("opentmr-virtual-serial", new byte[0]);
            int value = ByteBuffer.wrap(derived).getInt() & Integer.MAX_VALUE;
            return new Serial(Serial.MASK_VIRTUAL_TMR, 10_000_000 + value % 90_000_000);
        });
        if (settings.virtualSerial().isEmpty() && Files.exists(file)) {
            String kept = Files.readString(file, StandardCharsets.UTF_8).strip();
            if (!kept.equals(serial.toString())) {
                throw new IOException(file + " keeps the virtual serial " + kept + ", not the twin's " + serial
                        + ": set opentmr.node.virtual-serial (--virtual-serial) to the serial to keep, the same on "
                        + "both nodes");
            }
        }
        write(file, serial);
        return serial;
    }

    private static void write(Path file, Serial serial) throws IOException {
        Path temporary = file.resolveSibling(file.getFileName() + ".tmp");
        Files.writeString(temporary, serial + "\n", StandardCharsets.UTF_8);
        Files.move(temporary, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    public InetSocketAddress address() {
        return server.localAddress();
    }

    /** Whether the node serves clients now (it holds the lease and has reconciled its licenses). */
    public boolean serving() {
        return status.serving();
    }

    /** The active node's address for NOT_ACTIVE while this one does not serve ({@code ""}: unknown). */
    public void activeAddress(String address) {
        status.activeAddress(address);
    }

    /** What NOT_ACTIVE names as the active node now ({@code ""}: unknown). */
    public String activeAddress() {
        return status.activeAddress();
    }

    /** Whether the node holds the backends' active lease now (two or more unexpired grants of one epoch). */
    public boolean holdsLease() {
        return peers.holdsLease();
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
        if (closed.getAndSet(true)) {
            return;
        }
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
    }
}
