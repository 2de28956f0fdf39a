package io.opentmr.tmr;

import com.fasterxml.jackson.databind.JsonNode;
import io.opentmr.CborSerializable;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.AllocationDigests;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.backend.PeerGroup;
import io.opentmr.tmr.license.Seat;
import io.opentmr.tmr.license.TmrLicense;
import io.opentmr.tmr.tracking.NodeTrackingLog;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.SupervisorStrategy;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;
import org.apache.pekko.serialization.jackson.JacksonMigration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The virtual container {@code 131-n} of one TMR group (the containers of the three backends that share a
 * CmActId), event-sourced ({@code tmr-container|131-n}): it journals the group's CmActId once learned and every
 * TMR license key the first time its {@link Quorums} report it, and on recovery spawns the license of every
 * key it knows, at once, so that a license whose copies have vanished from the backends still recovers its
 * seats (its handles can be resumed and released) and the node does not serve before it has.
 *
 * <p>From the quorums' {@link Quorums.View} it tells each {@link TmrLicense} which copies count, lists the
 * licenses with two or more usable copies, routes accesses to their license and handle requests of other
 * sessions (RESUME, a repeated RELEASE) to the license that holds the handle, and lists a backend's
 * allocations for the re-syncs its licenses ask for.
 *
 * <p>It also decides when the node serves ({@link NodeStatus}): only while it holds the lease certificate,
 * and only once, since it (re)gained it, every license recovered its journal and re-synced two or more
 * backends. Until then clients are told NOT_ACTIVE and come back.
 */
public final class VirtualContainer
        extends EventSourcedBehavior<VirtualContainer.Command, VirtualContainer.Event, VirtualContainer.State> {

    private static final Logger LOG = LoggerFactory.getLogger(VirtualContainer.class);
    /** Closed handles remembered, so that a RELEASE repeated on another connection still finds its license. */
    static final int CLOSED_MEMORY = 8192;

    public sealed interface Command {
    }

    /** What the quorums decide now, after a backend's report. */
    public record Counted(Quorums.View view) implements Command {
    }

    /** The virtual container as LIST_CONTAINERS shows it. */
    public record Listed(ContainerInfo container) {
    }

    public record ListContainers(ActorRef<Listed> replyTo) implements Command {
    }

    public record Access(long firmCode, long productCode, long featureBits, AccessMode mode, TmrLicense.Client client,
                         long requestId, ActorRef<TmrLicense.Reply> replyTo) implements Command {
    }

    /** A request for a handle the asking session does not know the license of (RESUME, RELEASE). */
    public record ToHandle(long handleId, TmrLicense.Command command, ActorRef<TmrLicense.Reply> replyTo)
            implements Command {
    }

    /**
     * Where the handles of a RESUME_MANY are (a session holds none of them yet): {@link Routes}, for each handle in
     * order the license that holds it, or why none does now. The session then asks each license once, for its handles.
     */
    public record RouteHandles(List<Long> handleIds, ActorRef<Routes> replyTo) implements Command {
    }

    /**
     * @param licenses for each handle asked, the license that holds it, or null
     * @param refusals for each handle without a license: 106 ({@link TmrLicense.Refused}), or
     *                 {@link TmrLicense.NotServing} while a license that may hold it is not ready; null where routed
     */
    public record Routes(List<ActorRef<TmrLicense.Command>> licenses, List<TmrLicense.Reply> refusals) {
    }

    /** The licenses the container knows (journaled) and those recovered so far (tests, tools). */
    public record Licenses(Set<LicenseKey> known, Set<LicenseKey> recovered) {
    }

    public record GetLicenses(ActorRef<Licenses> replyTo) implements Command {
    }

    /** Everything an operator sees of the container now (management HTTP). */
    public record GetOverview(ActorRef<Overview> replyTo) implements Command {
    }

    /**
     * @param inventoried the backends (0-based) whose container of the group was read and is up
     * @param reconciled  whether every license re-synced since the lease was gained (the node serves with it)
     * @param licenses    every license known, in LIST order
     */
    public record Overview(Serial serial, long cmActId, List<Integer> inventoried, boolean reconciled,
                           List<LicenseView> licenses) {
    }

    /**
     * One TMR license as the container knows it.
     *
     * @param counted  backends (0-based) whose copy counts now
     * @param agreed   the product item two counted copies agree on; null while none do
     * @param inUse    seats in use
     * @param handles  open handles
     * @param units    the unit counter as the license decided it last, else the copies' majority; -1 when unknown
     * @param usable   backends the license can use now (counted and re-synced)
     * @param listed   whether LIST shows it and ACCESS reaches it (2 or more usable copies)
     * @param license  the license's actor (its handles are asked there); null while it is not spawned
     */
    public record LicenseView(LicenseKey key, boolean known, List<Integer> counted, ProductInfo agreed, long inUse,
                              int handles, long units, int usable, boolean listed, boolean recovered,
                              ActorRef<TmrLicense.Command> license) {
    }

    /** What a license reports, see {@link TmrLicense.Parent#seatsChanged}. */
    record SeatsChanged(LicenseKey key, long inUse, int handles, long units, int usable, long round)
            implements Command {
    }

    /** @param request the ACCESS that opened it; null when not known (a seat journaled before requests were) */
    record HandleOpened(LicenseKey key, long handleId, Seat.RequestKey request) implements Command {
    }

    /** The handles a license recovered, in one message ({@link TmrLicense.Parent#openedAll}). */
    record HandlesOpened(LicenseKey key, List<Seat> seats) implements Command {
    }

    record HandleClosed(LicenseKey key, long handleId) implements Command {
    }

    record NeedsResync(LicenseKey key, int backend) implements Command {
    }

    record LicenseRecovered(LicenseKey key, ActorRef<TmrLicense.Command> license) implements Command {
    }

    private record StartResync(int backend) implements Command {
    }

    /** A backend's counts and digests of its allocations per range (LIST_DIGESTS), or why it gave none. */
    private record Digested(int backend, long generation, AllocationDigests digests, Throwable failure)
            implements Command {
    }

    /** A license's table is not what a listing by digests was cut by: list every backend whole. */
    private record ListWhole(LicenseKey key, int backend) implements Command {
    }

    /** A backend's allocations by license ({@link BackendListing}), or why they could not be listed. */
    private record Listing(int backend, long generation, Map<LicenseKey, List<Allocation>> byKey, Throwable failure)
            implements Command {
    }

    /**
     * A backend's allocations listed by the twin's role once the node held the lease at {@code epoch}, before this
     * container was started: taken as the listing of the lease's gain (see {@link #listed}) when the container gains
     * the lease at that epoch, so a take-over lists the backends while the journal and licenses recover.
     * {@code fenced}: the backend had granted the node that epoch when the listing started ({@link #listedFenced}).
     */
    record Prelisted(long epoch, int backend, Map<LicenseKey, List<Allocation>> byKey, boolean fenced)
            implements Command {
    }

    private enum CheckLease implements Command {
        INSTANCE
    }

    /** Journaled: what the container learned about its group. Versions: {@link EventVersions}. */
    public sealed interface Event extends CborSerializable {
    }

    /** The group's CmActId, from the first inventory that showed it. */
    public record CmActIdLearned(long cmActId, long atMillis) implements Event {
    }

    /** A TMR license key a backend holds a copy of, the first time it was seen. */
    public record LicenseSeen(LicenseKey key, long atMillis) implements Event {
    }

    /**
     * The journaled state: the group's CmActId (0: not learned yet) and every license key seen. {@link #apply} is the
     * container's event handler, also used by {@code tmr journal replay} to rebuild it from a journal.
     */
    public record State(long cmActId, Set<LicenseKey> licenses) {
        public State {
            Set<LicenseKey> sorted = new TreeSet<>(Quorums.ORDER);
            sorted.addAll(licenses);
            licenses = Collections.unmodifiableSet(sorted);
        }

        /** The state a container without events starts from. */
        public static State empty() {
            return new State(0, Set.of());
        }

        /** The state after {@code event}. */
        public State apply(Event event) {
            if (event instanceof CmActIdLearned learned) {
                return new State(learned.cmActId(), licenses);
            }
            if (event instanceof LicenseSeen seen) {
                Set<LicenseKey> more = new HashSet<>(licenses);
                more.add(seen.key());
                return new State(cmActId, more);
            }
            throw new IllegalArgumentException("not an event of the virtual container: " + event);
        }
    }

    /**
     * The version of the container's journaled events, written into their manifests by Pekko's Jackson
     * serializer ({@code pekko.serialization.jackson.migrations} in reference.conf). Version 1: the first
     * container events; a data directory written before them has none, and the container starts empty and
     * learns its group from the inventories.
     */
    public static final class EventVersions extends JacksonMigration {

        public static final int CURRENT = 1;

        @Override
        public int currentVersion() {
            return CURRENT;
        }

        @Override
        public JsonNode transform(int fromVersion, JsonNode json) {
            return json;
        }
    }

    /** How a license is made: its key, and the parent it reports to. */
    @FunctionalInterface
    public interface LicenseFactory {
        Behavior<TmrLicense.Command> create(LicenseKey key, TmrLicense.Parent parent);
    }

    private final ActorContext<Command> context;
    private final Serial serial;
    private final PeerGroup peers;
    private final LicenseFactory licenseFactory;
    private final TimerScheduler<Command> timers;
    private final NodeStatus status;
    private final Clock clock;
    private final Duration reconcileTimeout;
    private final TmrLicense.Parent parent;
    private final NodeTrackingLog tracking;
    // What follows is not journaled: the licenses' own reports and the quorums' latest view rebuild it.
    private final Map<LicenseKey, ActorRef<TmrLicense.Command>> licenses = new HashMap<>();
    private final Set<LicenseKey> recovered = new HashSet<>();
    /** The quorums' latest verdicts, in LIST order. */
    private Map<LicenseKey, Quorums.Verdict> verdicts = Map.of();
    /** The group's container keys as the backends showed them, listed as the virtual container's key. */
    private Bytes groupKeys = Bytes.EMPTY;
    private BitSet inventoried = new BitSet();
    private long reportedCmActId;
    private final Map<LicenseKey, Long> inUse = new HashMap<>();
    private final Map<LicenseKey, Integer> handleCounts = new HashMap<>();
    /** Per license, its unit counter as it decided it last (-1: not known). */
    private final Map<LicenseKey, Long> unitsDecided = new HashMap<>();
    /** Backends each license can use now (counted and re-synced): it is listed and served with 2 or more. */
    private final Map<LicenseKey, Integer> usable = new HashMap<>();
    private final Map<Long, LicenseKey> handles = new HashMap<>();
    /**
     * The ACCESS that opened each open handle, and its license: a re-sent ACCESS goes to that license first, so that
     * with several licenses of a product it gets its handle again, not a second seat from a license freed meanwhile.
     */
    private final Map<Seat.RequestKey, LicenseKey> openedBy = new HashMap<>();
    private final Map<Long, Seat.RequestKey> requestOf = new HashMap<>();
    private final LinkedHashMap<Long, LicenseKey> closed = new LinkedHashMap<>();
    private final long[] resyncGeneration;
    private final boolean[] resyncRunning;
    /** Licenses waiting for a re-sync of each backend. */
    private final List<Set<LicenseKey>> wanting = new ArrayList<>();
    private boolean leaseHeld;
    /** The epoch of the lease when it was gained (a new epoch is a new gain). */
    private long leaseEpoch;
    /** Lease gains so far: each sends every license a {@link TmrLicense.ResyncAll} of this round. */
    private long round;
    private long leaseSince;
    /**
     * Per backend, the listing taken at once when the lease was gained (by license), kept until the node serves: a
     * license's re-syncs meanwhile take it instead of waiting for a listing of their own, so a license that
     * recovers a big table reconciles as soon as it has recovered (the listing ran meanwhile), and the re-syncs a
     * license asks for twice in a row (its copies, then its ResyncAll) both end before the node serves, as the
     * listing the old 200 ms wait gathered them into did. Until the node serves no client wrote anything, and in
     * this epoch no other node can: what the listing misses is only what the license's own re-syncs wrote, and
     * doing those again (ALLOCATE of a held allocation, FREE of a freed one) changes nothing on a backend. Once the
     * node serves, a re-sync lists afresh. Null while none is kept.
     */
    private final List<Map<LicenseKey, List<Allocation>>> listed = new ArrayList<>();
    /** Per backend, whether the listing started at the lease's gain is still under way. */
    private final boolean[] prefetching;
    /**
     * Per backend, whether its listing in {@link #listed} was started once the backend had granted the node the lease's
     * epoch: it then refused every write of an older epoch, so an ALLOCATE of the old active it carried out came before
     * the listing. A listing carries no certificate: a backend that has not granted the epoch (the old active's lease
     * there still runs) may carry one out after it was listed. Only these count for dropping a journal's seat no
     * listing holds ({@link TmrLicense.Rebuild#fenced}).
     */
    private final boolean[] listedFenced;
    /** Per backend, whether it had granted the lease's epoch when the listing of the gain under way was started. */
    private final boolean[] fencedAtStart;
    /**
     * Per backend, the lease epoch the node held when the listing under way was started, or -1 without the lease: a
     * re-sync writes under the lease, and a listing taken before it came may miss what another node wrote meanwhile.
     */
    private final long[] listedUnder;
    /** Per backend, the listing the twin's role took at the lease's gain ({@link Prelisted}); null when none. */
    private final Prelisted[] prelisted;
    /**
     * Ranges of the handle id space a take-over compares by digests ({@link AllocationDigests}): with 100 000 handles
     * about 25 allocations a range, so the few a crash under load leaves different are listed in a page each.
     */
    static final int DIGEST_RANGES = AllocationDigests.MAX_RANGES;
    /**
     * Ranges that may differ for a listing by ranges; with more (a backend restored from an old copy, one that missed
     * much) the backends are listed whole.
     */
    static final int MAX_DIFFERING_RANGES = 64;
    /** The digests of a license without seats (never changed). */
    private static final AllocationDigests NO_SEATS = new AllocationDigests(DIGEST_RANGES);
    /**
     * Per backend, whether the gain's listing asked it for digests (once per gain: a retry, or a backend that comes
     * after the ranges were chosen, is listed whole), and whether that answer is still awaited.
     */
    private final boolean[] digestAsked;
    private final boolean[] digesting;
    /** Per backend, its digests while the ranges to list are not chosen yet. */
    private final AllocationDigests[] digested;
    /**
     * Per backend, the ranges its listing in {@link #listed} holds, or null for a whole listing. Every backend listed
     * by ranges at one gain is listed in the same ranges: those where any of them differs from the node's seats, so
     * in the others each of them holds exactly the seats (and a handle rebuilt from two backends lies in a listed
     * range).
     */
    private final BitSet[] coveredBy;
    /** Each license's part of the node's digests the ranges were chosen by (absent: a license without handles). */
    private Map<LicenseKey, AllocationDigests> digestShares = Map.of();
    /** Whether the ranges of this gain were chosen: backends listed from then on are listed whole. */
    private boolean rangesChosen;
    /** Whether this gain lists every backend whole (a license found its table not as digested). */
    private boolean wholeListings;
    /**
     * Whether the listings of the lease's gain are still being taken: no license re-syncs before all of them are in
     * (a failed one is taken again while its backend stays linked, within the reconcile timeout; a backend that left
     * is done without) and two or more are, so that a handle two backends hold and the journal lacks is rebuilt
     * ({@link TmrLicense.Rebuild}) before a re-sync of another backend frees it.
     */
    private boolean gathering;
    /**
     * Whether every license re-synced (after its rebuild) since the lease's gain: until then a handle no license
     * knows may still be rebuilt, and is not answered unknown (106).
     */
    private boolean reconciledSinceGain;
    /** Timing of the take-over or start, for its log line ({@link System#nanoTime}). */
    private final long startedNanos = System.nanoTime();
    private long recoveredNanos;
    private long licensesRecoveredNanos;
    private boolean servedOnce;

    /**
     * A virtual container; its {@link Quorums} (with the backend watchers) are spawned beside it and send it
     * {@link Counted}. A failed journal write restarts it from its journal, with backoff; its licenses restart
     * with it.
     *
     * @param licenses the behavior of the license of a key (spawned as a child when the key is first seen, and
     *                 for every known key on recovery)
     */
    public static Behavior<Command> create(Serial serial, PeerGroup peers, NodeStatus status, Clock clock,
                                           Duration heartbeat, Duration reconcileTimeout, LicenseFactory licenses) {
        return create(serial, peers, status, clock, heartbeat, reconcileTimeout, licenses, NodeTrackingLog.none());
    }

    /**
     * As {@link #create(Serial, PeerGroup, NodeStatus, Clock, Duration, Duration, LicenseFactory)}, with the
     * tracking log its lease gains and losses, and the accesses no license could take, are written to.
     */
    public static Behavior<Command> create(Serial serial, PeerGroup peers, NodeStatus status, Clock clock,
                                           Duration heartbeat, Duration reconcileTimeout, LicenseFactory licenses,
                                           NodeTrackingLog tracking) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(CheckLease.INSTANCE, heartbeat);
            return new VirtualContainer(context, timers, serial, peers, status, clock, reconcileTimeout, licenses,
                    tracking);
        }));
    }

    /** Persistence ids of virtual containers start with this: {@code tmr-container|131-n}. */
    public static final String PERSISTENCE_ID_PREFIX = "tmr-container|";

    public static PersistenceId persistenceId(Serial serial) {
        return PersistenceId.of("tmr-container", serial.toString(), "|");
    }

    /** The serial of the container whose persistence id this is ({@link #persistenceId}), if it is one. */
    public static Optional<Serial> serialOf(String persistenceId) {
        if (!persistenceId.startsWith(PERSISTENCE_ID_PREFIX)) {
            return Optional.empty();
        }
        try {
            Serial serial = Serial.parse(persistenceId.substring(PERSISTENCE_ID_PREFIX.length()));
            return persistenceId(serial).id().equals(persistenceId) ? Optional.of(serial) : Optional.empty();
        } catch (IllegalArgumentException e) {
            return Optional.empty();
        }
    }

    private VirtualContainer(ActorContext<Command> context, TimerScheduler<Command> timers, Serial serial,
                             PeerGroup peers, NodeStatus status, Clock clock, Duration reconcileTimeout,
                             LicenseFactory licenseFactory, NodeTrackingLog tracking) {
        super(persistenceId(serial), SupervisorStrategy.restartWithBackoff(Duration.ofMillis(200),
                Duration.ofSeconds(5), 0.2));
        this.context = context;
        this.timers = timers;
        this.serial = serial;
        this.peers = peers;
        this.status = status;
        this.clock = clock;
        this.reconcileTimeout = reconcileTimeout;
        this.licenseFactory = licenseFactory;
        this.tracking = tracking;
        int backends = peers.size();
        this.resyncGeneration = new long[backends];
        this.resyncRunning = new boolean[backends];
        this.prefetching = new boolean[backends];
        this.listedFenced = new boolean[backends];
        this.fencedAtStart = new boolean[backends];
        this.listedUnder = new long[backends];
        this.prelisted = new Prelisted[backends];
        this.digestAsked = new boolean[backends];
        this.digesting = new boolean[backends];
        this.digested = new AllocationDigests[backends];
        this.coveredBy = new BitSet[backends];
        for (int i = 0; i < backends; i++) {
            wanting.add(new HashSet<>());
            listed.add(null);
        }
        ActorRef<Command> self = context.getSelf();
        this.parent = new TmrLicense.Parent() {
            @Override
            public void seatsChanged(LicenseKey key, long seats, int count, long units, int usableNow, long round) {
                self.tell(new SeatsChanged(key, seats, count, units, usableNow, round));
            }

            @Override
            public void opened(LicenseKey key, Seat seat) {
                self.tell(new HandleOpened(key, seat.handleId(), seat.requestKey()));
            }

            @Override
            public void openedAll(LicenseKey key, java.util.Collection<Seat> seats) {
                self.tell(new HandlesOpened(key, List.copyOf(seats)));
            }

            @Override
            public void closed(LicenseKey key, long handleId) {
                self.tell(new HandleClosed(key, handleId));
            }

            @Override
            public void needsResync(LicenseKey key, int backend) {
                self.tell(new NeedsResync(key, backend));
            }

            @Override
            public void listWhole(LicenseKey key, int backend) {
                self.tell(new ListWhole(key, backend));
            }

            @Override
            public void recovered(LicenseKey key, ActorRef<TmrLicense.Command> license) {
                self.tell(new LicenseRecovered(key, license));
            }

            @Override
            public void integrityWarning(LicenseKey key) {
                status.integrityWarning(key);
            }

            @Override
            public void journalWritten(long nanos) {
                status.journalWritten(nanos);
            }
        };
    }

    @Override
    public State emptyState() {
        return State.empty();
    }

    @Override
    public EventHandler<State, Event> eventHandler() {
        return newEventHandlerBuilder().forAnyState().onAnyEvent(State::apply);
    }

    @Override
    public SignalHandler<State> signalHandler() {
        return newSignalHandlerBuilder()
                .onSignal(RecoveryCompleted.instance(), state -> {
                    forget();
                    state.licenses().forEach(this::license);
                    recoveredNanos = System.nanoTime();
                    LOG.info("Virtual container {} recovered in {} ms: CmActId {}, {} license(s) known", serial,
                            (recoveredNanos - startedNanos) / 1_000_000, state.cmActId(), state.licenses().size());
                })
                .build();
    }

    /** After a restart the licenses are new children and the quorums' view comes again: start from nothing. */
    private void forget() {
        licenses.clear();
        recovered.clear();
        verdicts = Map.of();
        inventoried = new BitSet();
        inUse.clear();
        handleCounts.clear();
        unitsDecided.clear();
        usable.clear();
        handles.clear();
        openedBy.clear();
        status.forgetOpened();
        requestOf.clear();
        closed.clear();
        for (int i = 0; i < resyncGeneration.length; i++) {
            resyncGeneration[i]++;
            resyncRunning[i] = false;
            wanting.set(i, new HashSet<>());
        }
        dropListings();
        Arrays.fill(prelisted, null);
        leaseHeld = false;
        status.reconciled(false);
        status.openHandles(0);
    }

    @Override
    public CommandHandler<Command, Event, State> commandHandler() {
        return newCommandHandlerBuilder().forAnyState()
                .onCommand(Counted.class, this::onCounted)
                .onCommand(ListContainers.class, this::onList)
                .onCommand(Access.class, this::onAccess)
                .onCommand(ToHandle.class, this::onToHandle)
                .onCommand(RouteHandles.class, this::onRouteHandles)
                .onCommand(GetLicenses.class, (state, get) -> {
                    get.replyTo().tell(new Licenses(state.licenses(), Set.copyOf(recovered)));
                    return Effect().none();
                })
                .onCommand(GetOverview.class, (state, get) -> {
                    get.replyTo().tell(overview(state));
                    return Effect().none();
                })
                .onCommand(SeatsChanged.class, changed -> {
                    inUse.put(changed.key(), changed.inUse());
                    handleCounts.put(changed.key(), changed.handles());
                    status.inUse(changed.key(), changed.inUse());
                    unitsDecided.put(changed.key(), changed.units());
                    if (changed.round() == round) {
                        // A report sent before the license got the last ResyncAll counts copies not re-synced since.
                        usable.put(changed.key(), changed.usable());
                    }
                    checkServing();
                    return Effect().none();
                })
                .onCommand(HandleOpened.class, opened -> {
                    opened(opened.key(), opened.handleId(), opened.request());
                    status.openHandles(handles.size());
                    return Effect().none();
                })
                .onCommand(HandlesOpened.class, opened -> {
                    for (Seat seat : opened.seats()) {
                        opened(opened.key(), seat.handleId(), seat.requestKey());
                    }
                    status.openHandles(handles.size());
                    return Effect().none();
                })
                .onCommand(HandleClosed.class, gone -> {
                    handles.remove(gone.handleId());
                    Seat.RequestKey request = requestOf.remove(gone.handleId());
                    if (request != null && openedBy.remove(request, gone.key())) {
                        status.opened(request, false);
                    }
                    closed.put(gone.handleId(), gone.key());
                    status.openHandles(handles.size());
                    if (closed.size() > CLOSED_MEMORY) {
                        closed.remove(closed.keySet().iterator().next());
                    }
                    return Effect().none();
                })
                .onCommand(NeedsResync.class, needs -> {
                    // A lease moved since the last check is taken first: a license that refused the gain's listing
                    // for its epoch would otherwise get the same listing again at once.
                    if (peers.holdsLease() != leaseHeld || peers.epoch() != leaseEpoch) {
                        checkServing();
                    }
                    if (fromListing(needs.key(), needs.backend())) {
                        return Effect().none();
                    }
                    wanting.get(needs.backend()).add(needs.key());
                    if (gathering) {
                        // Served from the gain's listing once every backend is listed (endGatheringIfDone).
                        return Effect().none();
                    }
                    timers.startSingleTimer("resync-" + needs.backend(), new StartResync(needs.backend()),
                            Duration.ofMillis(200));
                    return Effect().none();
                })
                .onCommand(LicenseRecovered.class, this::onRecovered)
                .onCommand(StartResync.class, start -> {
                    startResync(start.backend());
                    return Effect().none();
                })
                .onCommand(Listing.class, this::onListing)
                .onCommand(Digested.class, this::onDigested)
                .onCommand(ListWhole.class, this::onListWhole)
                .onCommand(Prelisted.class, this::onPrelisted)
                .onCommand(CheckLease.class, check -> {
                    checkServing();
                    return Effect().none();
                })
                .build();
    }

    private void opened(LicenseKey key, long handleId, Seat.RequestKey request) {
        handles.put(handleId, key);
        if (request != null && request.requestId() != 0) {
            openedBy.put(request, key);
            status.opened(request, true);
            requestOf.put(handleId, request);
        }
        closed.remove(handleId);
    }

    // --- serving ------------------------------------------------------------------------------------------

    /**
     * The node serves while it holds the lease, once every license re-synced since it was gained. When the
     * lease comes (back), every license re-syncs every backend first: another node may have written meanwhile.
     */
    private void checkServing() {
        boolean held = peers.holdsLease();
        long epoch = peers.epoch();
        if (held && (!leaseHeld || epoch != leaseEpoch)) {
            if (leaseHeld) {
                // Lost and regained between two checks, under a new epoch: another node may have held it.
                LOG.warn("The lease moved from epoch {} to {} since the last check; the node serves no client until "
                        + "it has re-synced every license again", leaseEpoch, epoch);
                status.reconciled(false);
            }
            if (leaseHeld) {
                tracking.lease(false, leaseEpoch, clock.millis());
            }
            leaseHeld = true;
            reconciledSinceGain = false;
            leaseEpoch = epoch;
            status.leaseGained(epoch);
            leaseSince = clock.millis();
            tracking.lease(true, epoch, leaseSince);
            round++;
            LOG.info("The node holds the lease (epoch {}); reconciling {} license(s) with the backends before it "
                    + "serves", epoch, licenses.size());
            gather(epoch, false);
        } else if (!held && leaseHeld) {
            leaseHeld = false;
            dropListings();
            tracking.lease(false, leaseEpoch, clock.millis());
            if (status.reconciled()) {
                LOG.warn("The node lost its lease certificate: it serves no client until it holds the lease again "
                        + "and has re-synced every license");
            }
            status.reconciled(false);
        }
        if (!held) {
            return;
        }
        if (status.reconciled()) {
            // Served past the reconcile timeout: the handles the gain rebuilds are known once every license re-synced.
            reconciledSinceGain |= !gathering && behind().isEmpty();
            return;
        }
        // Bounded: without a second listing within the reconcile timeout, the licenses re-sync what there is.
        endGatheringIfDone();
        List<LicenseKey> behind = behind();
        long waited = clock.millis() - leaseSince;
        if (inventoried.cardinality() >= 2 && behind.isEmpty()) {
            reconciledSinceGain = true;
            status.reconciled(true);
            dropListings();
            LOG.info("Virtual container {} serves clients: {} license(s) reconciled with the backends in {} ms",
                    serial, licenses.size(), waited);
            if (!servedOnce) {
                servedOnce = true;
                logTakeover();
            }
        } else if (waited >= reconcileTimeout.toMillis()) {
            status.reconciled(true);
            listWholeFromNowOn();
            LOG.warn("Virtual container {} serves clients after {} ms although license(s) {} are not reconciled yet "
                    + "({} backend(s) inventoried); they answer 130 until they are", serial, waited, behind,
                    inventoried.cardinality());
        }
    }

    /** The licenses not re-synced since the lease's gain (a license re-syncs only after its rebuild is journaled). */
    private List<LicenseKey> behind() {
        List<LicenseKey> behind = new ArrayList<>();
        for (LicenseKey key : licenses.keySet()) {
            Quorums.Verdict verdict = verdicts.get(key);
            if (!recovered.contains(key) || verdict != null && verdict.valid() && usable.getOrDefault(key, 0) < 2) {
                behind.add(key);
            }
        }
        return behind;
    }

    private Effect<Event, State> onRecovered(LicenseRecovered recovered) {
        this.recovered.add(recovered.key());
        licensesRecoveredNanos = System.nanoTime();
        Quorums.Verdict verdict = verdicts.get(recovered.key());
        if (verdict != null) {
            // Also after a restart of the license: it forgot what counts, and re-syncs every backend.
            recovered.license().tell(new TmrLicense.Copies(verdict.counted(), verdict.agreed()));
            if (verdict.changesUsage(null)) {
                recovered.license().tell(new TmrLicense.UsageStarted(verdict.usageStart(), verdict.usageBehind()));
            }
        }
        // Even before its copies are known: its reports count only with this round.
        recovered.license().tell(new TmrLicense.ResyncAll(round));
        checkServing();
        if (gathering) {
            listByRanges();
        }
        return Effect().none();
    }

    // --- backends and copies ------------------------------------------------------------------------------

    /** Journals the CmActId and the keys not seen before, then spawns their licenses and tells what counts. */
    private Effect<Event, State> onCounted(State state, Counted counted) {
        Quorums.View view = counted.view();
        List<Event> learned = new ArrayList<>();
        long now = clock.millis();
        if (view.cmActId() != 0 && state.cmActId() == 0) {
            learned.add(new CmActIdLearned(view.cmActId(), now));
        } else if (view.cmActId() != 0 && view.cmActId() != state.cmActId() && view.cmActId() != reportedCmActId) {
            LOG.warn("Virtual container {} belongs to CmActId {}, but the backends now hold CmActId {}", serial,
                    state.cmActId(), view.cmActId());
        }
        reportedCmActId = view.cmActId();
        for (LicenseKey key : view.licenses().keySet()) {
            if (!state.licenses().contains(key)) {
                learned.add(new LicenseSeen(key, now));
            }
        }
        if (learned.isEmpty()) {
            take(view);
            return Effect().none();
        }
        long writing = System.nanoTime();
        return Effect().persist(learned).thenRun(after -> {
            status.journalWritten(System.nanoTime() - writing);
            take(view);
        });
    }

    private void take(Quorums.View view) {
        BitSet now = view.inventoried();
        for (int backend = inventoried.nextSetBit(0); backend >= 0; backend = inventoried.nextSetBit(backend + 1)) {
            if (!now.get(backend)) {
                // A re-sync under way reads a backend that is gone: its pages are dropped. So is the listing taken at
                // the lease's gain: what the backend holds when it is back (restored, replaced) is read anew.
                resyncGeneration[backend]++;
                resyncRunning[backend] = false;
                listed.set(backend, null);
                prefetching[backend] = false;
                prelisted[backend] = null;
                digesting[backend] = false;
                digested[backend] = null;
                coveredBy[backend] = null;
            }
        }
        BitSet came = (BitSet) now.clone();
        came.andNot(inventoried);
        inventoried = now;
        if (gathering) {
            // A backend that comes while the gain's listings are taken is listed with them.
            for (int backend = came.nextSetBit(0); backend >= 0; backend = came.nextSetBit(backend + 1)) {
                if (listed.get(backend) == null && !prefetching[backend]) {
                    prefetching[backend] = true;
                    startResync(backend);
                }
            }
            listByRanges();
        }
        endGatheringIfDone();
        groupKeys = view.groupKeys();
        Map<LicenseKey, Quorums.Verdict> before = verdicts;
        verdicts = view.licenses();
        for (Quorums.Verdict verdict : verdicts.values()) {
            status.copies(verdict.key(), verdict.counted().cardinality(),
                    verdict.agreed() == null ? 0 : verdict.agreed().quantity());
            if (verdict.changesCopies(before.get(verdict.key()))) {
                license(verdict.key()).tell(new TmrLicense.Copies(verdict.counted(), verdict.agreed()));
            }
            if (verdict.changesUsage(before.get(verdict.key()))) {
                license(verdict.key()).tell(new TmrLicense.UsageStarted(verdict.usageStart(), verdict.usageBehind()));
            }
        }
        checkServing();
    }

    private ActorRef<TmrLicense.Command> license(LicenseKey key) {
        return licenses.computeIfAbsent(key, k -> context.spawn(licenseFactory.create(k, parent),
                "license-" + k.firmCode() + "-" + k.productCode() + "-" + k.tmrId()));
    }

    // --- clients ----------------------------------------------------------------------------------------

    private Overview overview(State state) {
        List<Integer> backends = new ArrayList<>();
        inventoried.stream().forEach(backends::add);
        List<LicenseView> views = new ArrayList<>();
        Set<LicenseKey> keys = new TreeSet<>(Quorums.ORDER);
        keys.addAll(state.licenses());
        keys.addAll(verdicts.keySet());
        for (LicenseKey key : keys) {
            Quorums.Verdict verdict = verdicts.get(key);
            List<Integer> counted = new ArrayList<>();
            if (verdict != null) {
                verdict.counted().stream().forEach(counted::add);
            }
            long decided = unitsDecided.getOrDefault(key, -1L);
            long units = decided >= 0 ? decided : verdict == null ? -1 : verdict.units();
            int usableNow = usable.getOrDefault(key, 0);
            views.add(new LicenseView(key, verdict != null && verdict.known(), counted,
                    verdict == null ? null : verdict.agreed(), inUse.getOrDefault(key, 0L),
                    handleCounts.getOrDefault(key, 0), units, usableNow,
                    verdict != null && verdict.valid() && usableNow >= 2, recovered.contains(key), licenses.get(key)));
        }
        return new Overview(serial, state.cmActId(), backends, status.reconciled(), views);
    }

    private Effect<Event, State> onList(State state, ListContainers list) {
        List<ProductInfo> products = new ArrayList<>();
        for (Quorums.Verdict verdict : verdicts.values()) {
            if (verdict.valid() && usable.getOrDefault(verdict.key(), 0) >= 2) {
                ProductInfo agreed = verdict.agreed();
                // The license's own value when it knows one: the inventories lag behind its decrements.
                long decided = unitsDecided.getOrDefault(verdict.key(), -1L);
                long units = Math.max(0, decided >= 0 ? decided : verdict.units());
                products.add(new ProductInfo(agreed.firmCode(), agreed.productCode(), agreed.featureMap(),
                        agreed.text(), agreed.quantity(), inUse.getOrDefault(verdict.key(), 0L), agreed.tmrId(),
                        agreed.hasUnitCounter(), units, agreed.expiresAtMillis(), agreed.activatesAtMillis(),
                        agreed.usagePeriodSeconds(), verdict.usageStart(), agreed.borrowMaxSeconds()));
            }
        }
        list.replyTo().tell(new Listed(new ContainerInfo(serial, state.cmActId(), groupKeys, products)));
        return Effect().none();
    }

    /**
     * Routes an ACCESS to the licenses of its product that two or more copies make valid, in TMR-Id order: the first
     * serves it if it can, else passes it on ({@link TmrLicense.Access}). A re-sent ACCESS starts at the license
     * that opened its handle.
     */
    private Effect<Event, State> onAccess(Access access) {
        boolean known = false;
        List<ActorRef<TmrLicense.Command>> route = new ArrayList<>(2);
        TmrLicense.Client client = access.client();
        LicenseKey opened = openedBy.get(new Seat.RequestKey(client.station(), client.host(), client.user(),
                client.pid(), access.requestId()));
        for (Quorums.Verdict verdict : verdicts.values()) {
            LicenseKey key = verdict.key();
            if (key.firmCode() != access.firmCode() || key.productCode() != access.productCode() || !verdict.known()) {
                continue;
            }
            known = true;
            ActorRef<TmrLicense.Command> license = licenses.get(key);
            if (!verdict.valid() || license == null) {
                continue;
            }
            if (key.equals(opened)) {
                route.add(0, license);
            } else {
                route.add(license);
            }
        }
        if (!route.isEmpty()) {
            route.get(0).tell(new TmrLicense.Access(access.featureBits(), access.mode(), client, access.requestId(),
                    access.replyTo(), route.subList(1, route.size()), null));
            return Effect().none();
        }
        TmrLicense.Refused refused = known
                ? new TmrLicense.Refused(CmError.REDUNDANCY_SERVER_MISSING, "TMR license " + access.firmCode() + ":"
                        + access.productCode() + " has fewer than 2 available copies")
                : new TmrLicense.Refused(CmError.ENTRY_NOT_FOUND, "virtual container " + serial + " holds no license "
                        + access.firmCode() + ":" + access.productCode());
        tracking.denial(null, access.firmCode(), access.productCode(), refused.code(), refused.text(), "ACCESS "
                + access.firmCode() + ":" + access.productCode(), new NodeTrackingLog.Owner(client.station(),
                client.host(), client.user(), client.pid(), client.sessionId()), clock.millis());
        access.replyTo().tell(refused);
        return Effect().none();
    }

    private Effect<Event, State> onToHandle(ToHandle request) {
        ActorRef<TmrLicense.Command> license = licenseOfHandle(request.handleId());
        if (license == null) {
            request.replyTo().tell(noLicense(request.handleId()));
        } else {
            license.tell(request.command());
        }
        return Effect().none();
    }

    private Effect<Event, State> onRouteHandles(RouteHandles request) {
        List<ActorRef<TmrLicense.Command>> routed = new ArrayList<>(request.handleIds().size());
        List<TmrLicense.Reply> refusals = new ArrayList<>(request.handleIds().size());
        for (long handleId : request.handleIds()) {
            ActorRef<TmrLicense.Command> license = licenseOfHandle(handleId);
            routed.add(license);
            refusals.add(license == null ? noLicense(handleId) : null);
        }
        request.replyTo().tell(new Routes(routed, refusals));
        return Effect().none();
    }

    /** The license that holds (or recently closed) a handle, or null. */
    private ActorRef<TmrLicense.Command> licenseOfHandle(long handleId) {
        LicenseKey key = handles.get(handleId);
        if (key == null) {
            key = closed.get(handleId);
        }
        return key == null ? null : licenses.get(key);
    }

    /** The answer for a handle no license holds: not now while a license may still hold it, else 106. */
    private TmrLicense.Reply noLicense(long handleId) {
        if (!recovered.containsAll(licenses.keySet())) {
            // A license still recovering may hold it: the client asks again, the handle is not given up.
            return new TmrLicense.NotServing("the node's licenses are still recovering");
        } else if (leaseHeld && !reconciledSinceGain && clock.millis() - leaseSince < 2 * reconcileTimeout.toMillis()) {
            // Served past the reconcile timeout: a license may still rebuild it from the backends' allocations. Bounded,
            // as for a virtual container not running yet (TmrSession): a license that cannot re-sync answers 130 to
            // its own handles, and a client's truly unknown handle must not keep it away from the node for long.
            return new TmrLicense.NotServing("the node's licenses are still being reconciled with the backends");
        }
        return new TmrLicense.Refused(CmError.INVALID_HANDLE, "handle " + Long.toUnsignedString(handleId)
                + " is unknown, released or reclaimed");
    }

    // --- re-syncs ------------------------------------------------------------------------------------------

    /** Re-syncs {@code backend} of the license from the listing taken at the lease's gain, if there is one ({@link #listed}). */
    private boolean fromListing(LicenseKey key, int backend) {
        Map<LicenseKey, List<Allocation>> listing = listed.get(backend);
        ActorRef<TmrLicense.Command> license = licenses.get(key);
        if (gathering || listing == null || license == null || status.reconciled()) {
            return false;
        }
        license.tell(new TmrLicense.Resync(backend, listing.getOrDefault(key, List.of()), leaseEpoch,
                coverage(key, coveredBy[backend])));
        return true;
    }

    private void dropListings() {
        gathering = false;
        for (int b = 0; b < listed.size(); b++) {
            listed.set(b, null);
            prefetching[b] = false;
        }
        Arrays.fill(digestAsked, false);
        Arrays.fill(digesting, false);
        Arrays.fill(digested, null);
        Arrays.fill(coveredBy, null);
        digestShares = Map.of();
        rangesChosen = false;
        wholeListings = false;
    }

    /**
     * The operator's line on how long the take-over (or start) took from the lease to serving, phase by phase:
     * making the journal ready, recovering the container, recovering the licenses (their tables from the
     * journal), reconciling them with the backends.
     */
    private void logTakeover() {
        long now = System.nanoTime();
        long leaseSeen = status.takeoverStartedNanos();
        long from = leaseSeen != 0 && leaseSeen - startedNanos <= 0 ? leaseSeen : startedNanos;
        long licensesDone = licensesRecoveredNanos != 0 ? licensesRecoveredNanos : recoveredNanos;
        LOG.info("Took over in {} ms from holding the lease to serving: journal ready {} ms, container recovery {} ms, "
                        + "license recovery {} ms ({} handle(s)), reconciliation {} ms", millis(now - from),
                millis(startedNanos - from), millis(recoveredNanos - startedNanos), millis(licensesDone - recoveredNanos),
                handles.size(), millis(now - licensesDone));
    }

    private static long millis(long nanos) {
        return Math.max(0, nanos / 1_000_000);
    }

    private void startResync(int backend) {
        if (gathering && !prefetching[backend] || !inventoried.get(backend) || resyncRunning[backend]
                || wanting.get(backend).isEmpty() && !prefetching[backend]) {
            return;
        }
        resyncRunning[backend] = true;
        long generation = ++resyncGeneration[backend];
        listedUnder[backend] = peers.holdsLease() ? peers.epoch() : -1;
        if (prefetching[backend]) {
            fencedAtStart[backend] = peers.grantEpoch(backend) == leaseEpoch;
            if (!wholeListings && !rangesChosen && !digestAsked[backend] && peers.digestsKnown(backend)
                    && !status.reconciled()) {
                // The gain's listing compares digests first and lists only the ranges that differ (listByRanges).
                digestAsked[backend] = true;
                digesting[backend] = true;
                context.pipeToSelf(BackendListing.digests(peers, backend, DIGEST_RANGES, context.getExecutionContext()),
                        (digests, failure) -> new Digested(backend, generation, digests, failure));
                return;
            }
        }
        coveredBy[backend] = null;
        context.pipeToSelf(BackendListing.list(peers, backend, context.getExecutionContext()),
                (byKey, failure) -> new Listing(backend, generation, byKey, failure));
    }

    private Effect<Event, State> onDigested(Digested digests) {
        int backend = digests.backend();
        checkServing();
        if (digests.generation() != resyncGeneration[backend]) {
            return Effect().none();
        }
        digesting[backend] = false;
        if (digests.failure() != null && !peers.mayAskForDigests(backend)) {
            // An older backend: listed whole at once.
            resyncRunning[backend] = false;
            startResync(backend);
            listByRanges();
            return Effect().none();
        }
        if (digests.failure() != null) {
            // As a listing that failed: taken again (whole, see startResync) while its backend stays, within the
            // reconcile timeout. The others may go on by ranges meanwhile.
            onListing(new Listing(backend, digests.generation(), null, digests.failure()));
            listByRanges();
            return Effect().none();
        }
        digested[backend] = digests.digests();
        listByRanges();
        return Effect().none();
    }

    /**
     * Once every backend asked for digests at the gain has answered (or failed) and every license has recovered its
     * table: compares the digests with the node's seats (the handles the licenses reported) and lists, from each of
     * those backends, the ranges where any of them differs. A range where all agree holds exactly the seats on each
     * of them: the licenses take it as listed ({@link TmrLicense.Coverage}) and check their tables against the digest
     * they were compared by. With more than {@link #MAX_DIFFERING_RANGES} ranges differing they are listed whole.
     */
    private void listByRanges() {
        if (rangesChosen || wholeListings || !leaseHeld || !recovered.containsAll(licenses.keySet())) {
            return;
        }
        boolean any = false;
        for (int b = 0; b < digested.length; b++) {
            if (digesting[b]) {
                return;
            }
            any |= digested[b] != null;
        }
        if (!any) {
            return;
        }
        rangesChosen = true;
        Map<LicenseKey, AllocationDigests> shares = new HashMap<>();
        AllocationDigests node = new AllocationDigests(DIGEST_RANGES);
        handles.forEach((handleId, key) -> {
            shares.computeIfAbsent(key, k -> new AllocationDigests(DIGEST_RANGES)).add(handleId, key);
            node.add(handleId, key);
        });
        digestShares = shares;
        BitSet differing = new BitSet(DIGEST_RANGES);
        for (AllocationDigests theirs : digested) {
            for (int k = 0; theirs != null && k < DIGEST_RANGES; k++) {
                if (!node.sameIn(theirs, k)) {
                    differing.set(k);
                }
            }
        }
        boolean whole = differing.cardinality() > MAX_DIFFERING_RANGES;
        LOG.info("The backends' digests differ from the node's {} seat(s) in {} of {} ranges: {}", handles.size(),
                differing.cardinality(), DIGEST_RANGES, whole ? "every backend is listed whole"
                        : "only those are listed");
        for (int b = 0; b < digested.length; b++) {
            AllocationDigests theirs = digested[b];
            if (theirs == null || !prefetching[b]) {
                continue;
            }
            digested[b] = null;
            if (whole) {
                resyncRunning[b] = false;
                startResync(b);
                continue;
            }
            int backend = b;
            long generation = resyncGeneration[b];
            coveredBy[b] = differing;
            context.pipeToSelf(BackendListing.listRanges(peers, backend, context.getExecutionContext(), differing,
                    theirs), (byKey, failure) -> new Listing(backend, generation, byKey, failure));
        }
    }

    /** What a listing of {@code backend} holds for {@code key}'s license: null for a whole one. */
    private TmrLicense.Coverage coverage(LicenseKey key, BitSet covered) {
        return covered == null ? null : new TmrLicense.Coverage(covered, digestShares.getOrDefault(key, NO_SEATS));
    }

    /**
     * A license found its table not as the ranges of the gain's listing were chosen by: before the node serves, the
     * gain's listings are all taken again, whole; once it serves, the backend is re-synced from a fresh (whole)
     * listing.
     */
    private Effect<Event, State> onListWhole(ListWhole whole) {
        if (!leaseHeld) {
            return Effect().none();
        }
        if (status.reconciled() || wholeListings) {
            if (whole.backend() >= 0) {
                context.getSelf().tell(new NeedsResync(whole.key(), whole.backend()));
            }
            return Effect().none();
        }
        LOG.warn("License {} did not take the listings by digest; the backends are listed whole", whole.key());
        round++;
        gather(leaseEpoch, true);
        return Effect().none();
    }

    /**
     * Starts the listings of a lease's gain at {@code epoch} (a new round): every backend inventoried is listed (by
     * digests where it answers them, unless {@code whole}; a listing the twin took at this epoch is taken), and every
     * recovered license is told to re-sync every backend.
     */
    private void gather(long epoch, boolean whole) {
        // A listing taken before now may miss what another node wrote meanwhile: it is taken again, at once, for
        // every license (those still recovering take it when they ask; see listed).
        dropListings();
        wholeListings = whole;
        // Every backend inventoried is listed at once, and one inventoried while the listings are taken too; no
        // license re-syncs before two or more are listed: a handle two backends hold and the journal lacks (its
        // node acknowledged it while replication was degraded) is rebuilt from them, not freed, also while the
        // third backend is down or still connecting.
        for (int b = 0; b < resyncGeneration.length; b++) {
            resyncGeneration[b]++;
            resyncRunning[b] = false;
            Prelisted taken = prelisted[b];
            prelisted[b] = null;
            if (!inventoried.get(b)) {
                continue;
            }
            if (!whole && taken != null && taken.epoch() == epoch) {
                listed.set(b, taken.byKey());
                listedFenced[b] = taken.fenced();
            } else {
                prefetching[b] = true;
                startResync(b);
            }
        }
        gathering = true;
        endGatheringIfDone();
        usable.replaceAll((key, count) -> 0);
        // A license still recovering gets its ResyncAll of this round when it has recovered (onRecovered): a
        // second one now would ask for a second re-sync of every backend, which the listing taken at once
        // would not cover, and the license would re-sync again while it already serves.
        licenses.forEach((key, license) -> {
            if (recovered.contains(key)) {
                license.tell(new TmrLicense.ResyncAll(round));
            }
        });
    }

    private Effect<Event, State> onListing(Listing listing) {
        int backend = listing.backend();
        // A lease gained since the last check is taken first: its own listings replace this one (a new generation),
        // and no license re-syncs from a listing of before the gain, past the rebuild of what two backends hold.
        checkServing();
        if (listing.generation() != resyncGeneration[backend]) {
            return Effect().none();
        }
        resyncRunning[backend] = false;
        if (listing.failure() != null) {
            LOG.warn("Cannot list the allocations of backend {} for its re-sync; trying again: {}", backend + 1,
                    listing.failure().toString());
            // The gain's listing waits for this backend, while it is inventoried, within the reconcile timeout: a
            // handle it holds with one other backend would not be rebuilt without it. Past that it goes on without
            // this backend, whose re-syncs list it afresh.
            if (!gathering || !inventoried.get(backend) || !peers.isLinked(backend)
                    || clock.millis() - leaseSince >= reconcileTimeout.toMillis()) {
                prefetching[backend] = false;
                endGatheringIfDone();
            }
            timers.startSingleTimer("resync-" + backend, new StartResync(backend), Duration.ofSeconds(1));
            return Effect().none();
        }
        if (prefetching[backend]) {
            prefetching[backend] = false;
            // Past the reconcile timeout too, while the gain's listings are gathered: a handle two backends hold and
            // the journal lacks is still rebuilt from them (see noLicense), not freed by a re-sync from a later one.
            if (gathering || !status.reconciled()) {
                listed.set(backend, listing.byKey());
                listedFenced[backend] = fencedAtStart[backend];
            }
            if (gathering) {
                endGatheringIfDone();
                return Effect().none();
            }
        }
        if (!leaseHeld || listedUnder[backend] != leaseEpoch) {
            // Taken without the lease held now: the licenses waiting for it get a listing taken under the lease (at
            // the gain, or listed again here).
            if (leaseHeld) {
                timers.startSingleTimer("resync-" + backend, new StartResync(backend), Duration.ofMillis(200));
            }
            return Effect().none();
        }
        resyncWanting(backend, listing.byKey(), listedUnder[backend], null);
        return Effect().none();
    }

    /** The licenses waiting for a re-sync of {@code backend} take it from {@code byKey}, listed under {@code epoch}. */
    private void resyncWanting(int backend, Map<LicenseKey, List<Allocation>> byKey, long epoch, BitSet covered) {
        Set<LicenseKey> asked = wanting.get(backend);
        wanting.set(backend, new HashSet<>());
        for (LicenseKey key : asked) {
            ActorRef<TmrLicense.Command> license = licenses.get(key);
            if (license != null) {
                license.tell(new TmrLicense.Resync(backend, byKey.getOrDefault(key, List.of()), epoch,
                        coverage(key, covered)));
            }
        }
    }

    /**
     * A listing the twin's role took at the lease's gain: kept for the gain at its epoch, or, when the container
     * gained the lease at that epoch already and its own listing of the backend is still under way, taken instead.
     */
    private Effect<Event, State> onPrelisted(Prelisted listing) {
        int backend = listing.backend();
        if (!leaseHeld) {
            prelisted[backend] = listing;
        } else if (listing.epoch() == leaseEpoch && prefetching[backend] && !digestAsked[backend]
                && (gathering || !status.reconciled())) {
            // (A backend asked for digests meanwhile is listed by ranges, its ranges chosen with the others'.)
            resyncGeneration[backend]++;
            resyncRunning[backend] = false;
            prefetching[backend] = false;
            listed.set(backend, listing.byKey());
            listedFenced[backend] = listing.fenced();
            coveredBy[backend] = null;
            if (gathering) {
                endGatheringIfDone();
            } else {
                resyncWanting(backend, listing.byKey(), listing.epoch(), null);
            }
        }
        return Effect().none();
    }

    /**
     * The node serves from now on although the gain's listings are not all in (the reconcile timeout): its licenses'
     * tables change, so a listing by ranges, which holds only while they do not, is no longer taken. Every backend of
     * the gain asked for digests, or listed by ranges, is listed whole instead; the gathering goes on with those.
     */
    private void listWholeFromNowOn() {
        if (!gathering || wholeListings) {
            return;
        }
        wholeListings = true;
        for (int b = 0; b < digested.length; b++) {
            // A listing by ranges already taken stays: the licenses check their tables against it (a rebuild from it
            // drops nothing then, a re-sync asks for a whole listing).
            if (listed.get(b) != null || !digesting[b] && digested[b] == null && coveredBy[b] == null) {
                continue;
            }
            LOG.info("Backend {} is listed whole: the node serves before its listing by ranges was taken", b + 1);
            digesting[b] = false;
            digested[b] = null;
            coveredBy[b] = null;
            resyncGeneration[b]++;
            resyncRunning[b] = false;
            prefetching[b] = true;
            startResync(b);
        }
    }

    /** Whether a backend not listed at the lease's gain is linked, so it may be listed once it is inventoried. */
    private boolean mayListAnother() {
        for (int b = 0; b < listed.size(); b++) {
            if (listed.get(b) == null && !prefetching[b] && peers.isLinked(b)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Once every listing of the lease's gain is in (or its backend failed or left): each license with two or more
     * listed backends is first told what they hold ({@link TmrLicense.Rebuild}), then its waiting re-syncs take the
     * listings; a backend without one is listed afresh.
     */
    private void endGatheringIfDone() {
        if (!gathering) {
            return;
        }
        for (boolean listing : prefetching) {
            if (listing) {
                return;
            }
        }
        if (listed.stream().filter(java.util.Objects::nonNull).count() < 2 && mayListAnother()
                && clock.millis() - leaseSince < reconcileTimeout.toMillis()) {
            // One listing cannot tell a handle two backends hold: wait for a second backend linked but not
            // inventoried yet (listed when it is, see take).
            return;
        }
        gathering = false;
        List<Map<LicenseKey, List<Allocation>>> taken = new ArrayList<>();
        List<BitSet> takenCovered = new ArrayList<>();
        int fenced = 0;
        for (int b = 0; b < listed.size(); b++) {
            if (listed.get(b) != null) {
                taken.add(listed.get(b));
                takenCovered.add(coveredBy[b]);
                fenced += listedFenced[b] ? 1 : 0;
            }
        }
        int fencedListings = fenced;
        // Every license gets each complete listing, empty or not: what two or more backends hold and the journal lacks
        // is rebuilt, what the journal holds and no backend does is dropped if two or more listings were taken after
        // their backends fenced the old epoch (TmrLicense#onRebuild).
        if (taken.size() >= 2) {
            licenses.forEach((key, license) -> {
                List<List<Allocation>> held = new ArrayList<>();
                List<TmrLicense.Coverage> coverages = new ArrayList<>();
                for (int i = 0; i < taken.size(); i++) {
                    held.add(taken.get(i).getOrDefault(key, List.of()));
                    coverages.add(coverage(key, takenCovered.get(i)));
                }
                license.tell(new TmrLicense.Rebuild(leaseEpoch, held, fencedListings, coverages));
            });
        }
        for (int b = 0; b < listed.size(); b++) {
            if (listed.get(b) != null) {
                resyncWanting(b, listed.get(b), leaseEpoch, coveredBy[b]);
            } else if (!wanting.get(b).isEmpty()) {
                timers.startSingleTimer("resync-" + b, new StartResync(b), Duration.ofMillis(200));
            }
        }
    }
}
