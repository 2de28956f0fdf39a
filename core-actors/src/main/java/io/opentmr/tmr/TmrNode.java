package io.opentmr.tmr;

import com.typesafe.config.Config;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.opentmr.metrics.ServerMetrics;
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
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
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

    private final ActorSystem<Void> system;
    private final FrameServer server;
    private final EventLoopGroup peerLoop;
    private final Serial serial;

    private final NodeStatus status;
    private final PeerGroup peers;
    private final NodeSettings settings;
    private final ServerMetrics metrics;
    private final ActorRef<VirtualContainer.Command> container;
    private final ActorRef<Quorums.Command> quorums;
    private final java.time.Instant startedAt;

    private TmrNode(ActorSystem<Void> system, FrameServer server, EventLoopGroup peerLoop, Serial serial,
                    NodeStatus status, PeerGroup peers, NodeSettings settings, ServerMetrics metrics,
                    ActorRef<VirtualContainer.Command> container, ActorRef<Quorums.Command> quorums,
                    java.time.Instant startedAt) {
        this.settings = settings;
        this.metrics = metrics;
        this.container = container;
        this.quorums = quorums;
        this.startedAt = startedAt;
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
        try {
            Files.createDirectories(settings.dataDir(), PosixFilePermissions.asFileAttribute(
                    PosixFilePermissions.fromString("rwx------")));
            serial = virtualSerial(settings, random);
        } catch (IOException e) {
            throw new IllegalStateException("cannot use the data directory " + settings.dataDir() + ": " + e, e);
        }
        PeerGroup peers = new PeerGroup(settings.backends().size(), clock, settings.backendTimeout(),
                !settings.leaseOnRequest());
        NodeStatus status = new NodeStatus(peers);
        status.keepEpochIn(settings.dataDir().resolve("lease-epoch"));
        ServerMetrics metrics = new ServerMetrics("node");
        status.metrics(metrics);
        gauges(metrics, settings, status, peers);
        PeerAuth auth = settings.peerAuth();
        LongFunction<byte[]> tokens = handleId -> Arrays.copyOf(auth.derive("opentmr-handle-token",
                ByteBuffer.allocate(Long.BYTES).putLong(handleId).array()), 16);
        TmrLicense.Settings licenseSettings = new TmrLicense.Settings(settings.cleanupTimeout(),
                settings.snapshotEvery());
        CompletableFuture<ActorRef<VirtualContainer.Command>> containerRef = new CompletableFuture<>();
        CompletableFuture<ActorRef<Quorums.Command>> quorumsRef = new CompletableFuture<>();
        Behavior<Void> guardian = Behaviors.setup(context -> {
            // Before any actor that could acquire it: a BackendQuorumLease finds the node's leases here.
            NodeLeases.get(context.getSystem()).register(peers.activeLease());
            ActorRef<VirtualContainer.Command> container = context.spawn(VirtualContainer.create(serial, peers, status,
                    clock, settings.heartbeat(), settings.reconcileTimeout(),
                    (key, parent) -> TmrLicense.create(key, peers, parent, clock, random, tokens, licenseSettings)),
                    "virtual-container");
            // Beside the container, not under it: a container restarted from its journal keeps its backends.
            ActorRef<Quorums.Command> quorums = context.spawn(Quorums.create(serial, settings.backends().size(),
                    container, reports -> {
                Map<String, Behavior<BackendWatcher.Command>> watchers = new LinkedHashMap<>();
                for (int i = 0; i < settings.backends().size(); i++) {
                    watchers.put("backend-" + (i + 1), BackendWatcher.create(i, settings.backends().get(i),
                            settings, peers, connector, reports, clock, random));
                }
                return watchers;
            }, status::integrityWarning), "quorums");
            quorumsRef.complete(quorums);
            containerRef.complete(container);
            return Behaviors.empty();
        });
        ActorSystem<Void> system = ActorSystem.create(guardian, "opentmr-node", config);
        try {
            ActorRef<VirtualContainer.Command> container = containerRef.get(30, TimeUnit.SECONDS);
            FrameServer server = FrameServer.start(settings.address(), settings.port(), settings.maxConnections(),
                    settings.codecLimits(), () -> new TmrSession(settings, status, serial, container,
                            system.scheduler(), random, metrics));
            LOG.info("TMR node {} listening on {} with virtual container {} over backends {}", settings.nodeName(),
                    server.localAddress(), serial, settings.backends());
            return new TmrNode(system, server, peerLoop, serial, status, peers, settings, metrics, container,
                    quorumsRef.get(30, TimeUnit.SECONDS), clock.instant());
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

    /** The node's own gauges: read at each scrape from what the actors publish, never by asking them. */
    private static void gauges(ServerMetrics metrics, NodeSettings settings, NodeStatus status, PeerGroup peers) {
        metrics.gauge("opentmr_open_handles", "Open handles of the virtual container", status::openHandles);
        metrics.gauge("opentmr_serving", "1 while the node serves clients (it holds the lease and has reconciled "
                + "its licenses): the readiness check", () -> status.serving() ? 1 : 0);
        metrics.gauge("opentmr_lease_held", "1 while the node holds the active lease certificate (grants of two "
                + "backends for one epoch)", () -> peers.holdsLease() ? 1 : 0);
        metrics.gauge("opentmr_lease_epoch", "The epoch of the active lease the node holds; 0 without it",
                () -> peers.holdsLease() ? peers.epoch() : 0);
        CounterWithCallback.builder().name("opentmr_failovers")
                .help("Times the active role came to this node from another node: it gained the lease at an epoch "
                        + "above the one it last served under (kept in the data directory)")
                .callback(callback -> callback.call(status.takeovers())).register(metrics.registry());
        CounterWithCallback.builder().name("opentmr_integrity_warnings")
                .help("Warnings on the opentmr.integrity log: copies of a TMR license that differ, or that answered "
                        + "an ALLOCATE, a units or crypt vote differently")
                .callback(callback -> callback.call(status.integrityWarnings())).register(metrics.registry());
        GaugeWithCallback.builder().name("opentmr_backend_up")
                .help("1 while the node has an authenticated connection to the backend, by its place in --backends")
                .labelNames("backend", "address")
                .callback(callback -> {
                    for (int i = 0; i < peers.size(); i++) {
                        InetSocketAddress address = settings.backends().get(i);
                        callback.call(peers.isLinked(i) ? 1 : 0, Integer.toString(i + 1),
                                address.getHostString() + ":" + address.getPort());
                    }
                }).register(metrics.registry());
        GaugeWithCallback.builder().name("opentmr_license_copies")
                .help("Copies of each TMR license that count now (identical and available; 2 are needed, 3 is full "
                        + "redundancy)")
                .labelNames("license")
                .callback(callback -> status.licenses().forEach((key, reading) ->
                        callback.call(reading.copies(), key.toString()))).register(metrics.registry());
        GaugeWithCallback.builder().name("opentmr_license_seats_in_use")
                .help("Seats in use of each TMR license").labelNames("license")
                .callback(callback -> status.licenses().forEach((key, reading) ->
                        callback.call(reading.inUse(), key.toString()))).register(metrics.registry());
        GaugeWithCallback.builder().name("opentmr_license_seats")
                .help("Seats of each TMR license as two copies agree on them (0 while none agree)")
                .labelNames("license")
                .callback(callback -> status.licenses().forEach((key, reading) ->
                        callback.call(reading.quantity(), key.toString()))).register(metrics.registry());
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

    /** What {@code /metrics} shows for this node. */
    public ServerMetrics metrics() {
        return metrics;
    }

    public NodeSettings settings() {
        return settings;
    }

    public NodeStatus status() {
        return status;
    }

    /** The node's backend connections and its lease over them. */
    public PeerGroup peerGroup() {
        return peers;
    }

    /** The virtual container: its licenses, handles, and where a handle's request goes. */
    public ActorRef<VirtualContainer.Command> container() {
        return container;
    }

    /** The quorums over the backends' copies: how each backend looks from its watcher. */
    public ActorRef<Quorums.Command> quorums() {
        return quorums;
    }

    public java.time.Instant startedAt() {
        return startedAt;
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
    }
}
