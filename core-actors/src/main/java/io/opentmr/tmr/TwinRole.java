package io.opentmr.tmr;

import com.typesafe.config.ConfigFactory;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.tmr.backend.PeerGroup;
import io.opentmr.tmr.license.StandbyRehearsal;
import io.opentmr.tmr.license.TmrLicenseEvent;
import java.time.Duration;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.persistence.Persistence;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A twin node's role, decided by the backends' active lease alone: while another node holds it this node is the
 * standby and runs no persistent actor (its journal is the active's copy); once it holds the lease it
 * {@linkplain TmrNode.Activation#activate activates} (the journal now written under the lease's epoch) and only then
 * starts the virtual container, which recovers from that journal, reconciles with the backends and serves. Losing
 * the lease, or holding it under another epoch than the one it activated with, ends the role for good
 * ({@link TmrNode.Activation#deactivated}): another node may have written since, so this state must never serve
 * again; the node is restarted as a standby. So does an activation that has not completed within its bound: a node
 * that cannot make its journal ready must not hold the lease, and keep its twin from taking over, without serving.
 *
 * <p>A planned switch-over ({@link TmrNode#stepDown}) ends the role the other way round: the node stops serving,
 * waits until its standby has every record, gives the lease back and restarts as the standby, holding off from the
 * lease for a while so the standby takes it. Refused, the node serving on, while no standby is in sync.
 *
 * <p>The backend watchers run under this actor from the start, on the standby too: they keep the connections, ask
 * for the lease at every heartbeat (a lease whose holder's connections closed is granted at once) and read the
 * inventories. Their latest view is kept and handed to the container when it starts.
 */
final class TwinRole extends AbstractBehavior<TwinRole.Command> {

    private static final Logger LOG = LoggerFactory.getLogger(TwinRole.class);

    sealed interface Command {
    }

    private enum Tick implements Command {
        INSTANCE
    }

    private record ViewCounted(VirtualContainer.Counted counted) implements Command {
    }

    private record Activated(long epoch, Throwable failure) implements Command {
    }

    private record ActivationDue(long epoch) implements Command {
    }

    /**
     * A backend's allocations, listed once the node held the lease at {@code epoch} ({@link #prelist}); {@code fenced}:
     * the backend had granted the node that epoch when the listing started.
     */
    private record Listed(long epoch, int backend, long generation, boolean fenced,
                          Map<LicenseKey, List<Allocation>> byKey, Throwable failure) implements Command {
    }

    /** Hand the active role over to the standby ({@link TmrNode#stepDown}); {@code done} completes once handed. */
    record StepDown(CompletableFuture<Void> done) implements Command {
    }

    /** The standby has every record, or not ({@code failure}). */
    private record HandedOver(Throwable failure) implements Command {
    }

    /** The backends have the lease back (or the bound passed: it runs out on its own within its TTL). */
    private record LeaseGivenBack(boolean released) implements Command {
    }

    private enum Restart implements Command {
        INSTANCE
    }

    /** The standby's rehearsal ended (done, or stopped by a take-over). */
    private enum RehearsalEnded implements Command {
        INSTANCE
    }

    /** Time for the standby to list the backends again ({@link #rehearseListings}). */
    private enum RehearseListings implements Command {
        INSTANCE
    }

    /** A standby's listing of a backend ended: {@code allocations} listed in {@code millis}, or {@code failure}. */
    private record ListingRehearsed(int backend, boolean digests, int allocations, long millis, Throwable failure)
            implements Command {
    }

    private enum State {
        STANDBY, ACTIVATING, ACTIVE, STEPPING_DOWN, ENDED
    }

    /**
     * The standby's first listing rehearsal ({@link #rehearseListings}), once its start's own work (catch-up, journal
     * rehearsal) is done; or after the interval, if shorter.
     */
    static final Duration FIRST_LISTING_REHEARSAL = Duration.ofSeconds(10);

    /** How long the standby may take to have every record once the node stopped serving. */
    private static final Duration HAND_OVER_BOUND = Duration.ofSeconds(5);
    /** How long the backends may take to confirm the lease is given back; past it the lease runs out on its own. */
    private static final Duration RELEASE_BOUND = Duration.ofSeconds(2);
    /** The step-down's answer is written before the restart closes the operator's connection. */
    private static final Duration RESTART_AFTER_ANSWER = Duration.ofMillis(200);

    private final PeerGroup peers;
    private final NodeStatus status;
    private final TmrNode.Activation activation;
    private final Behavior<VirtualContainer.Command> containerBehavior;
    private final TmrNode.ContainerHolder holder;
    private final Duration activationTimeout;
    private final TimerScheduler<Command> timers;
    private State state = State.STANDBY;
    private long epoch;
    private VirtualContainer.Counted lastView;
    private ActorRef<VirtualContainer.Command> container;
    private CompletableFuture<Void> steppingDown;
    /** The further virtual containers running when the node began to step down: their leases are given back too. */
    private java.util.List<TmrNode.Group> othersSteppingDown = java.util.List.of();
    /** The standby's rehearsal of the take-over's journal path while it runs ({@link StandbyRehearsal}), or null. */
    private ActorRef<StandbyRehearsal.Command> rehearsal;
    /** When ({@link System#nanoTime}) the node began to activate. */
    private long activatingSince;
    /** Per backend, the listing under way or kept ({@link #prelist}); a new generation drops the one before. */
    private final long[] listingGeneration;
    /** Per backend, the listing kept for the container until it starts; null when none. */
    private final VirtualContainer.Prelisted[] prelisted;
    /** Whether the standby's listing rehearsals may ask for another page: false from the take-over on. */
    private volatile boolean listingRehearsalWanted = true;
    /** The standby's listing rehearsals under way. */
    private int listingsRehearsing;
    /** Whether a listing rehearsal was logged at INFO already (later ones at DEBUG). */
    private boolean listingRehearsalLogged;

    /**
     * @param quorums the backend watchers' quorums, given where to send their views
     * @param check             how often the lease is looked at: the take-over waits up to this after the grants came
     * @param activationTimeout how long the activation's stage may take: a node that holds the lease but cannot
     *                          make its journal ready must not keep the lease from its twin, so its role ends
     * @param listingInterval   how often the standby lists the backends ({@link #rehearseListings}); zero: never
     */
    static Behavior<Command> create(PeerGroup peers, NodeStatus status, TmrNode.Activation activation,
                                    Behavior<VirtualContainer.Command> container, TmrNode.ContainerHolder holder,
                                    TmrNode.RoleHolder role,
                                    Function<ActorRef<VirtualContainer.Counted>, Behavior<Quorums.Command>> quorums,
                                    Duration check, Duration activationTimeout, Duration listingInterval) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(Tick.INSTANCE, check);
            if (listingInterval.compareTo(Duration.ZERO) > 0) {
                timers.startTimerWithFixedDelay(RehearseListings.INSTANCE, RehearseListings.INSTANCE,
                        listingInterval.compareTo(FIRST_LISTING_REHEARSAL) < 0 ? listingInterval
                                : FIRST_LISTING_REHEARSAL, listingInterval);
            }
            context.spawn(quorums.apply(context.messageAdapter(VirtualContainer.Counted.class, ViewCounted::new)),
                    "quorums");
            ActorRef<Command> self = context.getSelf();
            role.set(() -> {
                CompletableFuture<Void> done = new CompletableFuture<>();
                self.tell(new StepDown(done));
                return done;
            });
            ActorSystem<Void> system = context.getSystem();
            CompletableFuture.runAsync(() -> warmUp(system),
                    system.dispatchers().lookup(DispatcherSelector.blocking()));
            TwinRole twin = new TwinRole(context, peers, status, activation, container, holder, activationTimeout,
                    timers);
            twin.rehearsal = context.spawn(StandbyRehearsal.create(context.getSystem().ignoreRef()), "rehearsal");
            context.watchWith(twin.rehearsal, RehearsalEnded.INSTANCE);
            return twin;
        }));
    }

    /**
     * Readies what a take-over needs first, while the standby has time: the journal plugin, and the serializer of
     * the node's events (its first use builds the Jackson mapper; measured on the take-over's path before).
     */
    private static void warmUp(ActorSystem<Void> system) {
        try {
            Persistence.get(Adapter.toClassic(system))
                    .journalFor("", ConfigFactory.empty());
            Serialization serialization = SerializationExtension.get(system);
            for (Object event : new Object[] {new TmrLicenseEvent.SeatReleased(0, "", 0),
                    new VirtualContainer.CmActIdLearned(0, 0)}) {
                Serializer serializer = serialization.findSerializerFor(event);
                byte[] bytes = serializer.toBinary(event);
                String manifest = Serializers.manifestFor(serializer, event);
                serialization.deserialize(bytes, serializer.identifier(), manifest).get();
            }
        } catch (Exception | LinkageError e) {
            LOG.debug("Standby: warming the journal and serializers up failed ({}); a take-over does it then", e.toString());
        }
    }

    private TwinRole(ActorContext<Command> context, PeerGroup peers, NodeStatus status, TmrNode.Activation activation,
                     Behavior<VirtualContainer.Command> containerBehavior, TmrNode.ContainerHolder holder,
                     Duration activationTimeout, TimerScheduler<Command> timers) {
        super(context);
        this.activationTimeout = activationTimeout;
        this.timers = timers;
        this.peers = peers;
        this.status = status;
        this.activation = activation;
        this.containerBehavior = containerBehavior;
        this.holder = holder;
        this.listingGeneration = new long[peers.size()];
        this.prelisted = new VirtualContainer.Prelisted[peers.size()];
        LOG.info("Standby: the node serves no client until it holds the backends' lease");
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(ViewCounted.class, this::onView)
                .onMessageEquals(Tick.INSTANCE, this::onTick)
                .onMessage(Activated.class, this::onActivated)
                .onMessage(Listed.class, this::onListed)
                .onMessage(StepDown.class, this::onStepDown)
                .onMessage(HandedOver.class, this::onHandedOver)
                .onMessage(LeaseGivenBack.class, this::onLeaseGivenBack)
                .onMessageEquals(RehearseListings.INSTANCE, this::rehearseListings)
                .onMessage(ListingRehearsed.class, this::onListingRehearsed)
                .onMessageEquals(RehearsalEnded.INSTANCE, () -> {
                    rehearsal = null;
                    return this;
                })
                .onMessageEquals(Restart.INSTANCE, () -> {
                    activation.steppedDown("stepped down: the active role was handed over to the twin");
                    return this;
                })
                .onMessage(ActivationDue.class, due -> state == State.ACTIVATING && due.epoch() == epoch
                        ? end("the activation (epoch " + epoch + ") did not complete within "
                        + activationTimeout.toMillis() + " ms: the journal did not become ready")
                        : this)
                .build();
    }

    private Behavior<Command> onView(ViewCounted view) {
        lastView = view.counted();
        BitSet inventoried = lastView.view().inventoried();
        for (int b = 0; b < prelisted.length; b++) {
            if (!inventoried.get(b)) {
                // Gone: what it holds when it is back (restored, replaced) is listed anew by the container.
                listingGeneration[b]++;
                prelisted[b] = null;
            }
        }
        if (container != null) {
            container.tell(lastView);
        }
        return this;
    }

    private Behavior<Command> onTick() {
        boolean held = peers.holdsLease();
        long now = peers.epoch();
        switch (state) {
            case STANDBY -> {
                if (held) {
                    if (rehearsal != null) {
                        // The take-over needs the CPU now; what was rehearsed so far stays compiled.
                        getContext().stop(rehearsal);
                        rehearsal = null;
                    }
                    listingRehearsalWanted = false;
                    timers.cancel(RehearseListings.INSTANCE);
                    state = State.ACTIVATING;
                    epoch = now;
                    activatingSince = System.nanoTime();
                    status.takeoverStarted(activatingSince);
                    LOG.info("The node holds the backends' lease (epoch {}): taking over as the active node", epoch);
                    ActorSystem<Void> system = getContext().getSystem();
                    CompletionStage<Void> done;
                    try {
                        done = activation.activate(system, epoch);
                    } catch (RuntimeException e) {
                        return end("activation failed: " + e);
                    }
                    long activating = epoch;
                    getContext().pipeToSelf(done, (ok, failure) -> new Activated(activating, failure));
                    prelist();
                    timers.startSingleTimer(new ActivationDue(activating), activationTimeout);
                }
            }
            case ACTIVATING, ACTIVE -> {
                if (!held) {
                    return end("the node lost the backends' lease (epoch " + epoch + ")");
                }
                if (now != epoch) {
                    return end("the backends' lease moved from epoch " + epoch + " to " + now
                            + ": another node may have held it meanwhile");
                }
            }
            case STEPPING_DOWN, ENDED -> {
            }
        }
        return this;
    }

    /**
     * The standby asks every linked backend for the digests of its allocations (LIST_DIGESTS), as a take-over does
     * first, and lists a backend that refuses them (an older one) whole and drops the listing, so that the take-over's
     * listing (and the backends' side of it) runs compiled code: a take-over lists such a backend whole before it
     * serves (100 000 allocations decoded with 100 000 handles), and in a profile of a take-over by a standby that
     * never ran that code the JIT compilers took 39 % of the new active's CPU (two cores). Reads the backends answer
     * without a journal write, taken again every {@code standby-listing-interval}, as the allocations may have grown
     * since. One round at a time; pages stop being asked for at the take-over.
     */
    private Behavior<Command> rehearseListings() {
        // Never with the lease: an older backend closes the connection on LIST_DIGESTS, and with it the grant.
        if (state != State.STANDBY || listingsRehearsing > 0 || peers.holdsLease()) {
            return this;
        }
        for (int b = 0; b < prelisted.length; b++) {
            if (!peers.isLinked(b)) {
                continue;
            }
            int backend = b;
            long started = System.nanoTime();
            listingsRehearsing++;
            if (peers.mayAskForDigests(backend)) {
                // A take-over compares digests and lists only the ranges that differ: that is what it rehearses (and
                // an older backend, which refuses them, is found now and listed whole from the next round on).
                getContext().pipeToSelf(BackendListing.digests(peers, backend, VirtualContainer.DIGEST_RANGES,
                                getContext().getExecutionContext()),
                        (digests, failure) -> new ListingRehearsed(backend, true,
                                digests == null ? 0 : (int) Math.min(Integer.MAX_VALUE, digests.total()),
                                (System.nanoTime() - started) / 1_000_000, failure));
                continue;
            }
            getContext().pipeToSelf(BackendListing.list(peers, backend, getContext().getExecutionContext(),
                            () -> listingRehearsalWanted),
                    (byKey, failure) -> new ListingRehearsed(backend, false,
                            byKey == null ? 0 : byKey.values().stream().mapToInt(List::size).sum(),
                            (System.nanoTime() - started) / 1_000_000, failure));
        }
        return this;
    }

    private Behavior<Command> onListingRehearsed(ListingRehearsed listed) {
        listingsRehearsing--;
        String what = listed.digests() ? "took the digests of" : "listed";
        if (listed.failure() != null) {
            LOG.debug("Standby: backend {} could not be {} for the rehearsal ({}); a take-over asks it anyway",
                    listed.backend() + 1, listed.digests() ? "asked for digests" : "listed",
                    listed.failure().toString());
        } else if (!listingRehearsalLogged && state == State.STANDBY) {
            listingRehearsalLogged = true;
            LOG.info("Standby: {} backend {}'s {} allocation(s) in {} ms and dropped them, so that a take-over's "
                    + "requests run compiled code (again every standby-listing-interval)", what, listed.backend() + 1,
                    listed.allocations(), listed.millis());
        } else {
            LOG.debug("Standby: {} backend {}'s {} allocation(s) in {} ms (rehearsal)", what, listed.backend() + 1,
                    listed.allocations(), listed.millis());
        }
        return this;
    }

    /**
     * Lists every backend's allocations as soon as the node holds the lease, while the journal is made ready and the
     * container and its licenses recover (only those not known to answer LIST_DIGESTS; the others the container
     * compares by digests): the container's re-syncs take these listings when it gains the lease at
     * the same epoch, instead of listing then. Valid for the same reason as the container's own listing at the gain:
     * in this epoch no other node writes, and until the node serves no client does. Only when every backend is
     * inventoried, as the container's own listing at the gain.
     */
    private void prelist() {
        if (lastView == null || lastView.view().inventoried().cardinality() < prelisted.length) {
            return;
        }
        long listedEpoch = epoch;
        for (int b = 0; b < prelisted.length; b++) {
            int backend = b;
            long generation = ++listingGeneration[b];
            prelisted[b] = null;
            if (peers.digestsKnown(backend)) {
                // The container compares its digests once the licenses recovered and lists only the ranges that
                // differ: a whole listing now would cost the take-over more than it saves.
                continue;
            }
            boolean fenced = peers.grantEpoch(backend) == listedEpoch;
            getContext().pipeToSelf(BackendListing.list(peers, backend, getContext().getExecutionContext()),
                    (byKey, failure) -> new Listed(listedEpoch, backend, generation, fenced, byKey, failure));
        }
    }

    private Behavior<Command> onListed(Listed listed) {
        int backend = listed.backend();
        if (listed.generation() != listingGeneration[backend] || listed.epoch() != epoch
                || state != State.ACTIVATING && state != State.ACTIVE) {
            return this;
        }
        if (listed.failure() != null) {
            LOG.debug("Backend {} could not be listed at the take-over ({}); the container lists it", backend + 1,
                    listed.failure().toString());
            return this;
        }
        VirtualContainer.Prelisted listing = new VirtualContainer.Prelisted(listed.epoch(), backend, listed.byKey(),
                listed.fenced());
        if (container != null) {
            container.tell(listing);
        } else {
            prelisted[backend] = listing;
        }
        return this;
    }

    private Behavior<Command> onActivated(Activated activated) {
        if (state != State.ACTIVATING || activated.epoch() != epoch) {
            return this;
        }
        if (activated.failure() != null) {
            return end("activation failed: " + activated.failure());
        }
        container = getContext().spawn(containerBehavior, "virtual-container");
        holder.set(container);
        // Before the view: the container takes a listing when it gains the lease, which the view makes it see.
        for (int b = 0; b < prelisted.length; b++) {
            if (prelisted[b] != null) {
                container.tell(prelisted[b]);
                prelisted[b] = null;
            }
        }
        if (lastView != null) {
            container.tell(lastView);
        }
        state = State.ACTIVE;
        LOG.info("Active (epoch {}, journal ready in {} ms): the virtual container recovers from the journal and "
                + "reconciles with the backends before it serves", epoch,
                (System.nanoTime() - activatingSince) / 1_000_000);
        return this;
    }

    /**
     * A planned switch-over: refused, the node serving on, without a standby in sync; otherwise the node stops
     * serving at once (requests hear NOT_ACTIVE naming the twin, which clients follow with their handles), waits
     * until the standby has every record, stops the container, gives the lease back and restarts as the standby.
     */
    private Behavior<Command> onStepDown(StepDown stepDown) {
        if (state != State.ACTIVE || !status.serving()) {
            stepDown.done().completeExceptionally(new CmFailure(CmError.INVALID_PARAMETER, "this node is not the "
                    + "serving active node (" + state.name().toLowerCase(java.util.Locale.ROOT) + "): step down the "
                    + "node that serves"));
            return this;
        }
        Optional<String> refusal = activation.handOverRefusal();
        if (refusal.isPresent()) {
            LOG.warn("Step-down refused, the node keeps serving (epoch {}): {}", epoch, refusal.get());
            stepDown.done().completeExceptionally(new CmFailure(CmError.REDUNDANCY_SERVER_MISSING,
                    "no standby in sync to take over, so this node keeps serving: " + refusal.get()));
            return this;
        }
        state = State.STEPPING_DOWN;
        steppingDown = stepDown.done();
        status.retire();
        othersSteppingDown = retireOthers();
        holder.set(null);
        status.activeAddress(activation.twinAddress());
        LOG.warn("Stepping down (epoch {}): the node serves no more requests; it waits until the standby has every "
                + "record, then gives the backends' lease back", epoch);
        CompletionStage<Void> handed;
        try {
            handed = activation.handOver(HAND_OVER_BOUND);
        } catch (RuntimeException e) {
            handed = CompletableFuture.failedFuture(e);
        }
        getContext().pipeToSelf(handed, (ok, failure) -> new HandedOver(failure));
        return this;
    }

    private Behavior<Command> onHandedOver(HandedOver handed) {
        if (handed.failure() != null) {
            String why = "the standby did not get every record: " + handed.failure().getMessage();
            steppingDown.completeExceptionally(new CmFailure(CmError.REDUNDANCY_SERVER_MISSING, "step-down "
                    + "failed, " + why + "; the node restarts and asks for the lease again"));
            return end("step-down failed: " + why);
        }
        if (container != null) {
            getContext().stop(container);
            container = null;
        }
        peers.wantLease(false);
        CompletableFuture<Void> released = peers.activeLease().whenReleased().toCompletableFuture();
        for (TmrNode.Group other : othersSteppingDown) {
            // The further containers' leases too: the twin's containers of those CmActIds cannot serve before.
            other.peers().wantLease(false);
            released = released.thenCombine(other.peers().activeLease().whenReleased(), (x, y) -> null);
        }
        getContext().pipeToSelf(released.orTimeout(RELEASE_BOUND.toMillis(), TimeUnit.MILLISECONDS),
                (ok, failure) -> new LeaseGivenBack(failure == null));
        return this;
    }

    private Behavior<Command> onLeaseGivenBack(LeaseGivenBack given) {
        LOG.warn("Stepped down (epoch {}): the standby has every record and {}; this node restarts as the standby",
                epoch, given.released() ? "the backends have the lease back"
                        : "the lease runs out on its own (not every backend confirmed it back within "
                        + RELEASE_BOUND.toMillis() + " ms)");
        state = State.ENDED;
        steppingDown.complete(null);
        timers.startSingleTimer(Restart.INSTANCE, RESTART_AFTER_ANSWER);
        return this;
    }

    /**
     * Retires the further virtual containers that run now (they serve no request from this state again, whatever
     * their own lease); returns them. Their groups stop them at their next look ({@link NodeGroups}).
     */
    private java.util.List<TmrNode.Group> retireOthers() {
        java.util.List<TmrNode.Group> others = holder.others();
        others.forEach(other -> other.status().retire());
        return others;
    }

    private Behavior<Command> end(String reason) {
        if (state == State.ENDED) {
            return this;
        }
        state = State.ENDED;
        // At once, before the container stops: no session may hand it another request, and no HELLO is told
        // TMR_ACTIVE by this state again (the stopping container may still mark itself reconciled).
        status.retire();
        // The further virtual containers end with the active role, at once, their leases given back.
        retireOthers().forEach(other -> other.peers().wantLease(false));
        holder.set(null);
        LOG.warn("The node stops being the active one: {}; it serves no client from this state again", reason);
        if (container != null) {
            getContext().stop(container);
            container = null;
        }
        activation.deactivated(reason);
        return this;
    }
}
