package io.opentmr.tmr.backend;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Message;
import io.opentmr.tmr.NodeSettings;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.stream.ActorAttributes;
import org.apache.pekko.stream.KillSwitches;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.RestartSettings;
import org.apache.pekko.stream.UniqueKillSwitch;
import org.apache.pekko.stream.javadsl.Keep;
import org.apache.pekko.stream.javadsl.RestartSource;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Watches one backend: keeps an authenticated connection to it, holds the node's lease grant from it,
 * and reports its inventory.
 *
 * <p>Connecting, reconnecting with backoff and the heartbeat schedule are a Pekko stream
 * ({@link RestartSource} around connect-then-tick): a connection that closes ends the inner stream and
 * the restart connects again after the backoff. Each tick renews the lease on that backend (acquires it
 * when not held), and that request is the heartbeat: {@code missed-heartbeats} ticks without its answer
 * and the backend counts as down, its connection is closed, and the stream reconnects. Not while the backend's grant
 * to this node is current by the node's clocks: closing would free the grant for a rival at once, so the
 * connection is kept until the grant runs out (at most the lease TTL after its last renewal).
 *
 * <p>Asking for the lease is a switch ({@link PeerGroup#leaseWanted()}): while the node does not want it, the
 * heartbeat is an INVENTORY, and a grant the backend may still hold is given back with LEASE_RELEASE. The
 * watcher hears of a change at once ({@link PeerGroup#addWishListener}) and acts on it without waiting for
 * the next tick, unless a lease request is under way: its answer decides what follows.
 */
public final class BackendWatcher extends AbstractBehavior<BackendWatcher.Command> {

    /**
     * The watchers' own dispatcher ({@code opentmr.node.watcher-dispatcher}, one thread), for them and their
     * heartbeat streams: the heartbeat renews the node's lease on the backend, so no work of the licenses (a
     * recovery of many handles, a large checkpoint) on the default dispatcher may hold it back past the lease's TTL.
     */
    public static final String DISPATCHER = "opentmr.node.watcher-dispatcher";

    /** How a watcher is spawned: on {@link #DISPATCHER}. */
    public static final org.apache.pekko.actor.typed.Props PROPS =
            org.apache.pekko.actor.typed.DispatcherSelector.fromConfig(DISPATCHER);

    private static final Logger LOG = LoggerFactory.getLogger(BackendWatcher.class);

    public sealed interface Command {
    }

    record Connected(PeerLink link) implements Command {
    }

    record ConnectFailed(Throwable cause) implements Command {
    }

    record Disconnected(PeerLink link) implements Command {
    }

    enum Tick implements Command {
        INSTANCE
    }

    /**
     * Time to ask {@code link}'s backend for the lease again: it refused request {@code seq}, the lease being held by
     * another node. Void once another request went out (a tick's): that one's refusal schedules its own, so a watcher
     * never has more than one of these in force.
     */
    private record AskAgain(PeerLink link, long seq) implements Command {
    }

    /** The node started or stopped wanting the lease. */
    enum WishChanged implements Command {
        INSTANCE
    }

    /** What the heartbeat request asked. */
    enum Ask {
        /** INVENTORY only: the lease is not wanted, or left to a rival for a while. */
        HEARTBEAT,
        /** LEASE_ACQUIRE or LEASE_RENEW. */
        LEASE,
        /** LEASE_RELEASE: the node no longer wants the lease. */
        RELEASE
    }

    /** @param seq the request's number: an answer to a request sent before the latest one is not waited for */
    record LeaseAnswered(PeerLink link, long seq, Ask ask, PeerGroup.Moment sentAt, Message reply,
                         Throwable failure) implements Command {
    }

    record InventoryAnswered(PeerLink link, Message reply, Throwable failure) implements Command {
    }

    /** What the watcher tells about its backend. */
    public sealed interface Report {
        int backend();
    }

    /** The backend is connected and holds these containers (sent after connecting and whenever they change). */
    public record Inventory(int backend, String name, List<ContainerInfo> containers) implements Report {
    }

    /** The backend is gone: connection lost, or heartbeats missed. */
    public record Down(int backend, String reason) implements Report {
    }

    private final int index;
    private final NodeSettings settings;
    private final PeerGroup group;
    private final ActorRef<Report> listener;
    private final UniqueKillSwitch killSwitch;

    private PeerLink link;
    private final Runnable wishListener;
    private boolean leaseOutstanding;
    /** What the outstanding heartbeat request asks, and its number. */
    private Ask outstanding;
    private long leaseSeq;
    private boolean inventoryOutstanding;
    /** Whether inventories ask for every container of the backend (scope 1); see {@link #create}. */
    private final boolean discover;
    /** The backend refused INVENTORY's scope (an older one): asked without it from then on. */
    private boolean scopeRefused;
    /** The scope the outstanding INVENTORY asked for. */
    private int inventoryScope;
    private int missed;
    private long ticks;
    private boolean holding;
    /** Non-zero: ask the backend for this epoch at the next chance (the other backends granted it). */
    private long wantedEpoch;
    private List<ContainerInfo> lastInventory;
    private boolean reportedUp;
    private int failedConnects;
    private final java.time.Clock clock;
    private final java.util.Random random;
    /** Whether this backend's grant is held without a certificate, as the last heartbeat check saw it. */
    private boolean inMinority;
    /**
     * Since when ({@link System#nanoTime}) the grant is so held: a duration on the monotonic clock, which no step of
     * the wall clock moves (see {@link #giveBackMinorityGrant}).
     */
    private long minoritySinceNanos;
    /** After giving a minority grant back: no LEASE_ACQUIRE before then, so that a rival node can take it. */
    private long quietUntil;
    /** When the wake-up for the end of a quiet time is scheduled for (see {@link #quiet}). */
    private long wakeAt;
    /** The epoch of the grant this backend gave last. */
    private long heldEpoch;

    public static Behavior<Command> create(int index, InetSocketAddress address, NodeSettings settings,
                                           PeerGroup group, PeerLink.Connector connector,
                                           ActorRef<Report> listener, java.time.Clock clock, java.util.Random random) {
        return create(index, address, settings, group, connector, listener, clock, random, false);
    }

    /**
     * @param discover whether its inventories list every container of the backend (INVENTORY scope 1, the
     *                 connection's first), so the node learns the CmActIds the backends share: the first group's
     *                 watchers. A backend that refuses the scope (older, ERROR 105, and it closes the connection) is
     *                 asked without it from then on: its connection's container only.
     */
    public static Behavior<Command> create(int index, InetSocketAddress address, NodeSettings settings,
                                           PeerGroup group, PeerLink.Connector connector,
                                           ActorRef<Report> listener, java.time.Clock clock, java.util.Random random,
                                           boolean discover) {
        return Behaviors.setup(context -> new BackendWatcher(context, index, address, settings, group, connector,
                listener, clock, random, discover));
    }

    private BackendWatcher(ActorContext<Command> context, int index, InetSocketAddress address, NodeSettings settings,
                           PeerGroup group, PeerLink.Connector connector, ActorRef<Report> listener,
                           java.time.Clock clock, java.util.Random random, boolean discover) {
        super(context);
        this.discover = discover;
        this.clock = clock;
        this.random = random;
        this.index = index;
        this.settings = settings;
        this.group = group;
        this.listener = listener;
        RestartSettings backoff = RestartSettings.create(settings.reconnectMin(), settings.reconnectMax(), 0.2);
        ActorRef<Command> self = context.getSelf();
        this.wishListener = () -> self.tell(WishChanged.INSTANCE);
        group.addWishListener(wishListener);
        Source<Command, NotUsed> lifecycle = RestartSource.withBackoff(backoff, () -> Source
                .completionStage(connector.connect(address).handle((connected, failure) -> failure == null
                        ? (Command) new Connected(connected) : new ConnectFailed(failure)))
                .flatMapConcat(first -> {
                    if (!(first instanceof Connected connected)) {
                        return Source.single(first);
                    }
                    CompletionStage<Command> closed = connected.link().closed()
                            .handle((ok, failure) -> new Disconnected(connected.link()));
                    return Source.single(first)
                            .concat(Source.tick(settings.heartbeat(), settings.heartbeat(), (Command) Tick.INSTANCE)
                                    .mapMaterializedValue(cancellable -> NotUsed.getInstance())
                                    .merge(Source.completionStage(closed))
                                    .takeWhile(command -> !(command instanceof Disconnected), true));
                }));
        this.killSwitch = lifecycle.viaMat(KillSwitches.single(), Keep.right())
                .toMat(Sink.foreach(self::tell), Keep.left())
                .withAttributes(ActorAttributes.dispatcher(DISPATCHER))
                .run(Materializer.matFromSystem(context.getSystem()));
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Connected.class, this::onConnected)
                .onMessage(ConnectFailed.class, this::onConnectFailed)
                .onMessage(Disconnected.class, this::onDisconnected)
                .onMessage(Tick.class, tick -> onTick())
                .onMessage(WishChanged.class, changed -> onWishChanged())
                .onMessage(AskAgain.class, this::onAskAgain)
                .onMessage(LeaseAnswered.class, this::onLease)
                .onMessage(InventoryAnswered.class, this::onInventory)
                .onSignal(PostStop.class, stop -> {
                    group.removeWishListener(wishListener);
                    killSwitch.shutdown();
                    if (link != null) {
                        link.close();
                    }
                    return this;
                })
                .build();
    }

    private String name() {
        return "backend " + (index + 1) + " (" + settings.backends().get(index) + ")";
    }

    private Behavior<Command> onConnected(Connected connected) {
        if (link != null) {
            link.close();
        }
        link = connected.link();
        failedConnects = 0;
        missed = 0;
        leaseOutstanding = false;
        inventoryOutstanding = false;
        holding = false;
        LOG.info("Connected to {}: {}", name(), link.backendName());
        group.linkUp(index, link);
        // The inventory first: an older backend refuses its scope by closing the connection, before any grant.
        askInventory();
        askLease();
        return this;
    }

    private Behavior<Command> onConnectFailed(ConnectFailed failed) {
        failedConnects++;
        // One line when it starts failing and then one a minute or so, not one per backoff step.
        if (failedConnects == 1 || failedConnects % 20 == 0) {
            LOG.warn("Cannot connect to {} ({} attempts): {}", name(), failedConnects, describe(failed.cause()));
        }
        return this;
    }

    private Behavior<Command> onDisconnected(Disconnected disconnected) {
        if (disconnected.link() == link) {
            down("connection closed");
        }
        return this;
    }

    private Behavior<Command> onTick() {
        if (link == null) {
            return this;
        }
        ticks++;
        giveBackMinorityGrant();
        if (leaseOutstanding) {
            missed++;
            if (missed >= settings.missedHeartbeats() && group.grantEpoch(index) >= 0) {
                // The backend's grant is still this node's, by the node's own clock: closing the connection would
                // free it on the backend at once, and a twin's standby, which asks at every heartbeat, would take it.
                // That grant's higher epoch fences this node's certificate on the backend, so one backend stalling
                // for a moment (a starved machine) would end the active node's role. The connection is kept until
                // the grant runs out; a backend that answers before then goes on as if nothing happened, and the
                // writes it missed meanwhile are re-synced as any missed write.
                if (missed == settings.missedHeartbeats()) {
                    LOG.warn("{}: {} heartbeats missed; its grant to this node is still current, so the connection "
                            + "is kept until it runs out", name(), missed);
                }
                return this;
            }
            if (missed >= settings.missedHeartbeats()) {
                PeerLink gone = link;
                down(missed + " heartbeats missed");
                gone.close();
                return this;
            }
        } else {
            askLease();
        }
        if (ticks % settings.inventoryEvery() == 0) {
            askInventory();
        }
        return this;
    }

    private Behavior<Command> onAskAgain(AskAgain again) {
        // Only if no request went out since the refusal (not on another connection either), and not once the node no
        // longer wants the lease or holds this grant; a quiet time turns it into an INVENTORY (askLease).
        if (again.link() == link && again.seq() == leaseSeq && !leaseOutstanding && !holding
                && group.leaseWanted()) {
            askLease();
        }
        return this;
    }

    private Behavior<Command> onWishChanged() {
        if (!group.leaseWanted()) {
            quietUntil = 0;
        }
        // A lease request under way is answered first; its answer asks again if the wish needs it.
        if (link != null && (!leaseOutstanding || outstanding == Ask.HEARTBEAT)) {
            askLease();
        }
        return this;
    }

    /**
     * A grant that forms no certificate (the other backends granted a rival node, or are gone) is given back
     * after a bounded, jittered time, and not asked for again for a while: two nodes holding one grant each
     * (the third backend down) would otherwise wait for each other forever. The jitter makes one of them
     * give up first; the other then takes the freed grant and holds two.
     *
     * <p>In such a stand-off (fewer than two other backends refuse the node: no rival holds two) the node then
     * leaves alone for a while not only the backend it gave back but also those whose grant a rival holds: when
     * both nodes give their grant back within one heartbeat of each other, each would otherwise take the other's
     * at its next heartbeat and the stand-off would start again, round after round. The node whose quiet time
     * ends first asks them all at once and takes them. Backends that were down or never refused the node are
     * asked as usual (a lone node whose other backends come back serves at once). When a rival does hold two,
     * only the given-back backend is left alone, so that the node takes the others at once if that rival dies
     * (a standby's take-over).
     */
    private void giveBackMinorityGrant() {
        long now = clock.millis();
        long ttl = settings.leaseTtl().toMillis();
        if (!holding || !group.leaseWanted() || group.grantsHeld() >= 2) {
            // Two grants (of one epoch, or converging on one) are no minority.
            inMinority = false;
            return;
        }
        // How long the minority lasts is measured on the monotonic clock. On the wall clock a step forward of more
        // than 2-4 TTL counted as time held: the first check after it gave back at once the grant of a node that had
        // regained its other grants within a heartbeat before the step (no check had seen them yet), and a step back
        // held off any give-back for as long as the step.
        long nanos = System.nanoTime();
        if (!inMinority) {
            inMinority = true;
            minoritySinceNanos = nanos;
            return;
        }
        long heldMillis = (nanos - minoritySinceNanos) / 1_000_000;
        if (heldMillis < 2 * ttl + (long) (random.nextDouble() * 2 * ttl)) {
            return;
        }
        boolean standOff = group.refusedOtherThan(index) < 2;
        LOG.warn("{}: the node held this backend's grant for {} ms without a certificate (no second backend granted "
                + "it); giving it back so that another node can hold two{}", name(), heldMillis,
                standOff ? ", and leaving it and the rival's backends alone for a while" : "");
        link.request(new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, settings.nodeName(), heldEpoch));
        holding = false;
        inMinority = false;
        group.grantLost(index);
        group.givenBack(index);
        long quiet = now + ttl + (long) (random.nextDouble() * ttl);
        if (standOff) {
            group.quietAfterStandOff(index, quiet);
        } else {
            quietUntil = quiet;
        }
    }

    /**
     * Whether the watcher must not ask for a grant it does not hold now; if so, a wake-up is scheduled for the
     * moment the quiet time ends, so that a node's watchers all ask then, not each at its own next heartbeat.
     */
    private boolean quiet() {
        long now = clock.millis();
        long until = Math.max(quietUntil, group.quietUntil(index));
        // A quiet time is at most 2 TTL: one further off was set before the wall clock stepped back.
        if (holding || now >= until || until - now > 2 * settings.leaseTtl().toMillis()) {
            return false;
        }
        if (wakeAt != until) {
            wakeAt = until;
            getContext().scheduleOnce(Duration.ofMillis(until - now), getContext().getSelf(), WishChanged.INSTANCE);
        }
        return true;
    }

    private void askLease() {
        long ttl = settings.leaseTtl().toMillis();
        Message request;
        Ask ask;
        if (!group.leaseWanted()) {
            if (group.mayHold(index)) {
                // The epoch of the last grant: if an answer was lost and the backend granted another one, this
                // release frees nothing and that grant runs out after its TTL (or with the connection).
                request = new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, settings.nodeName(), heldEpoch);
                ask = Ask.RELEASE;
                holding = false;
                wantedEpoch = 0;
                group.grantLost(index);
            } else {
                request = new Message.Inventory();
                ask = Ask.HEARTBEAT;
            }
        } else if (quiet()) {
            // Still the heartbeat, but no LEASE_ACQUIRE: the grant just given back is left to a rival node.
            request = new Message.Inventory();
            ask = Ask.HEARTBEAT;
        } else if (holding && wantedEpoch == 0) {
            request = new Message.LeaseRenew(LeaseGrant.ACTIVE_LEASE, settings.nodeName(), group.epoch(), ttl);
            ask = Ask.LEASE;
        } else {
            long proposed = Math.max(wantedEpoch, group.targetEpoch());
            request = new Message.LeaseAcquire(LeaseGrant.ACTIVE_LEASE, settings.nodeName(), proposed, ttl);
            ask = Ask.LEASE;
        }
        if (ask == Ask.LEASE) {
            group.asking(index);
        }
        leaseOutstanding = true;
        outstanding = ask;
        long seq = ++leaseSeq;
        PeerLink asked = link;
        PeerGroup.Moment sentAt = group.now();
        getContext().pipeToSelf(asked.request(request),
                (reply, failure) -> new LeaseAnswered(asked, seq, ask, sentAt, reply, failure));
    }

    private void askInventory() {
        if (inventoryOutstanding) {
            return;
        }
        inventoryOutstanding = true;
        PeerLink asked = link;
        inventoryScope = discover && !scopeRefused ? Message.Inventory.SCOPE_ALL : Message.Inventory.SCOPE_CONNECTION;
        getContext().pipeToSelf(asked.request(new Message.Inventory(inventoryScope)),
                (reply, failure) -> new InventoryAnswered(asked, reply, failure));
    }

    private Behavior<Command> onLease(LeaseAnswered answer) {
        if (answer.link() != link || answer.seq() != leaseSeq) {
            return this;
        }
        leaseOutstanding = false;
        if (answer.ask() == Ask.RELEASE) {
            return onReleased(answer);
        }
        if (answer.failure() != null) {
            Throwable cause = unwrap(answer.failure());
            if (cause instanceof CmFailure refused) {
                missed = 0;
                if (holding || refused.code() != CmError.TMR_LEASE_REFUSED.code() || LOG.isDebugEnabled()) {
                    LOG.warn("{} refused the node's lease: {}", name(), refused.getMessage());
                }
                holding = false;
                group.grantLost(index);
                if (answer.ask() == Ask.LEASE) {
                    group.givenBack(index);
                    group.leaseAnswered(index, refused.code() == CmError.TMR_LEASE_REFUSED.code());
                    if (refused.code() == CmError.TMR_LEASE_REFUSED.code() && group.leaseWanted()
                            && settings.acquireRetry().compareTo(settings.heartbeat()) < 0) {
                        // Held by another node: asked again soon, so that a standby sees the grants of an active
                        // that died (freed with its connections) within acquire-retry, not at its next heartbeat.
                        getContext().scheduleOnce(settings.acquireRetry(), getContext().getSelf(),
                                new AskAgain(answer.link(), answer.seq()));
                    }
                }
            }
            // A timeout counts as a missed heartbeat, as a missing answer does.
            return this;
        }
        missed = 0;
        if (answer.reply() instanceof Message.LeaseGranted grantReply) {
            LeaseGrant grant = grantReply.grant();
            heldEpoch = grant.epoch();
            if (!group.leaseWanted()) {
                // Asked for before the node stopped wanting it: given back at once.
                askLease();
                return this;
            }
            group.leaseAnswered(index, false);
            if (!holding) {
                LOG.info("{} granted the node the lease for epoch {}", name(), grant.epoch());
            }
            holding = true;
            long better = group.granted(index, grant, answer.sentAt());
            wantedEpoch = better > 0 ? better : 0;
            if (better > 0) {
                askLease();
            }
        }
        return this;
    }

    /** A LEASE_RELEASE was answered: released, or refused because the backend held no such grant. */
    private Behavior<Command> onReleased(LeaseAnswered answer) {
        if (answer.failure() != null && !(unwrap(answer.failure()) instanceof CmFailure refused
                && refused.code() == CmError.TMR_LEASE_REFUSED.code())) {
            // No answer, or refused here before it was sent (309: the link is full): the next tick sends it again.
            // Only the backend's answer, a release or a refusal (it held no such grant), confirms it.
            return this;
        }
        missed = 0;
        LOG.info("{}: the node gave back the lease (epoch {})", name(), heldEpoch);
        group.givenBack(index);
        if (group.leaseWanted()) {
            askLease();
        }
        return this;
    }

    private Behavior<Command> onInventory(InventoryAnswered answer) {
        if (answer.link() != link) {
            return this;
        }
        inventoryOutstanding = false;
        if (answer.failure() != null) {
            if (inventoryScope != Message.Inventory.SCOPE_CONNECTION && unwrap(answer.failure()) instanceof CmFailure
                    refused && refused.code() == CmError.INVALID_PARAMETER.code()) {
                scopeRefused = true;
                LOG.info("{} does not list all its containers (an older backend: {}); the node knows its first "
                        + "container only", name(), refused.getMessage());
            }
            LOG.debug("{} did not answer INVENTORY: {}", name(), describe(answer.failure()));
            return this;
        }
        if (answer.reply() instanceof Message.InventoryOk inventory) {
            if (!reportedUp || !inventory.containers().equals(lastInventory)) {
                lastInventory = inventory.containers();
                reportedUp = true;
                listener.tell(new Inventory(index, link.backendName(), inventory.containers()));
            }
        }
        return this;
    }

    private void down(String reason) {
        PeerLink gone = link;
        link = null;
        holding = false;
        wantedEpoch = 0;
        leaseOutstanding = false;
        inventoryOutstanding = false;
        group.linkDown(index, gone);
        if (reportedUp) {
            LOG.warn("{} is down: {}", name(), reason);
            reportedUp = false;
            lastInventory = null;
            listener.tell(new Down(index, reason));
        }
    }

    /** The failure a stage failed with: the cause of a {@link CompletionException}, else the failure itself. */
    public static Throwable unwrap(Throwable failure) {
        return failure instanceof CompletionException && failure.getCause() != null ? failure.getCause() : failure;
    }

    private static String describe(Throwable failure) {
        Throwable cause = unwrap(failure);
        return cause.getMessage() == null ? cause.toString() : cause.getMessage();
    }
}
