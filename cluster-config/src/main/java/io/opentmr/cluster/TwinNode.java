package io.opentmr.cluster;

import com.typesafe.config.Config;
import io.opentmr.persistence.replication.ReplicationLeader;
import io.opentmr.persistence.replication.ReplicationSettings;
import io.opentmr.tmr.TmrNode;
import java.time.Clock;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.eventstream.EventStream;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.remote.artery.ThisActorSystemQuarantinedEvent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One node of a twin (DESIGN §6): a {@link TmrNode} in the twin's Pekko Cluster whose role follows the backends'
 * active lease. Both nodes ask the backends for the lease at every heartbeat; the one holding it is the active node:
 * it leads the replicated journal (stamped with the lease's epoch), runs the virtual container and serves clients.
 * The other is the standby: its journal follows the active's, record for record, it runs no persistent actor and
 * answers clients NOT_ACTIVE. When the active's process dies, its connections to the backends close and they free
 * its lease at once; the standby's next heartbeat acquires it and the standby takes over from its copy of the
 * journal. A frozen or cut-off active loses the lease after its TTL and is fenced by epoch on every backend.
 *
 * <p>A node that stops being the active one (it lost the lease), or whose actor system stops (the twin downed it,
 * {@link LeaseDowning}), restarts in this process as a standby: a new actor system on the same ports, whose
 * journal the handshake with the new active cuts back to what that one has. There is no pre-emption: a node that
 * comes back stays standby while its twin holds the lease. Two nodes under one name: the second refuses to run
 * ({@link TwinJoin.NameClashException}) and this node stops for good ({@link #whenStopped()} fails).
 */
public final class TwinNode implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(TwinNode.class);

    /** How often a node looks at the cluster's unreachable members, for {@link LeaseDowning}. */
    private static final Duration DOWNING_CHECK = Duration.ofMillis(100);
    /** The first restart's pause; it doubles while starts fail, up to {@link #MAX_RESTART_PAUSE}. */
    private static final Duration FIRST_RESTART_PAUSE = Duration.ofMillis(200);
    /**
     * 2 s: a failed restart is almost always the old actor system still holding the cluster port while it terminates
     * (seen to take 10-40 s after the twin downed it); trying again every 2 s costs nothing and restarts the standby
     * soon after the port is free.
     */
    private static final Duration MAX_RESTART_PAUSE = Duration.ofSeconds(2);
    /**
     * How long a stopped incarnation's actor system may take to terminate (beyond the node's own 10 s) before it
     * counts as stuck. Seen here: Pekko 1.2's Artery over TLS keeps a terminating system alive until the twin closes
     * its TLS connections ({@code IgnoreComplete}, no idle timeout; bounded only in Pekko 2.0), for minutes.
     */
    public static final Duration STOP_BOUND = Duration.ofSeconds(15);
    /**
     * After a step-down the node's next incarnation asks for the backends' lease only after this, so its twin takes
     * it (the twin asks at every heartbeat, 250 ms); should the twin not, this node asks again after it, so the site
     * is not left without an active node for longer.
     */
    public static final Duration STEP_DOWN_HOLD_OFF = Duration.ofSeconds(10);
    /** How long {@link #stop} lets an active node hand its role over before it stops anyway. */
    static final Duration STOP_HAND_OVER_BOUND = Duration.ofSeconds(10);

    /** How a node is started: {@link TmrNode#start(Config, Clock, TmrNode.Activation)}, or a test's own way. */
    @FunctionalInterface
    public interface Starter {
        TmrNode start(Config config, TmrNode.Activation activation);
    }

    /** One actor system of the node, from its start to its end. */
    private static final class Incarnation {
        final TmrNode node;
        final TwinReplication replication;
        final CompletableFuture<String> ended;
        volatile Throwable fatal;

        Incarnation(TmrNode node, TwinReplication replication, CompletableFuture<String> ended) {
            this.node = node;
            this.replication = replication;
            this.ended = ended;
        }
    }

    private final Config config;
    private final TwinSettings settings;
    private final ReplicationSettings replication;
    private final Starter starter;
    private final CompletableFuture<Void> stopped = new CompletableFuture<>();
    private final AtomicLong restarts = new AtomicLong();
    private final AtomicLong stuckStops = new AtomicLong();
    private final Runnable onStuck;
    private final Thread loop;
    private volatile Incarnation current;
    private volatile boolean closing;
    /** The incarnation that ends now handed the active role over: the next one holds off from the lease. */
    private volatile boolean steppedDown;

    private TwinNode(Config config, TwinSettings settings, ReplicationSettings replication, Starter starter,
                     Runnable onStuck) {
        this.onStuck = onStuck;
        this.config = config;
        this.settings = settings;
        this.replication = replication;
        this.starter = starter;
        this.loop = new Thread(this::run, "opentmr-twin-" + settings.name());
        loop.setDaemon(true);
    }

    /**
     * Starts a node of a twin from a resolved configuration ({@code opentmr.node.*} with its cluster keys, and the
     * journal plugin {@code opentmr.persistence}).
     *
     * @throws com.typesafe.config.ConfigException naming the key, for a bad or missing setting
     * @throws IllegalStateException               when its first start fails (it cannot listen, say)
     */
    public static TwinNode start(Config config, Clock clock) {
        return start(config, (full, activation) -> TmrNode.start(full, clock, activation));
    }

    /** As {@link #start(Config, Clock)}, each incarnation started by {@code starter}; a stuck stop is only logged. */
    public static TwinNode start(Config config, Starter starter) {
        return start(config, starter, () -> { });
    }

    /**
     * As {@link #start(Config, Starter)}; {@code onStuck} runs (on the node's own thread) when a stopped incarnation
     * has not terminated within {@link #STOP_BOUND}: {@code tmr node} exits then, for its supervisor (systemd) to
     * start it afresh, since a restart in the process would wait for ports and a journal lock that stay taken.
     */
    public static TwinNode start(Config config, Starter starter, Runnable onStuck) {
        TwinSettings settings = TwinSettings.from(config);
        ReplicationSettings replication = ReplicationSettings.fromConfig(config);
        TwinNode node = new TwinNode(config, settings, replication, starter, onStuck);
        node.current = node.incarnation();
        node.loop.start();
        return node;
    }

    private Incarnation incarnation() {
        Config full = settings.pekkoConfig(TmrNode.SYSTEM_NAME).withFallback(config);
        CompletableFuture<String> ended = new CompletableFuture<>();
        CompletableFuture<ActorRef<ReplicationRole.Command>> role = new CompletableFuture<>();
        Duration holdOff = steppedDown ? STEP_DOWN_HOLD_OFF : Duration.ZERO;
        steppedDown = false;
        AtomicReference<ActorSystem<Void>> leading = new AtomicReference<>();
        TmrNode.Activation activation = new TmrNode.Activation() {
            @Override
            public CompletionStage<Void> activate(ActorSystem<Void> system, long epoch) {
                leading.set(system);
                CompletableFuture<Void> done = new CompletableFuture<>();
                role(role, system).tell(new ReplicationRole.Lead(epoch, done));
                return done;
            }

            @Override
            public void deactivated(String reason) {
                ended.complete(reason);
            }

            @Override
            public Optional<String> handOverRefusal() {
                if (twin().isEmpty()) {
                    return Optional.of("no twin is configured (--seed-nodes names this node alone)");
                }
                ActorSystem<Void> system = leading.get();
                if (system == null) {
                    return Optional.of("this node is not the active one");
                }
                ReplicationLeader.Monitor monitor = TwinReplication.get(system).leader();
                if (monitor.status() != ReplicationLeader.Status.IN_SYNC) {
                    return Optional.of("the journal's replication to the twin is degraded (" + monitor.reason()
                            + "); stepping down now would leave the site without an active node, or lose writes");
                }
                return Optional.empty();
            }

            @Override
            public CompletionStage<Void> handOver(Duration bound) {
                ActorSystem<Void> system = leading.get();
                return HandOver.await(system, TwinReplication.get(system).leader(), bound);
            }

            @Override
            public String twinAddress() {
                return twin().map(twin -> twin.host() + ":" + current.node.address().getPort()).orElse("");
            }

            @Override
            public void steppedDown(String reason) {
                steppedDown = true;
                ended.complete(reason);
            }

            @Override
            public Duration leaseHoldOff() {
                return holdOff;
            }
        };
        TmrNode node = starter.start(full, activation);
        ActorSystem<Void> system = node.actorSystem();
        TwinReplication journal = TwinReplication.get(system);
        // The first start has no current incarnation; a restart runs while the stopped one is still current.
        journal.describe(twin().map(TwinSettings.HostPort::toString).orElse(""),
                current == null ? 1 : restarts.get() + 2);
        journal.register(node.metrics().registry());
        Incarnation incarnation = new Incarnation(node, journal, ended);
        // While the twin leads the journal it is the active node: NOT_ACTIVE names it (its host, this node's port).
        twin().ifPresent(twin -> role(role, system).tell(new ReplicationRole.Follow(
                TwinSettings.address(TmrNode.SYSTEM_NAME, twin) + "/system/" + ReplicationRole.NAME + "/"
                        + ReplicationRole.LEADER,
                following -> node.activeAddress(following ? twin.host() + ":" + node.address().getPort() : ""))));
        system.systemActorOf(LeaseDowning.create(node::holdsLease, settings.downUnreachableAfter(), DOWNING_CHECK),
                "lease-downing", Props.empty());
        system.systemActorOf(restartWhenQuarantined(node, ended), "quarantine-restart", Props.empty());
        TwinJoin.start(system, settings).whenComplete((joined, failure) -> {
            if (failure instanceof TwinJoin.NameClashException clash) {
                incarnation.fatal = clash;
                ended.complete(clash.getMessage());
            } else if (failure == null) {
                LOG.info("Node {} is a member of the twin cluster: {}", settings.name(), joined.members());
            }
        });
        system.getWhenTerminated().thenRun(() -> ended.complete("its actor system stopped (downed by the twin, "
                + "or shut down)"));
        return incarnation;
    }

    /**
     * Ends the incarnation of a node without the lease whose twin has quarantined it. A standby cut off from the
     * active (a partition) is downed by it, but never hears so: the active's gossip cannot reach it, and once the
     * way is open again the active refuses every message of the downed incarnation (Artery's quarantine, for good).
     * Without a downing provider Pekko leaves such a node running, still a member in its own view, its journal
     * following no one, so a later take-over would lose everything written since the partition. A new incarnation
     * (new UID) joins and follows again. The lease holder ignores it: the lease, not the cluster, makes it active.
     */
    private Behavior<ThisActorSystemQuarantinedEvent> restartWhenQuarantined(TmrNode node,
                                                                            CompletableFuture<String> ended) {
        return Behaviors.setup(context -> {
            context.getSystem().eventStream().tell(new EventStream.Subscribe<>(ThisActorSystemQuarantinedEvent.class,
                    context.getSelf()));
            boolean[] told = new boolean[1];
            return Behaviors.receiveMessage(event -> {
                if (node.holdsLease()) {
                    if (!told[0]) {
                        told[0] = true;
                        LOG.warn("TMR node {}: the twin {} quarantined this node; it holds the backends' lease and "
                                + "serves on", settings.name(), event.remoteAddress().address());
                    }
                    return Behaviors.same();
                }
                ended.complete("the twin " + event.remoteAddress().address() + " quarantined this node (it downed it "
                        + "while they were cut off); a new incarnation joins and follows it again");
                return Behaviors.stopped();
            });
        });
    }

    /** The one replication role of an actor system, created by whichever asks first. */
    private ActorRef<ReplicationRole.Command> role(CompletableFuture<ActorRef<ReplicationRole.Command>> role,
                                                   ActorSystem<Void> system) {
        synchronized (role) {
            if (!role.isDone()) {
                role.complete(system.systemActorOf(ReplicationRole.create(replication, settings.name(),
                                TwinReplication.get(system)),
                        ReplicationRole.NAME, Props.empty()));
            }
            return role.join();
        }
    }

    /** The other node's cluster address, if the twin has two. */
    private Optional<TwinSettings.HostPort> twin() {
        return settings.seeds().stream().filter(seed -> !seed.equals(settings.self())).findFirst();
    }

    private void run() {
        Incarnation incarnation = current;
        Duration pause = FIRST_RESTART_PAUSE;
        while (true) {
            String reason = incarnation.ended.join();
            incarnation.node.close();
            if (closing) {
                stopped.complete(null);
                return;
            }
            if (incarnation.fatal != null) {
                LOG.error("TMR node {} stops: {}", settings.name(), reason);
                stopped.completeExceptionally(incarnation.fatal);
                return;
            }
            LOG.warn("TMR node {} restarts as the standby: {}", settings.name(), reason);
            if (!terminated(incarnation.node, STOP_BOUND)) {
                stuckStops.incrementAndGet();
                LOG.error("TMR node {}: its actor system has not terminated {} s after it was stopped, so its cluster "
                        + "port and journal stay taken (Pekko 1.2's Artery over TLS waits for the twin to close its "
                        + "connections); a restart in this process waits for them", settings.name(),
                        STOP_BOUND.toSeconds());
                onStuck.run();
            }
            incarnation = null;
            while (incarnation == null) {
                try {
                    Thread.sleep(pause.toMillis());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    stopped.complete(null);
                    return;
                }
                if (closing) {
                    stopped.complete(null);
                    return;
                }
                try {
                    incarnation = incarnation();
                    restarts.incrementAndGet();
                    pause = FIRST_RESTART_PAUSE;
                } catch (RuntimeException e) {
                    pause = pause.multipliedBy(2).compareTo(MAX_RESTART_PAUSE) > 0 ? MAX_RESTART_PAUSE
                            : pause.multipliedBy(2);
                    LOG.error("TMR node {} could not restart ({}); trying again in {} ms", settings.name(),
                            e.toString(), pause.toMillis());
                }
            }
            current = incarnation;
            if (closing) {
                // Closed while this one started: its end is the loop's last.
                incarnation.node.close();
            }
        }
    }

    private static boolean terminated(TmrNode node, Duration bound) {
        try {
            node.whenTerminated().toCompletableFuture().get(bound.toMillis(), TimeUnit.MILLISECONDS);
            return true;
        } catch (java.util.concurrent.TimeoutException | java.util.concurrent.ExecutionException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /** The node's current incarnation: a new one after each restart. */
    public TmrNode node() {
        return current.node;
    }

    /** Whether this node is the active one and serves clients now. */
    public boolean serving() {
        return current.node.serving();
    }

    /** The replicated journal's status while this node is the active one (DEGRADED on a standby). */
    public ReplicationLeader.Monitor replication() {
        return current.replication.leader();
    }

    /** The members this node sees Up in the twin cluster now (itself included, once it has joined). */
    public int membersUp() {
        int up = 0;
        for (Member member : Cluster.get(current.node
                .actorSystem()).state().getMembers()) {
            up += member.status() == MemberStatus.up() ? 1 : 0;
        }
        return up;
    }

    /**
     * How many stopped incarnations did not terminate within {@link #STOP_BOUND} (each reported to the stuck
     * action, which exits the process under {@code tmr node}).
     */
    public long stuckStops() {
        return stuckStops.get();
    }

    /** How many times the node restarted in this process (each loss of the active role, each downing). */
    public long restarts() {
        return restarts.get();
    }

    public TwinSettings settings() {
        return settings;
    }

    /** Completes when the node stopped for good: {@link #close}, or fails with the name clash that stopped it. */
    public CompletionStage<Void> whenStopped() {
        return stopped;
    }

    /**
     * A planned stop (SIGTERM): an active node with a standby in sync hands the active role over first
     * ({@link TmrNode#stepDown}, at most {@link #STOP_HAND_OVER_BOUND}), so clients see a delay and nothing is lost;
     * without one it just stops, and the standby takes the lease its closed connections free. Then as {@link #close}.
     *
     * @return whether the node handed the active role over
     */
    public boolean stop() {
        closing = true;
        TmrNode node = current.node;
        boolean handedOver = false;
        if (node.serving()) {
            try {
                node.stepDown().toCompletableFuture().get(STOP_HAND_OVER_BOUND.toMillis(), TimeUnit.MILLISECONDS);
                handedOver = true;
                LOG.info("TMR node {} handed the active role over before stopping", settings.name());
            } catch (java.util.concurrent.ExecutionException e) {
                LOG.warn("TMR node {} stops without handing the active role over: {}", settings.name(),
                        e.getCause().getMessage());
            } catch (java.util.concurrent.TimeoutException e) {
                LOG.warn("TMR node {} stops: the hand-over did not complete within {} ms", settings.name(),
                        STOP_HAND_OVER_BOUND.toMillis());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        close();
        return handedOver;
    }

    /**
     * Stops the node at once (to the backends and the twin it looks like a crash: its connections close) and waits
     * (at most a minute) until its actor system has terminated and its ports are free.
     */
    @Override
    public void close() {
        closing = true;
        current.node.close();
        try {
            loop.join(TimeUnit.SECONDS.toMillis(60));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (loop.isAlive()) {
            LOG.warn("TMR node {} did not stop within 60 s", settings.name());
        }
    }
}
