package io.opentmr.tmr;

import com.typesafe.config.Config;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.opentmr.access.AccessList;
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
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
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
 *
 * <p>Clients pass the access list ({@code opentmr.node.access-list}, {@link #reloadAccessList}) at HELLO, and
 * what the node decides for them goes to its tracking log ({@link NodeTrackingLog}, {@code DATA_DIR/tracking.log}).
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
    private final ClientAccess access;
    private final NodeTrackingLog tracking;
    private final NodeSettings settings;
    private final ServerMetrics metrics;
    private final ContainerHolder container;
    private final RoleHolder role;
    private final java.util.concurrent.atomic.AtomicReference<ActorRef<Quorums.Command>> quorums;
    private final java.time.Instant startedAt;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    private TmrNode(ActorSystem<Void> system, FrameServer server, EventLoopGroup peerLoop, Serial serial,
                    NodeStatus status, PeerGroup peers, ClientAccess access, NodeTrackingLog tracking,
                    NodeSettings settings, ServerMetrics metrics, ContainerHolder container, RoleHolder role,
                    java.util.concurrent.atomic.AtomicReference<ActorRef<Quorums.Command>> quorums,
                    java.time.Instant startedAt) {
        this.settings = settings;
        this.metrics = metrics;
        this.container = container;
        this.role = role;
        this.quorums = quorums;
        this.startedAt = startedAt;
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
        return start(config, clock, (Activation) null);
    }

    /**
     * Starts a node of a twin: it runs no persistent actor until it holds the backends' lease, then
     * {@code activation} prepares the journal and the virtual container starts ({@link TwinRole}). With
     * {@code null}, a single node: the virtual container runs from the start.
     */
    public static TmrNode start(Config config, Clock clock, Activation activation) {
        NodeSettings settings = NodeSettings.from(config);
        // An event loop per backend, up to one per I/O thread: a license's three ALLOCATEs are written, and their
        // answers read, side by side, without more threads than the cores can run.
        EventLoopGroup peerLoop = new NioEventLoopGroup(Math.min(settings.backends().size(), settings.threads().io()),
                new DefaultThreadFactory("opentmr-peer", true));
        PeerOptions options = new PeerOptions(settings.backendTimeout(), settings.backendTimeout(), 1024,
                settings.codecLimits());
        PeerLink.Connector connector = PeerLink.Connector.binding((backend, cmActId) -> {
            InetSocketAddress resolved = backend.isUnresolved()
                    ? new InetSocketAddress(backend.getHostString(), backend.getPort()) : backend;
            return PeerConnection.connect(resolved, settings.nodeName(), settings.peerAuth(), options, peerLoop,
                            cmActId)
                    .thenApply(PeerLink::of);
        });
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
        NodeTrackingLog tracking;
        try {
            Files.createDirectories(settings.dataDir(), PosixFilePermissions.asFileAttribute(
                    PosixFilePermissions.fromString("rwx------")));
            serial = activation == null ? virtualSerial(settings, random) : twinSerial(settings);
            tracking = NodeTrackingLog.open(settings.dataDir(), serial, settings.backends().stream()
                    .map(b -> b.getHostString() + ":" + b.getPort()).toList(), settings.nodeName(), clock,
                    settings.trackingZone(), settings.trackingRecoveryDelay());
        } catch (IOException e) {
            throw new IllegalStateException("cannot use the data directory " + settings.dataDir() + ": " + e, e);
        }
        if (settings.accessList().hasNameRules()) {
            LOG.warn(AccessList.nameRulesWarning(NodeSettings.PATH + ".access-list"));
        }
        ClientAccess access = new ClientAccess(settings.accessList());
        PeerGroup peers = new PeerGroup(settings.backends().size(), clock, settings.backendTimeout(),
                !settings.leaseOnRequest());
        Duration holdOff = activation == null ? Duration.ZERO : activation.leaseHoldOff();
        if (!holdOff.isZero() && !holdOff.isNegative()) {
            // Just stepped down: the twin takes the lease this node gave back; this one asks again only after the
            // hold-off, in case the twin did not.
            peers.wantLease(false);
            LOG.info("Standby after a step-down: the node does not ask for the backends' lease for {} ms, so its "
                    + "twin takes it", holdOff.toMillis());
        }
        NodeStatus status = new NodeStatus(peers);
        status.keepEpochIn(settings.dataDir().resolve("lease-epoch"));
        ServerMetrics metrics = new ServerMetrics("node");
        status.metrics(metrics);
        gauges(metrics, settings, status, peers);
        PeerAuth auth = settings.peerAuth();
        LongFunction<byte[]> tokens = handleId -> Arrays.copyOf(auth.derive("opentmr-handle-token",
                ByteBuffer.allocate(Long.BYTES).putLong(handleId).array()), 16);
        // A twin's journal is copied to the standby without its snapshots, and the standby recovers from events
        // alone: a twin's licenses journal checkpoints of their tables, from which the standby replays.
        TmrLicense.Settings licenseSettings = new TmrLicense.Settings(settings.cleanupTimeout(),
                settings.snapshotEvery(), activation != null);
        ContainerHolder holder = new ContainerHolder(serial);
        java.util.Set<Long> expected = new java.util.TreeSet<>(settings.virtualSerials().keySet());
        try {
            expected.addAll(readGroupSerials(settings.dataDir().resolve(GROUP_SERIALS_FILE)).keySet());
        } catch (IOException e) {
            LOG.warn("Cannot read the kept serials of the further virtual containers: {}", e.toString());
        }
        holder.expect(expected, settings.reconcileTimeout().multipliedBy(2));
        RoleHolder role = new RoleHolder();
        // Which group took each license key first (a key under two CmActIds is an issuing mistake): one license
        // actor per persistence id.
        java.util.concurrent.ConcurrentMap<io.opentmr.protocol.LicenseKey, Long> owners =
                new java.util.concurrent.ConcurrentHashMap<>();
        java.util.concurrent.atomic.AtomicReference<ActorRef<Quorums.Command>> quorumsRef =
                new java.util.concurrent.atomic.AtomicReference<>();
        CompletableFuture<Void> started = new CompletableFuture<>();
        Behavior<Void> guardian = Behaviors.setup(context -> {
            // Before any actor that could acquire it: a BackendQuorumLease finds the node's leases here.
            NodeLeases.get(context.getSystem()).register(peers.activeLease());
            // The virtual containers of other CmActIds the backends share, formed as the first group's quorums
            // discover them (none over backends of one container).
            ActorRef<NodeGroups.Command> groups = context.spawn(NodeGroups.create(new NodeGroups.Parts() {
                @Override
                public Optional<Serial> serial(long cmActId) {
                    return groupSerial(settings, cmActId, activation != null, serial, random);
                }

                @Override
                public PeerGroup peerGroup() {
                    return new PeerGroup(settings.backends().size(), clock, settings.backendTimeout(), false);
                }

                @Override
                public Behavior<Quorums.Command> quorums(Serial groupSerial, long cmActId, PeerGroup groupPeers,
                                                         NodeStatus groupStatus,
                                                         ActorRef<VirtualContainer.Counted> views) {
                    PeerLink.Connector bound = connector.forCmActId(cmActId);
                    return Quorums.create(groupSerial, settings.backends().size(), views, reports -> {
                        Map<String, Behavior<BackendWatcher.Command>> watchers = new LinkedHashMap<>();
                        for (int i = 0; i < settings.backends().size(); i++) {
                            watchers.put("backend-" + (i + 1), BackendWatcher.create(i, settings.backends().get(i),
                                    settings, groupPeers, bound, reports, clock, random));
                        }
                        return watchers;
                    }, groupStatus::integrityWarning, cmActId, null, owners);
                }

                @Override
                public Behavior<VirtualContainer.Command> container(Serial groupSerial, PeerGroup groupPeers,
                                                                   NodeStatus groupStatus) {
                    NodeTrackingLog groupTracking = tracking.forContainer(groupSerial);
                    return VirtualContainer.create(groupSerial, groupPeers, groupStatus, clock, settings.heartbeat(),
                            settings.reconcileTimeout(), (key, parent) -> TmrLicense.create(key, groupPeers, parent,
                                    clock, random, tokens, licenseSettings, groupTracking), groupTracking);
                }
            }, peers, status, holder, settings.heartbeat()), "groups");
            Behavior<VirtualContainer.Command> containerBehavior = VirtualContainer.create(serial, peers, status,
                    clock, settings.heartbeat(), settings.reconcileTimeout(),
                    (key, parent) -> TmrLicense.create(key, peers, parent, clock, random, tokens, licenseSettings,
                            tracking), tracking);
            java.util.function.Function<ActorRef<VirtualContainer.Counted>, Behavior<Quorums.Command>> quorums =
                    views -> Behaviors.setup(quorumsContext -> {
                        // Where management HTTP asks how the backends look (a twin spawns them in its role).
                        quorumsRef.set(quorumsContext.getSelf());
                        return Quorums.create(serial, settings.backends().size(), views, reports -> {
                            Map<String, Behavior<BackendWatcher.Command>> watchers = new LinkedHashMap<>();
                            for (int i = 0; i < settings.backends().size(); i++) {
                                watchers.put("backend-" + (i + 1), BackendWatcher.create(i, settings.backends().get(i),
                                        settings, peers, connector, reports, clock, random, true));
                            }
                            return watchers;
                        }, status::integrityWarning, 0,
                                discovered -> groups.tell(new NodeGroups.Discovered(discovered)), owners);
                    });
            if (activation == null) {
                ActorRef<VirtualContainer.Command> container = context.spawn(containerBehavior, "virtual-container");
                holder.set(container);
                // Beside the container, not under it: a container restarted from its journal keeps its backends.
                context.spawn(quorums.apply(container.narrow()), "quorums");
            } else {
                context.spawn(TwinRole.create(peers, status, activation, containerBehavior, holder, role, quorums,
                        TWIN_LEASE_CHECK, TWIN_ACTIVATION_TIMEOUT, settings.standbyListingInterval()), "twin-role");
                if (!holdOff.isZero() && !holdOff.isNegative()) {
                    context.getSystem().scheduler().scheduleOnce(holdOff, () -> {
                        if (!peers.leaseWanted()) {
                            LOG.info("Step-down hold-off over: the node asks for the backends' lease again");
                            peers.wantLease(true);
                        }
                    }, context.getSystem().executionContext());
                }
            }
            started.complete(null);
            return Behaviors.empty();
        });
        ActorSystem<Void> system;
        try {
            system = ActorSystem.create(guardian, SYSTEM_NAME,
                    settings.threads().applyTo(config, NodeSettings.PATH + ".threads"));
        } catch (RuntimeException e) {
            tracking.close();
            throw e;
        }
        system.getWhenTerminated().whenComplete((done, failure) -> tracking.close());
        try {
            started.get(30, TimeUnit.SECONDS);
            FrameServer server = FrameServer.start(settings.address(), settings.port(), settings.maxConnections(),
                    settings.codecLimits(), settings.threads().io(), () -> new TmrSession(settings, status, serial, holder, role,
                            system.scheduler(), random, access, tracking, clock, metrics));
            LOG.info("TMR node {} listening on {} with virtual container {} over backends {}", settings.nodeName(),
                    server.localAddress(), serial, settings.backends());
            return new TmrNode(system, server, peerLoop, serial, status, peers, access, tracking, settings, metrics,
                    holder, role, quorumsRef, clock.instant());
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

    /** How often a twin node looks whether it holds the lease: the take-over waits up to this after the grants. */
    private static final Duration TWIN_LEASE_CHECK = Duration.ofMillis(50);
    /**
     * How long a twin node that holds the lease may take to make its journal ready (stop following, let the log's
     * writer finish what the follower queued, start leading): milliseconds normally; a node still not ready after this
     * gives up the role (it restarts as the standby), so it does not hold the lease from its twin without serving.
     */
    private static final Duration TWIN_ACTIVATION_TIMEOUT = Duration.ofSeconds(10);

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

        /**
         * Why the active role cannot be handed over now ({@link TmrNode#stepDown}): no standby has every record
         * this node acknowledged. Empty when a standby does. Called on an actor's thread; must not block.
         */
        default Optional<String> handOverRefusal() {
            return Optional.of("this node has no twin to hand the active role over to");
        }

        /**
         * Completes once the standby has every record this node wrote, within {@code bound}; fails with the reason
         * otherwise. The node serves nothing meanwhile, so the journal no longer grows.
         */
        default CompletionStage<Void> handOver(Duration bound) {
            return CompletableFuture.failedFuture(new IllegalStateException(handOverRefusal().orElse("no twin")));
        }

        /** The twin's address for clients (NOT_ACTIVE names it during a hand-over); {@code ""}: unknown. */
        default String twinAddress() {
            return "";
        }

        /**
         * The node handed the active role over and gave the lease back: as {@link #deactivated}, and the node's next
         * start waits {@link #leaseHoldOff()} before it asks for the lease, so its twin takes it.
         */
        default void steppedDown(String reason) {
            deactivated(reason);
        }

        /** How long a node started now lets the lease be before it asks for it (after a step-down); zero: at once. */
        default Duration leaseHoldOff() {
            return Duration.ZERO;
        }
    }

    /**
     * The way to the node's {@link TwinRole}, for a step-down ({@link TmrNode#stepDown}); a single node has none.
     */
    public static final class RoleHolder {
        private volatile java.util.function.Supplier<CompletionStage<Void>> stepDown;

        /**
         * Hands the active role over to the standby; completes once done (the node then restarts as the standby),
         * fails with a {@link io.opentmr.protocol.CmFailure} 130 when there is no standby in sync to take over.
         */
        public CompletionStage<Void> stepDown() {
            java.util.function.Supplier<CompletionStage<Void>> role = stepDown;
            if (role == null) {
                return CompletableFuture.failedFuture(new io.opentmr.protocol.CmFailure(
                        io.opentmr.protocol.CmError.REDUNDANCY_SERVER_MISSING, "a single TMR node has no standby to "
                        + "hand the active role over to: start it as one of a twin (--seed-nodes)"));
            }
            return role.get();
        }

        void set(java.util.function.Supplier<CompletionStage<Void>> stepDown) {
            this.stepDown = stepDown;
        }
    }

    /**
     * A virtual container of another CmActId than the first's ({@link NodeGroups}), as the sessions reach it.
     *
     * @param status whether it serves ({@link NodeStatus#serving}: its own lease and reconciliation)
     * @param peers  its backend connections and lease
     */
    public record Group(Serial serial, long cmActId, ActorRef<VirtualContainer.Command> container, NodeStatus status,
                        PeerGroup peers) {
    }

    /** The running virtual container, for the sessions: none on a standby. */
    public static final class ContainerHolder {
        private volatile ActorRef<VirtualContainer.Command> container;
        private volatile java.util.List<Group> others = java.util.List.of();
        private final Serial serial;

        /** A holder of no container (tests of a session). */
        public ContainerHolder() {
            this(null);
        }

        /** @param serial the first virtual container's serial */
        public ContainerHolder(Serial serial) {
            this.serial = serial;
        }

        /** The first virtual container's serial; null when not told. */
        public Serial serial() {
            return serial;
        }

        /**
         * The running virtual containers of other CmActIds, by CmActId; empty over backends of one container (and on
         * a standby).
         */
        public java.util.List<Group> others() {
            return others;
        }

        void others(java.util.List<Group> groups) {
            others = java.util.List.copyOf(groups);
        }

        private volatile Quorums.Discovered discovered;
        /** CmActIds of the virtual containers this data directory kept or the configuration names. */
        private volatile java.util.Set<Long> expected = java.util.Set.of();
        private volatile long expectedWindowNanos;
        /** Until when ({@link System#nanoTime}) a handle unknown to the running containers may be an expected one's. */
        private volatile long expectedUntilNanos;

        /**
         * The virtual containers beyond the first this node had or is configured with: until they run (or {@code
         * window} after the first container started), a handle no running container knows may be theirs, so it is
         * not answered 106 (the client would drop it) but 130 (it asks again).
         */
        void expect(java.util.Set<Long> cmActIds, Duration window) {
            expected = java.util.Set.copyOf(cmActIds);
            expectedWindowNanos = window.toNanos();
        }

        /** A group formed: its container is expected from now on. */
        void expectAlso(long cmActId) {
            if (!expected.contains(cmActId)) {
                java.util.Set<Long> more = new java.util.HashSet<>(expected);
                more.add(cmActId);
                expected = java.util.Set.copyOf(more);
            }
        }

        /** The CmActIds of expected virtual containers not running yet, while the window lasts; empty otherwise. */
        public java.util.List<Long> awaited() {
            return awaited(others);
        }

        /**
         * The CmActIds of the virtual containers a request that went to the running ones of {@code asked} did not
         * reach: those expected and not among them, while the window lasts, and, whatever the window, those
         * published since it was routed.
         */
        public java.util.List<Long> awaited(java.util.List<Group> asked) {
            java.util.Set<Long> wanted = new java.util.TreeSet<>();
            if (System.nanoTime() - expectedUntilNanos <= 0) {
                wanted.addAll(expected);
            }
            others.forEach(group -> wanted.add(group.cmActId()));
            asked.forEach(group -> wanted.remove(group.cmActId()));
            return java.util.List.copyOf(wanted);
        }

        /** What the first group's quorums last learnt of the backends' containers (after the groups were formed). */
        public Quorums.Discovered discovered() {
            return discovered;
        }

        void discovered(Quorums.Discovered now) {
            discovered = now;
        }

        /** The container, or {@code null} while none runs (then the node does not serve). */
        public ActorRef<VirtualContainer.Command> get() {
            return container;
        }

        void set(ActorRef<VirtualContainer.Command> container) {
            if (container != null) {
                expectedUntilNanos = System.nanoTime() + expectedWindowNanos;
            }
            this.container = container;
        }
    }

    /** The file that keeps the serials of the virtual containers beyond the first, by CmActId. */
    static final String GROUP_SERIALS_FILE = "virtual-serials";

    /**
     * The serial of the virtual container of {@code cmActId} (a group beyond the first): configured
     * ({@code opentmr.node.virtual-serials}), else kept in {@code DATA_DIR/virtual-serials}, else chosen at random (a
     * twin: derived from the cluster secret and the CmActId, so both nodes agree without a word), then kept. Empty,
     * logged, when none can be had: the file is unreadable, a twin's data directory kept another serial, or it is
     * another container's.
     */
    static Optional<Serial> groupSerial(NodeSettings settings, long cmActId, boolean twin, Serial first,
                                        SecureRandom random) {
        Path file = settings.dataDir().resolve(GROUP_SERIALS_FILE);
        try {
            Map<Long, Serial> kept = readGroupSerials(file);
            Serial configured = settings.virtualSerials().get(cmActId);
            Serial chosen;
            if (configured != null) {
                chosen = configured;
            } else if (twin) {
                byte[] derived = settings.peerAuth().derive("opentmr-virtual-serial",
                        ByteBuffer.allocate(Long.BYTES).putLong(cmActId).array());
                int value = ByteBuffer.wrap(derived).getInt() & Integer.MAX_VALUE;
                chosen = new Serial(Serial.MASK_VIRTUAL_TMR, 10_000_000 + value % 90_000_000);
                Serial was = kept.get(cmActId);
                if (was != null && !was.equals(chosen)) {
                    LOG.error("{} keeps the serial {} for the virtual container of CmActId {}, not the twin's {}: set "
                            + "opentmr.node.virtual-serials {{ {} = \"{}\" }} on both nodes; that virtual container is "
                            + "not formed", file, was, cmActId, chosen, cmActId, was);
                    return Optional.empty();
                }
            } else if (kept.containsKey(cmActId)) {
                chosen = kept.get(cmActId);
            } else {
                do {
                    chosen = new Serial(Serial.MASK_VIRTUAL_TMR, 10_000_000 + random.nextInt(90_000_000));
                } while (chosen.equals(first) || kept.containsValue(chosen));
            }
            for (Map.Entry<Long, Serial> other : kept.entrySet()) {
                if (other.getKey() != cmActId && other.getValue().equals(chosen) || chosen.equals(first)) {
                    LOG.error("The serial {} for the virtual container of CmActId {} is another virtual container's "
                            + "already: set opentmr.node.virtual-serials {{ {} = \"131-…\" }}; not formed", chosen,
                            cmActId, cmActId);
                    return Optional.empty();
                }
            }
            if (!chosen.equals(kept.get(cmActId))) {
                kept.put(cmActId, chosen);
                writeGroupSerials(file, kept);
                LOG.info("Virtual container serial {} for CmActId {} kept in {}", chosen, cmActId, file);
            }
            return Optional.of(chosen);
        } catch (IOException | RuntimeException e) {
            LOG.error("Cannot keep the serial of the virtual container of CmActId {} in {}: {}; it is not formed",
                    cmActId, file, e.toString());
            return Optional.empty();
        }
    }

    /** {@code DATA_DIR/virtual-serials}: a line "CMACTID SERIAL" per virtual container beyond the first. */
    static Map<Long, Serial> readGroupSerials(Path file) throws IOException {
        Map<Long, Serial> kept = new java.util.TreeMap<>();
        if (!Files.exists(file)) {
            return kept;
        }
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            String text = line.strip();
            if (text.isEmpty() || text.startsWith("#")) {
                continue;
            }
            String[] parts = text.split("\\s+");
            try {
                kept.put(Long.parseLong(parts[0]), Serial.parse(parts[1]));
            } catch (RuntimeException e) {
                throw new IOException(file + ": not \"CMACTID SERIAL\": " + text, e);
            }
        }
        return kept;
    }

    private static void writeGroupSerials(Path file, Map<Long, Serial> serials) throws IOException {
        StringBuilder text = new StringBuilder("# CmActId and serial of each virtual container beyond the first\n");
        serials.forEach((cmActId, serial) -> text.append(cmActId).append(' ').append(serial).append('\n'));
        Path temporary = file.resolveSibling(file.getFileName() + ".tmp");
        Files.writeString(temporary, text, StandardCharsets.UTF_8);
        Files.move(temporary, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
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

    /** The active node's address for NOT_ACTIVE while this one does not serve ({@code ""}: unknown). */
    public void activeAddress(String address) {
        status.activeAddress(address);
    }

    /** What NOT_ACTIVE names as the active node now ({@code ""}: unknown). */
    public String activeAddress() {
        return status.activeAddress();
    }

    /**
     * Planned switch-over (a twin's active node only): the node stops serving, waits until its standby has every
     * record it wrote, gives the backends' lease back and then restarts as the standby, holding off from the lease
     * so the twin takes it. Fails with {@link io.opentmr.protocol.CmFailure} 130, the node still serving, when no
     * standby is in sync (or on a single node); with 105 when this node is not the serving active one.
     */
    public CompletionStage<Void> stepDown() {
        return role.stepDown();
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

    /**
     * The virtual container: its licenses, handles, and where a handle's request goes; {@code null} while none runs
     * (a twin's standby).
     */
    public ActorRef<VirtualContainer.Command> container() {
        return container.get();
    }

    /**
     * The running virtual containers of other CmActIds than the first's (each with its own serial, lease and
     * licenses), by CmActId; empty over backends of one container and on a standby.
     */
    public java.util.List<Group> otherContainers() {
        return container.others();
    }

    /**
     * The CmActIds each backend last listed and the first group's, once the node formed the groups they make; null
     * before the first group's CmActId is decided.
     */
    public Quorums.Discovered discovered() {
        return container.discovered();
    }

    /** The quorums over the backends' copies (how each backend looks from its watcher); {@code null} until spawned. */
    public ActorRef<Quorums.Command> quorums() {
        return quorums.get();
    }

    public java.time.Instant startedAt() {
        return startedAt;
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
        tracking.close();
    }
}
