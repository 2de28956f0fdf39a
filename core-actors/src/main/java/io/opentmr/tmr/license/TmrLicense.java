package io.opentmr.tmr.license;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.UnitsOperation;
import io.opentmr.tmr.backend.PeerGroup;
import io.opentmr.tmr.license.TmrLicenseEvent.SeatGranted;
import io.opentmr.tmr.license.TmrLicenseEvent.SeatReleased;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.ArrayList;
import java.util.Base64;
import java.util.BitSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.SnapshotAdapter;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventHandlerBuilder;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One TMR license {@code (firm, product, TMR-Id)} on the node: its seat table, and every decision that
 * needs two of the three copies.
 *
 * <p>A seat is granted only when two or more backends acknowledged its ALLOCATE; otherwise the
 * allocations made are freed again and the access refused (130 when too few backends answered, else
 * the error two copies agree on, e.g. 212). The grant is journaled before the client hears of it, so a
 * restarted node knows every handle it gave out. Units are decremented on every copy and the value two
 * copies report is the answer; CRYPT answers once two copies agree. A backend is used for this license
 * only once it was re-synced: allocations the table lacks freed, missing ones allocated, its counter set
 * to the majority's; a backend that missed a write is re-synced again before it counts.
 *
 * <p>While backends are asked the actor goes on with other requests: an access in flight holds its seat
 * as pending. Grants that complete while the journal writes are persisted together in the next write.
 */
public final class TmrLicense extends EventSourcedBehavior<TmrLicense.Command, TmrLicenseEvent, SeatTable> {

    private static final Logger LOG = LoggerFactory.getLogger(TmrLicense.class);
    private static final Logger INTEGRITY = LoggerFactory.getLogger("opentmr.integrity");

    public sealed interface Command {
    }

    /** Who asks for a seat: the client's address (what STATIONSHARE counts), user, process and session. */
    public record Client(String station, String host, String user, long pid, long sessionId) {
    }

    /** The copies that count now and what they agree on (from the virtual container). */
    public record Copies(BitSet counted, ProductInfo agreed, long majorityUnits) implements Command {
    }

    /** What one backend holds for this license, listed after it came (back): re-sync it. */
    public record Resync(int backend, List<Allocation> held) implements Command {
    }

    /** Replies with AccESS_OK or ERROR. */
    public record Access(long featureBits, AccessMode mode, Client client, ActorRef<Message> replyTo)
            implements Command {
    }

    /** Frees a handle's seat (client release, or reclaim); replies OK when journaled (replyTo may be null). */
    public record Release(long handleId, String reason, ActorRef<Message> replyTo) implements Command {
    }

    public record DecrementUnits(long handleId, long operationId, long amount, ActorRef<Message> replyTo)
            implements Command {
    }

    public record Crypt(long handleId, CryptDirection direction, long encryptionCode, Bytes data,
                        ActorRef<Message> replyTo) implements Command {
    }

    public record GetInfo(long handleId, ActorRef<Message> replyTo) implements Command {
    }

    /** The seat a handle holds, if any: rebuilding a handle whose own journal lacks it. */
    public record SeatOf(long handleId, ActorRef<Optional<Seat>> replyTo) implements Command {
    }

    /** Where the seats and handles of this license are told. */
    public interface Listener {
        /** Seats in use, handles, and how many backends the license can use now (2 or more: it serves). */
        void seatsChanged(LicenseKey key, long inUse, int handles, int usable);

        /** A seat was granted (also told for every seat of a recovered table). */
        void granted(LicenseKey key, Seat seat);

        void released(LicenseKey key, long handleId);

        void needsResync(int backend);
    }

    private record Allocated(long handleId, int backend, Throwable failure) implements Command {
    }

    private record Voted(long voteId, int backend, Message reply, Throwable failure) implements Command {
    }

    private record ResyncDone(int backend, long generation, Throwable failure) implements Command {
    }

    private enum Flush implements Command {
        INSTANCE
    }

    /** An access whose allocations are under way. */
    private static final class Pending {
        final Seat seat;
        final byte[] token;
        final ActorRef<Message> replyTo;
        final BitSet asked;
        final BitSet acked = new BitSet();
        final List<CmFailure> refusals = new ArrayList<>();
        int answered;
        boolean decided;

        Pending(Seat seat, byte[] token, ActorRef<Message> replyTo, BitSet asked) {
            this.seat = seat;
            this.token = token;
            this.replyTo = replyTo;
            this.asked = asked;
        }
    }

    /** A majority vote (units, crypt) under way. */
    private static final class Vote {
        final ActorRef<Message> replyTo;
        final String what;
        final boolean units;
        final int asked;
        final Map<Integer, Message> answers = new HashMap<>();
        final Map<Integer, Throwable> failures = new HashMap<>();
        boolean decided;

        Vote(ActorRef<Message> replyTo, String what, boolean units, int asked) {
            this.replyTo = replyTo;
            this.what = what;
            this.units = units;
            this.asked = asked;
        }
    }

    private final ActorContext<Command> context;
    private final LicenseKey key;
    private final Serial virtualSerial;
    private final PeerGroup peers;
    private final Listener listener;
    private final Clock clock;
    private final SecureRandom random;
    private final int snapshotEvery;

    private SeatTable table;
    private BitSet counted = new BitSet();
    private final BitSet synced = new BitSet();
    /** Re-syncs under way, and those that a failed write during it spoiled. */
    private final BitSet resyncing = new BitSet();
    private final BitSet resyncSpoiled = new BitSet();
    private final long[] resyncGeneration = new long[3];
    /** The re-sync generation already asked for, so a stream of copy updates asks once. */
    private final long[] resyncAsked = new long[3];
    private ProductInfo agreed;
    private long units = -1;
    private final Map<Long, Pending> pending = new HashMap<>();
    private final List<Pending> ready = new ArrayList<>();
    private final Map<Long, Release> releasing = new java.util.LinkedHashMap<>();
    private final Map<Long, Vote> votes = new HashMap<>();
    private long nextVote;
    private boolean flushQueued;

    public static Behavior<Command> create(LicenseKey key, Serial virtualSerial, PeerGroup peers, Listener listener,
                                           Clock clock, SecureRandom random, int snapshotEvery) {
        return Behaviors.setup(context -> new TmrLicense(context, key, virtualSerial, peers, listener, clock, random,
                snapshotEvery));
    }

    public static PersistenceId persistenceId(LicenseKey key) {
        return PersistenceId.of("tmr-license", key.firmCode() + "-" + key.productCode() + "-" + key.tmrId(), "|");
    }

    private TmrLicense(ActorContext<Command> context, LicenseKey key, Serial virtualSerial, PeerGroup peers,
                       Listener listener, Clock clock, SecureRandom random, int snapshotEvery) {
        super(persistenceId(key));
        this.context = context;
        this.key = key;
        this.virtualSerial = virtualSerial;
        this.peers = peers;
        this.listener = listener;
        this.clock = clock;
        this.random = random;
        this.snapshotEvery = snapshotEvery;
    }

    @Override
    public SeatTable emptyState() {
        table = new SeatTable();
        return table;
    }

    @Override
    public RetentionCriteria retentionCriteria() {
        return RetentionCriteria.snapshotEvery(snapshotEvery, 2).withDeleteEventsOnSnapshot();
    }

    @Override
    public SnapshotAdapter<SeatTable> snapshotAdapter() {
        return new SnapshotAdapter<>() {
            @Override
            public Object toJournal(SeatTable state) {
                return new TmrLicenseEvent.Snapshot(List.copyOf(state.all()));
            }

            @Override
            public SeatTable fromJournal(Object from) {
                SeatTable restored = new SeatTable();
                ((TmrLicenseEvent.Snapshot) from).seats().forEach(restored::add);
                return restored;
            }
        };
    }

    @Override
    public EventHandler<SeatTable, TmrLicenseEvent> eventHandler() {
        EventHandlerBuilder<SeatTable, TmrLicenseEvent> builder = newEventHandlerBuilder();
        builder.forAnyState()
                .onEvent(SeatGranted.class, (state, event) -> {
                    state.add(event.seat());
                    return state;
                })
                .onEvent(SeatReleased.class, (state, event) -> {
                    state.remove(event.handleId());
                    return state;
                });
        return builder.build();
    }

    @Override
    public SignalHandler<SeatTable> signalHandler() {
        return newSignalHandlerBuilder()
                .onSignal(RecoveryCompleted.instance(), state -> {
                    table = state;
                    LOG.info("TMR license {} ready: {} handle(s)", key, state.handles());
                    state.all().forEach(seat -> listener.granted(key, seat));
                    publishSeats();
                })
                .build();
    }

    @Override
    public CommandHandler<Command, TmrLicenseEvent, SeatTable> commandHandler() {
        return newCommandHandlerBuilder().forAnyState()
                .onCommand(Copies.class, this::onCopies)
                .onCommand(Resync.class, this::onResync)
                .onCommand(ResyncDone.class, this::onResyncDone)
                .onCommand(Access.class, this::onAccess)
                .onCommand(Allocated.class, this::onAllocated)
                .onCommand(Flush.class, flush -> onFlush())
                .onCommand(Release.class, this::onRelease)
                .onCommand(DecrementUnits.class, this::onUnits)
                .onCommand(Crypt.class, this::onCrypt)
                .onCommand(Voted.class, this::onVoted)
                .onCommand(GetInfo.class, this::onInfo)
                .onCommand(SeatOf.class, (state, seatOf) -> {
                    seatOf.replyTo().tell(state.get(seatOf.handleId()));
                    return Effect().none();
                })
                .build();
    }

    private String name() {
        return "TMR license " + key;
    }

    /** Backends this license uses now: their copy counts and they were re-synced. */
    private BitSet usable() {
        BitSet usable = (BitSet) counted.clone();
        usable.and(synced);
        return usable;
    }

    /**
     * Backends that get seat writes: the usable ones and those being re-synced, so that a seat granted or
     * freed while a re-sync is under way is not missing on that backend once it is done.
     */
    private BitSet writeTargets() {
        BitSet targets = usable();
        BitSet syncing = (BitSet) resyncing.clone();
        syncing.and(counted);
        targets.or(syncing);
        return targets;
    }

    // --- copies and re-sync -------------------------------------------------------------------------

    private Effect<TmrLicenseEvent, SeatTable> onCopies(SeatTable state, Copies copies) {
        BitSet lost = (BitSet) counted.clone();
        lost.andNot(copies.counted());
        counted = (BitSet) copies.counted().clone();
        synced.and(counted);
        resyncing.and(counted);
        agreed = copies.agreed();
        if (units < 0 || !synced.isEmpty() && synced.cardinality() < 2) {
            units = copies.majorityUnits();
        }
        if (!lost.isEmpty()) {
            LOG.info("{}: copies on backend(s) {} no longer count; {} usable", name(), indices(lost),
                    indices(usable()));
        }
        // A copy that starts to count is used only after a re-sync (its backend may have come back, or the
        // copies of the others arrived after it was listed).
        BitSet gained = (BitSet) counted.clone();
        gained.andNot(synced);
        for (int backend = gained.nextSetBit(0); backend >= 0; backend = gained.nextSetBit(backend + 1)) {
            if (resyncAsked[backend] < resyncGeneration[backend] + 1) {
                resyncAsked[backend] = resyncGeneration[backend] + 1;
                listener.needsResync(backend);
            }
        }
        publishSeats();
        return Effect().none();
    }

    private Effect<TmrLicenseEvent, SeatTable> onResync(SeatTable state, Resync resync) {
        int backend = resync.backend();
        if (!counted.get(backend)) {
            return Effect().none();
        }
        if (!peers.holdsLease()) {
            // Every write of a re-sync needs the lease certificate: try again once the node holds the lease.
            listener.needsResync(backend);
            return Effect().none();
        }
        long generation = ++resyncGeneration[backend];
        resyncing.set(backend);
        resyncSpoiled.clear(backend);
        Set<Long> held = new HashSet<>();
        List<CompletionStage<Message>> calls = new ArrayList<>();
        for (Allocation allocation : resync.held()) {
            held.add(allocation.tmrHandleId());
            if (state.get(allocation.tmrHandleId()).isEmpty() && !pending.containsKey(allocation.tmrHandleId())) {
                long handleId = allocation.tmrHandleId();
                calls.add(peers.call(backend, certificate -> new Message.Free(certificate, handleId, key,
                        peers.deadline())));
            }
        }
        int freed = calls.size();
        for (Seat seat : state.all()) {
            if (!held.contains(seat.handleId())) {
                calls.add(peers.call(backend, certificate -> new Message.Allocate(certificate, allocation(seat),
                        peers.deadline())));
            }
        }
        int added = calls.size() - freed;
        if (agreed != null && agreed.hasUnitCounter() && units >= 0) {
            long value = units;
            long operationId = random.nextLong();
            calls.add(peers.call(backend, certificate -> new Message.PeerUnits(certificate, key, operationId,
                    UnitsOperation.SET, value)));
        }
        LOG.info("{}: re-syncing backend {}: {} stale allocation(s) to free, {} missing to add{}", name(),
                backend + 1, freed, added, units >= 0 && agreed != null && agreed.hasUnitCounter()
                        ? ", units set to " + units : "");
        CompletionStage<Void> all = java.util.concurrent.CompletableFuture.allOf(calls.stream()
                .map(CompletionStage::toCompletableFuture).toArray(java.util.concurrent.CompletableFuture[]::new));
        context.pipeToSelf(all, (ok, failure) -> new ResyncDone(backend, generation, failure));
        return Effect().none();
    }

    private Effect<TmrLicenseEvent, SeatTable> onResyncDone(SeatTable state, ResyncDone done) {
        if (done.generation() != resyncGeneration[done.backend()]) {
            return Effect().none();
        }
        resyncing.clear(done.backend());
        if (!counted.get(done.backend())) {
            return Effect().none();
        }
        if (done.failure() == null && resyncSpoiled.get(done.backend())) {
            LOG.warn("{}: a seat write to backend {} failed during its re-sync; re-syncing it again", name(),
                    done.backend() + 1);
            listener.needsResync(done.backend());
            return Effect().none();
        }
        if (done.failure() != null) {
            LOG.warn("{}: re-sync of backend {} failed, it does not count until a later one succeeds: {}", name(),
                    done.backend() + 1, describe(done.failure()));
            listener.needsResync(done.backend());
            return Effect().none();
        }
        synced.set(done.backend());
        publishSeats();
        LOG.info("{}: backend {} re-synced; usable backends {}", name(), done.backend() + 1, indices(usable()));
        return Effect().none();
    }

    /**
     * A unit decrement went to the usable backends only (seat writes also go to backends being re-synced):
     * a re-sync under way on another one set its counter from the value before it and would leave that
     * backend behind, so it is dropped and asked again.
     */
    private void writtenTo(BitSet written) {
        for (int backend = resyncing.nextSetBit(0); backend >= 0; backend = resyncing.nextSetBit(backend + 1)) {
            if (!written.get(backend)) {
                resyncing.clear(backend);
                resyncGeneration[backend]++;
                LOG.info("{}: backend {} missed a write during its re-sync; it is re-synced again", name(),
                        backend + 1);
                listener.needsResync(backend);
            }
        }
    }

    private void outOfSync(int backend, String why) {
        if (resyncing.get(backend)) {
            resyncSpoiled.set(backend);
        }
        if (synced.get(backend)) {
            synced.clear(backend);
            publishSeats();
            LOG.warn("{}: backend {} missed a write ({}); it is re-synced before it counts again", name(),
                    backend + 1, why);
            listener.needsResync(backend);
        }
    }

    // --- access ----------------------------------------------------------------------------------------

    private Effect<TmrLicenseEvent, SeatTable> onAccess(SeatTable state, Access access) {
        BitSet usable = usable();
        if (agreed == null || usable.cardinality() < 2) {
            access.replyTo().tell(error(CmError.REDUNDANCY_SERVER_MISSING, name() + " has "
                    + usable.cardinality() + " usable cop" + (usable.cardinality() == 1 ? "y" : "ies") + "; 2 are needed"));
            return Effect().none();
        }
        if ((agreed.featureMap() & access.featureBits()) != access.featureBits()) {
            access.replyTo().tell(error(CmError.ENTRY_NOT_FOUND, name() + " lacks feature bits "
                    + Long.toHexString(access.featureBits() & ~agreed.featureMap())));
            return Effect().none();
        }
        Optional<SeatTable.Refusal> refusal = state.admit(access.mode(), access.client().station(), agreed.quantity(),
                name());
        if (refusal.isPresent()) {
            access.replyTo().tell(error(refusal.get().error(), refusal.get().text()));
            return Effect().none();
        }
        long handleId;
        do {
            handleId = random.nextLong() & Long.MAX_VALUE;
        } while (handleId == 0 || state.get(handleId).isPresent() || pending.containsKey(handleId));
        byte[] token = new byte[16];
        random.nextBytes(token);
        Client client = access.client();
        Seat seat = new Seat(handleId, access.mode(), access.featureBits(), client.station(), client.user(),
                client.pid(), client.sessionId(), Seat.digestOf(token), peers.epoch(),
                clock.millis());
        state.add(seat);
        BitSet targets = writeTargets();
        Pending request = new Pending(seat, token, access.replyTo(), targets);
        pending.put(handleId, request);
        Allocation allocation = allocation(seat);
        for (int backend = targets.nextSetBit(0); backend >= 0; backend = targets.nextSetBit(backend + 1)) {
            int asked = backend;
            long id = handleId;
            context.pipeToSelf(peers.call(asked,
                            certificate -> new Message.Allocate(certificate, allocation, peers.deadline())),
                    (reply, failure) -> new Allocated(id, asked, failure));
        }
        return Effect().none();
    }

    private Allocation allocation(Seat seat) {
        return new Allocation(seat.handleId(), key, seat.mode(), seat.featureBits(),
                new HandleOwner(seat.station(), seat.user(), seat.pid(), seat.sessionId()),
                Bytes.of(Base64.getDecoder().decode(seat.tokenDigest())), seat.epoch());
    }

    private Effect<TmrLicenseEvent, SeatTable> onAllocated(SeatTable state, Allocated answer) {
        Pending request = pending.get(answer.handleId());
        if (request == null) {
            // Decided, journaled or refused already: a late acknowledgement of a refused access is freed again;
            // a late failure of a granted one leaves that backend behind.
            if (answer.failure() == null && state.get(answer.handleId()).isEmpty()) {
                free(answer.backend(), answer.handleId());
            } else if (answer.failure() != null && state.get(answer.handleId()).isPresent()) {
                outOfSync(answer.backend(), "ALLOCATE " + describe(answer.failure()));
            }
            return Effect().none();
        }
        request.answered++;
        if (answer.failure() == null) {
            request.acked.set(answer.backend());
        } else {
            Throwable cause = unwrap(answer.failure());
            if (cause instanceof CmFailure refused && refused.code() != CmError.NETWORK_FAULT.code()) {
                request.refusals.add(refused);
            }
            if (request.decided) {
                outOfSync(answer.backend(), "ALLOCATE " + describe(cause));
            }
        }
        if (request.decided) {
            if (request.answered == request.asked.cardinality()) {
                pending.remove(answer.handleId());
            }
            return Effect().none();
        }
        int outstanding = request.asked.cardinality() - request.answered;
        if (request.acked.cardinality() >= 2) {
            request.decided = true;
            ready.add(request);
            queueFlush();
        } else if (request.acked.cardinality() + outstanding < 2) {
            request.decided = true;
            pending.remove(answer.handleId());
            state.remove(answer.handleId());
            for (int backend = request.acked.nextSetBit(0); backend >= 0;
                 backend = request.acked.nextSetBit(backend + 1)) {
                free(backend, answer.handleId());
            }
            request.replyTo.tell(refusal(request.refusals, request.asked.cardinality()));
        }
        return Effect().none();
    }

    /** Two copies that refuse alike decide the answer; otherwise the quorum was not reached. */
    private Message refusal(List<CmFailure> refusals, int asked) {
        Map<Integer, Integer> byCode = new HashMap<>();
        for (CmFailure refused : refusals) {
            if (byCode.merge(refused.code(), 1, Integer::sum) >= 2) {
                return new Message.Error(refused.code(), refused.text());
            }
        }
        if (refusals.size() >= 2) {
            INTEGRITY.warn("{}: the copies refused ALLOCATE differently: {}", name(), refusals);
        }
        return error(CmError.REDUNDANCY_SERVER_MISSING, name() + ": fewer than 2 of " + asked
                + " backends acknowledged the seat" + (refusals.isEmpty() ? "" : " (" + refusals.get(0).getMessage() + ")"));
    }

    private void queueFlush() {
        if (!flushQueued) {
            flushQueued = true;
            context.getSelf().tell(Flush.INSTANCE);
        }
    }

    /**
     * Journals the grants decided and the releases asked for since the last write, in one write: while it
     * is under way the actor stashes what comes, so the next flush takes all of that together.
     */
    private Effect<TmrLicenseEvent, SeatTable> onFlush() {
        flushQueued = false;
        if (ready.isEmpty() && releasing.isEmpty()) {
            return Effect().none();
        }
        List<Pending> granted = new ArrayList<>(ready);
        ready.clear();
        List<Release> released = new ArrayList<>(releasing.values());
        releasing.clear();
        long now = clock.millis();
        List<TmrLicenseEvent> events = new ArrayList<>(granted.size() + released.size());
        for (Pending request : granted) {
            // The seat is in the table already (it was held as pending); the event makes it durable.
            table.remove(request.seat.handleId());
            events.add(new SeatGranted(request.seat, now));
        }
        for (Release release : released) {
            events.add(new SeatReleased(release.handleId(), release.reason(), now));
        }
        BitSet targets = writeTargets();
        return Effect().persist(events).thenRun(state -> {
            for (Release release : released) {
                listener.released(key, release.handleId());
                for (int backend = targets.nextSetBit(0); backend >= 0; backend = targets.nextSetBit(backend + 1)) {
                    free(backend, release.handleId());
                }
                if (release.replyTo() != null) {
                    release.replyTo().tell(new Message.Ok());
                }
            }
            for (Pending request : granted) {
                if (request.answered == request.asked.cardinality()) {
                    pending.remove(request.seat.handleId());
                }
                listener.granted(key, request.seat);
                request.replyTo.tell(new Message.AccessOk(request.seat.handleId(), Bytes.of(request.token),
                        virtualSerial));
            }
            publishSeats();
        });
    }

    // --- release -----------------------------------------------------------------------------------------

    private Effect<TmrLicenseEvent, SeatTable> onRelease(SeatTable state, Release release) {
        long handleId = release.handleId();
        boolean undecided = pending.containsKey(handleId) && !pending.get(handleId).decided;
        if (state.get(handleId).isEmpty() || undecided || releasing.containsKey(handleId)) {
            if (release.replyTo() != null) {
                release.replyTo().tell(error(CmError.INVALID_HANDLE, "handle " + Long.toUnsignedString(handleId)
                        + " holds no seat of " + name()));
            }
            return Effect().none();
        }
        // Journaled with the other grants and releases that arrive meanwhile: one write for all of them.
        releasing.put(handleId, release);
        queueFlush();
        return Effect().none();
    }

    private void free(int backend, long handleId) {
        peers.call(backend, certificate -> new Message.Free(certificate, handleId, key, peers.deadline()))
                .whenComplete((ok, failure) -> {
                    if (failure != null) {
                        context.getSelf().tell(new Voted(-1, backend, null, failure));
                    }
                });
    }

    // --- units and crypt: majority votes ---------------------------------------------------------------

    private Effect<TmrLicenseEvent, SeatTable> onUnits(SeatTable state, DecrementUnits request) {
        // The same client operation maps to the same backend operation id, so a retry is never spent twice.
        long operationId = request.handleId() * 31 + request.operationId();
        return vote(state, request.handleId(), request.replyTo(), "units", true, certificate ->
                new Message.PeerUnits(certificate, key, operationId, UnitsOperation.DECREMENT, request.amount()));
    }

    private Effect<TmrLicenseEvent, SeatTable> onCrypt(SeatTable state, Crypt request) {
        return vote(state, request.handleId(), request.replyTo(), "crypt", false, certificate ->
                new Message.PeerCrypt(certificate, key, request.direction(), request.encryptionCode(), request.data()));
    }

    private Effect<TmrLicenseEvent, SeatTable> vote(SeatTable state, long handleId, ActorRef<Message> replyTo,
                                                    String what, boolean isUnits,
                                                    Function<io.opentmr.protocol.LeaseCertificate, Message> request) {
        if (state.get(handleId).isEmpty()) {
            replyTo.tell(error(CmError.INVALID_HANDLE, "handle " + Long.toUnsignedString(handleId)
                    + " holds no seat of " + name()));
            return Effect().none();
        }
        BitSet usable = usable();
        if (usable.cardinality() < 2) {
            replyTo.tell(error(CmError.REDUNDANCY_SERVER_MISSING, name() + " has " + usable.cardinality()
                    + " usable copies; 2 are needed"));
            return Effect().none();
        }
        if (isUnits) {
            writtenTo(usable);
        }
        long voteId = nextVote++;
        votes.put(voteId, new Vote(replyTo, what, isUnits, usable.cardinality()));
        for (int backend = usable.nextSetBit(0); backend >= 0; backend = usable.nextSetBit(backend + 1)) {
            int asked = backend;
            context.pipeToSelf(peers.call(asked, request), (reply, failure) -> new Voted(voteId, asked, reply, failure));
        }
        return Effect().none();
    }

    private Effect<TmrLicenseEvent, SeatTable> onVoted(SeatTable state, Voted voted) {
        if (voted.voteId() < 0) {
            outOfSync(voted.backend(), "FREE " + describe(voted.failure()));
            return Effect().none();
        }
        Vote vote = votes.get(voted.voteId());
        if (vote == null) {
            return Effect().none();
        }
        Message answer = voted.failure() == null ? voted.reply() : asError(voted.failure());
        Throwable cause = voted.failure() == null ? null : unwrap(voted.failure());
        // A lost connection (100) is no copy's answer: it is a failure, as in onAllocated.
        if (cause != null && (!(cause instanceof CmFailure refused)
                || refused.code() == CmError.NETWORK_FAULT.code())) {
            vote.failures.put(voted.backend(), voted.failure());
        } else {
            vote.answers.put(voted.backend(), answer);
        }
        int answered = vote.answers.size() + vote.failures.size();
        if (!vote.decided) {
            Optional<Message> majority = majority(vote.answers);
            if (majority.isPresent()) {
                vote.decided = true;
                Message decided = majority.get();
                if (vote.units && decided instanceof Message.UnitsOk ok) {
                    units = ok.remaining();
                    publishSeats();
                }
                vote.replyTo.tell(decided);
            } else if (answered == vote.asked) {
                vote.decided = true;
                if (vote.answers.size() >= 2) {
                    INTEGRITY.warn("{}: the copies disagree on {}: {}", name(), vote.what, vote.answers);
                    vote.replyTo.tell(error(CmError.TMR_COPIES_DISAGREE, name() + ": no two copies agree on "
                            + vote.what));
                } else {
                    vote.replyTo.tell(error(CmError.REDUNDANCY_SERVER_MISSING, name() + ": fewer than 2 copies answered "
                            + vote.what));
                }
            }
        }
        if (answered == vote.asked) {
            votes.remove(voted.voteId());
            if (vote.decided) {
                Optional<Message> majority = majority(vote.answers);
                for (Map.Entry<Integer, Throwable> failed : vote.failures.entrySet()) {
                    if (vote.units) {
                        outOfSync(failed.getKey(), vote.what + " " + describe(failed.getValue()));
                    }
                }
                if (vote.units) {
                    // Without a majority the node's units stay as they were: a copy that changed anyway differs.
                    Message agreedUnits = majority.orElse(new Message.UnitsOk(Math.max(0, units)));
                    for (Map.Entry<Integer, Message> given : vote.answers.entrySet()) {
                        if (given.getValue() instanceof Message.UnitsOk
                                && !sameAnswer(given.getValue(), agreedUnits)) {
                            INTEGRITY.warn("{}: backend {} answered {} with {} where two copies said {}", name(),
                                    given.getKey() + 1, vote.what, given.getValue(), agreedUnits);
                            outOfSync(given.getKey(), "its counter differs from the majority");
                        }
                    }
                }
            }
        }
        return Effect().none();
    }

    private static Optional<Message> majority(Map<Integer, Message> answers) {
        List<Message> given = new ArrayList<>(answers.values());
        for (int i = 0; i < given.size(); i++) {
            for (int j = i + 1; j < given.size(); j++) {
                if (sameAnswer(given.get(i), given.get(j))) {
                    return Optional.of(given.get(i));
                }
            }
        }
        return Optional.empty();
    }

    private static boolean sameAnswer(Message a, Message b) {
        if (a instanceof Message.Error ea && b instanceof Message.Error eb) {
            return ea.code() == eb.code();
        }
        return Objects.equals(a, b);
    }

    private Effect<TmrLicenseEvent, SeatTable> onInfo(SeatTable state, GetInfo request) {
        Optional<Seat> seat = state.get(request.handleId());
        if (seat.isPresent() && agreed == null) {
            request.replyTo().tell(error(CmError.REDUNDANCY_SERVER_MISSING, name() + " has fewer than 2 counted "
                    + "copies; handle " + Long.toUnsignedString(request.handleId()) + " keeps its seat"));
            return Effect().none();
        }
        if (seat.isEmpty()) {
            request.replyTo().tell(error(CmError.INVALID_HANDLE, "handle " + Long.toUnsignedString(request.handleId())
                    + " holds no seat of " + name()));
            return Effect().none();
        }
        request.replyTo().tell(new Message.Info(request.handleId(), seat.get().mode(), virtualSerial, product(state)));
        return Effect().none();
    }

    /** The license as the virtual container shows it: the agreed item, seats from the table, majority units. */
    private ProductInfo product(SeatTable state) {
        return new ProductInfo(agreed.firmCode(), agreed.productCode(), agreed.featureMap(), agreed.text(),
                agreed.quantity(), state.seatsInUse(agreed.quantity()), agreed.tmrId(), agreed.hasUnitCounter(),
                Math.max(0, units), agreed.expiresAtMillis(), agreed.activatesAtMillis(), agreed.usagePeriodSeconds(),
                agreed.usageStartedAtMillis(), agreed.borrowMaxSeconds());
    }

    private void publishSeats() {
        long inUse = agreed == null ? 0 : table.seatsInUse(agreed.quantity());
        listener.seatsChanged(key, inUse, table.handles(), usable().cardinality());
    }

    private static Message.Error error(CmError error, String text) {
        return new Message.Error(error, text);
    }

    private static Message asError(Throwable failure) {
        Throwable cause = unwrap(failure);
        if (cause instanceof CmFailure refused) {
            return new Message.Error(refused.code(), refused.text());
        }
        return new Message.Error(CmError.NETWORK_FAULT, describe(cause));
    }

    private static Throwable unwrap(Throwable failure) {
        return failure instanceof CompletionException && failure.getCause() != null ? failure.getCause() : failure;
    }

    private static String describe(Throwable failure) {
        Throwable cause = unwrap(failure);
        return cause.getMessage() == null ? cause.toString() : cause.getMessage();
    }

    private static String indices(BitSet backends) {
        StringBuilder text = new StringBuilder("[");
        for (int i = backends.nextSetBit(0); i >= 0; i = backends.nextSetBit(i + 1)) {
            text.append(text.length() > 1 ? "," : "").append(i + 1);
        }
        return text.append(']').toString();
    }

}
