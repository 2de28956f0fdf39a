package io.opentmr.backend;

import io.opentmr.backend.ContainerEvent.BorrowEnded;
import io.opentmr.backend.ContainerEvent.HandleReclaimed;
import io.opentmr.backend.ContainerEvent.HandleResumed;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.CryptTransform;
import io.opentmr.license.Ed25519;
import io.opentmr.license.LicenseRefusedException;
import io.opentmr.license.LicenseUpdate;
import io.opentmr.license.LicenseUpdateFile;
import io.opentmr.license.ProductItemSpec;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.AllocationDigests;
import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.GroupKeyStatement;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LeaseCertificate;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.UnitsOperation;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.server.ReplyBatch;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.PublicKey;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Function;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.SnapshotAdapter;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;

/**
 * A backend's container as an event-sourced actor: it owns {@link ContainerState}, persists what the
 * state decides, replies once the journal has it, signs borrow tickets with the container key, and
 * reclaims handles whose session went silent for the cleanup timeout.
 *
 * <p>Group commit at the actor: the requests a {@link Drain} takes from the {@link RequestInbox} are decided
 * one after the other against the live state and all their events go to the journal in one write and one
 * fsync; every reply is sent once that write is durable. An event-sourced actor handles one command per persist, so without
 * batches the container would be bound to one fsync per access. This is why the command handler
 * applies events to the (mutable, actor-owned) state itself and the event handler applies them only
 * during recovery; and why replies are sent explicitly rather than through enforced reply effects.
 */
public final class Container extends EventSourcedBehavior<Container.Command, ContainerEvent, ContainerState> {

    /** Everything a container is asked. Local only (same JVM as the server), so not serialised. */
    public sealed interface Command {
    }

    /** A command with a reply; the gateway may refuse it (309) without the container seeing it. */
    public sealed interface Request extends Command {
        void refuse(CmFailure refusal);
    }

    /** Where a request's answer goes: an actor ({@code ref::tell}), or a connection's reply path. */
    @FunctionalInterface
    public interface ReplyTo<T> {
        void tell(StatusReply<T> reply);

        /** Answers told to an actor, as an ask's or a test probe's. */
        static <T> ReplyTo<T> of(ActorRef<StatusReply<T>> actor) {
            return actor::tell;
        }
    }

    /**
     * Take the requests waiting in {@code inbox} and decide them together, persisted in one write; then take
     * again, until none wait (the inbox then wakes the container with the next one). A batch whose write fails
     * is never answered: the container stops, and its askers time out.
     */
    public record Drain(RequestInbox inbox) implements Command {
    }

    /**
     * @param station   the client's peer address: what STATIONSHARE counts
     * @param requestId the client's request id: a client re-sends a lost ACCESS with the same id, and gets
     *                  the handle the first one opened instead of a second seat
     * @param deadline  when the asker stops waiting (it then answers the client with ERROR 100), or null:
     *                  a request past it is not carried out, and a grant that becomes durable only after it
     *                  is released at once, so no seat is held for a client that was told it failed
     */
    public record Access(long firmCode, long productCode, long featureBits, AccessMode mode, HandleOwner owner,
                         String station, int requestId, boolean tmrPeer, Instant deadline,
                         ReplyTo<Granted> replyTo) implements Request {

        /** Without a deadline: the asker waits as long as it takes. */
        public Access(long firmCode, long productCode, long featureBits, AccessMode mode, HandleOwner owner,
                      String station, int requestId, boolean tmrPeer, ReplyTo<Granted> replyTo) {
            this(firmCode, productCode, featureBits, mode, owner, station, requestId, tmrPeer, null, replyTo);
        }

        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /** A new handle and its resume token (the container keeps only the token's digest). */
    public record Granted(Handle handle, Bytes token) {
    }

    public record Release(long handleId, long sessionId, ReplyTo<Done> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    public record Resume(long handleId, Bytes token, long sessionId, ReplyTo<Handle> replyTo)
            implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    public record GetInfo(long handleId, long sessionId, ReplyTo<HandleInfo> replyTo)
            implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    public record HandleInfo(Handle handle, ProductInfo product) {
    }

    public record DecrementUnits(long handleId, long sessionId, long operationId, long amount,
                                 ReplyTo<Long> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    public record Crypt(long handleId, long sessionId, CryptDirection direction, long encryptionCode, Bytes data,
                        ReplyTo<Bytes> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /** @param deadline as for {@link Access}: a borrow that becomes durable after it is ended at once */
    public record BorrowSeat(long handleId, long sessionId, Duration duration, String clientId, Instant deadline,
                             ReplyTo<BorrowTicket> replyTo) implements Request {

        /** Without a deadline: the asker waits as long as it takes. */
        public BorrowSeat(long handleId, long sessionId, Duration duration, String clientId,
                          ReplyTo<BorrowTicket> replyTo) {
            this(handleId, sessionId, duration, clientId, null, replyTo);
        }

        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /** @param clientId who asks: only the client the ticket was issued to may return it */
    public record ReturnBorrow(long ticketId, String clientId, ReplyTo<Done> replyTo)
            implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /** A license update file, verified against the trusted vendor keys, then against this container. */
    public record ImportLicense(Bytes file, ReplyTo<LicenseUpdate> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    public record GetContext(ReplyTo<ContainerContext> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    public record Describe(ReplyTo<ContainerInfo> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    // ---------------------------------------------------------------- operators (management HTTP)

    /**
     * What the container holds now, for an operator: copies, never the live state. {@code tmrBorrows}: the TMR
     * allocations a node borrowed (PEER_BORROW), each also among {@code allocations}.
     */
    public record Overview(Serial serial, long cmActId, Instant startedAt, List<ProductInfo> products,
                           List<Handle> handles, Map<Long, Instant> sessionsLastSeen, List<TmrAllocation> allocations,
                           List<Borrow> borrows, List<LeaseView> leases, Map<String, Long> highestEpochs,
                           List<TmrBorrow> tmrBorrows) {
    }

    /** A live lease granted to a TMR node. */
    public record LeaseView(String name, String holder, long epoch, Instant issuedAt, Instant expiresAt,
                            String connection) {
    }

    public record GetOverview(ReplyTo<Overview> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /**
     * An operator takes back a client's handle, whoever holds it (the seat is free at once); refused with 106 for
     * an unknown id. A TMR node's allocation is not a handle: the node frees it.
     *
     * @param by who asked, for the tracking log and the log line (the operator's address)
     */
    public record AdminRelease(long handleId, String by, ReplyTo<Handle> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    // ---------------------------------------------------------------- TMR node requests

    /** LEASE_ACQUIRE on a TMR node's connection; answered with the signed grant once its epoch is durable. */
    public record AcquireLease(PeerConnection connection, String leaseName, String holder, long proposedEpoch,
                               long ttlMillis, ReplyTo<LeaseGrant> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    public record RenewLease(PeerConnection connection, String leaseName, String holder, long epoch, long ttlMillis,
                             ReplyTo<LeaseGrant> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    public record ReleaseLease(PeerConnection connection, String leaseName, String holder, long epoch,
                               ReplyTo<Done> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /**
     * @param deadlineMillis the node's deadline, epoch milliseconds on its clock: past it (and the clock skew)
     *                       the request is not carried out
     */
    public record Allocate(PeerConnection connection, LeaseCertificate certificate, Allocation allocation,
                           long deadlineMillis, ReplyTo<Done> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /** @param deadlineMillis as for {@link Allocate} */
    public record Free(PeerConnection connection, LeaseCertificate certificate, long tmrHandleId, LicenseKey key,
                       long deadlineMillis, ReplyTo<Done> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /** LIST_ALLOCATIONS; {@code maxItems} is capped at {@link #MAX_ALLOCATIONS_PER_PAGE}. */
    public record ListAllocations(long afterHandleId, long maxItems,
                                  ReplyTo<ContainerState.AllocationPage> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /** LIST_DIGESTS: the count and digest of the allocations in each of {@code ranges} ranges. */
    public record ListDigests(int ranges, ReplyTo<AllocationDigests> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    public record PeerCrypt(PeerConnection connection, LeaseCertificate certificate, LicenseKey key,
                            CryptDirection direction, long encryptionCode, Bytes data,
                            ReplyTo<Bytes> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /** PEER_BORROW; @param deadlineMillis as for {@link Allocate} */
    public record PeerBorrow(PeerConnection connection, LeaseCertificate certificate, LicenseKey key, long tmrHandleId,
                             BorrowTicket ticket, long deadlineMillis, ReplyTo<BorrowTicket> replyTo)
            implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /** USAGE_START; @param deadlineMillis as for {@link Allocate} */
    public record UsageStart(PeerConnection connection, LeaseCertificate certificate, LicenseKey key,
                             long startedAtMillis, long deadlineMillis, ReplyTo<Done> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    public record PeerUnits(PeerConnection connection, LeaseCertificate certificate, LicenseKey key,
                            long operationId, UnitsOperation operation, long value,
                            ReplyTo<Long> replyTo) implements Request {
        @Override
        public void refuse(CmFailure refusal) {
            replyTo.tell(StatusReply.error(refusal));
        }
    }

    /**
     * Allocations in one ALLOCATION_LIST at most (~100 bytes each with short owner names, so the byte cap below
     * usually ends a page first): a take-over lists 100 000 allocations in about 20 pages.
     */
    public static final int MAX_ALLOCATIONS_PER_PAGE = 5000;

    /** Encoded allocations in one ALLOCATION_LIST at most: the page fits the default 1 MiB frame. */
    static final long MAX_ALLOCATION_PAGE_BYTES = 512 * 1024;

    /** A session showed a sign of life (any request, KEEPALIVE): its handles are not idle. */
    public record SessionActive(long sessionId) implements Command {
    }

    private record Cleanup() implements Command {
    }

    /** A grant or borrow that became durable after its asker gave up: take it back. */
    private record Abandoned(long handleId, long ticketId) implements Command {
    }

    private final ActorContext<Command> context;
    private final ContainerIdentity identity;
    private final List<PublicKey> vendorKeys;
    private final Duration cleanupTimeout;
    private final int snapshotEvery;
    private final Clock clock;
    private final TrackingLog tracking;
    private final Instant startedAt;
    private final BackendSettings.Lease leaseSettings;
    private final BackendSettings.Units unitSettings;
    private final CertificateCheck certificates;
    /** Leases granted to TMR nodes; not journaled (bound to connections), only their epochs are. */
    private final LeaseTable leases = new LeaseTable();
    /** Last sign of life per session; not journaled, so after a restart every handle gets a full timeout. */
    private final Map<Long, Instant> lastSeen = new HashMap<>();
    /** Makes the resume tokens; its key is derived from the container's private key, so the same after a restart. */
    private final javax.crypto.Mac tokens;
    private final ContainerCounts counts;
    private final io.opentmr.metrics.ServerMetrics metrics;

    private boolean recovered;
    /** Whether the inbox decides lease requests with {@link #decideAtOnce} (lent with the first Drain). */
    private boolean deskLent;

    /** Events between snapshots when none is configured: recovery replays at most this many after one. */
    public static final int DEFAULT_SNAPSHOT_EVERY = 1000;

    public static Behavior<Command> create(ContainerIdentity identity, List<PublicKey> vendorKeys,
                                           Duration cleanupTimeout, Clock clock) {
        return create(identity, vendorKeys, cleanupTimeout, DEFAULT_SNAPSHOT_EVERY, clock);
    }

    public static Behavior<Command> create(ContainerIdentity identity, List<PublicKey> vendorKeys,
                                           Duration cleanupTimeout, int snapshotEvery, Clock clock) {
        return create(identity, vendorKeys, cleanupTimeout, snapshotEvery, BackendSettings.Lease.DEFAULT, clock);
    }

    public static Behavior<Command> create(ContainerIdentity identity, List<PublicKey> vendorKeys,
                                           Duration cleanupTimeout, int snapshotEvery,
                                           BackendSettings.Lease leaseSettings, Clock clock) {
        return create(identity, vendorKeys, cleanupTimeout, snapshotEvery, leaseSettings, BackendSettings.Units.DEFAULT,
                clock);
    }

    public static Behavior<Command> create(ContainerIdentity identity, List<PublicKey> vendorKeys,
                                           Duration cleanupTimeout, int snapshotEvery,
                                           BackendSettings.Lease leaseSettings, BackendSettings.Units unitSettings,
                                           Clock clock) {
        return create(identity, vendorKeys, cleanupTimeout, snapshotEvery, leaseSettings, unitSettings, clock,
                new ContainerCounts(), null);
    }

    /**
     * @param counts  where the container writes its numbers after each batch (the backend's gauges read them)
     * @param metrics where its journal writes are timed; null: nowhere
     */
    public static Behavior<Command> create(ContainerIdentity identity, List<PublicKey> vendorKeys,
                                           Duration cleanupTimeout, int snapshotEvery,
                                           BackendSettings.Lease leaseSettings, BackendSettings.Units unitSettings,
                                           Clock clock, ContainerCounts counts,
                                           io.opentmr.metrics.ServerMetrics metrics) {
        Duration interval = cleanupTimeout.dividedBy(4);
        Duration tick = interval.compareTo(Duration.ofSeconds(10)) > 0 ? Duration.ofSeconds(10)
                : interval.compareTo(Duration.ofMillis(100)) < 0 ? Duration.ofMillis(100) : interval;
        // A failed journal write stops the container (Pekko's default). Its parent, the ContainerGateway, then
        // starts a new one: a new instance with a new empty state that recovers from snapshot and journal.
        // (Pekko's own restart on persist failure would keep this instance, and with it a live state that
        // already holds the events whose write failed.)
        return Behaviors.setup(context -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(new Cleanup(), tick);
            return new Container(context, identity, vendorKeys, cleanupTimeout, snapshotEvery, leaseSettings,
                    unitSettings, clock, counts, metrics);
        }));
    }

    public static PersistenceId persistenceId(ContainerIdentity identity) {
        return PersistenceId.of("container", identity.serial().toString());
    }

    private Container(ActorContext<Command> context, ContainerIdentity identity, List<PublicKey> vendorKeys,
                      Duration cleanupTimeout, int snapshotEvery, BackendSettings.Lease leaseSettings,
                      BackendSettings.Units unitSettings, Clock clock, ContainerCounts counts,
                      io.opentmr.metrics.ServerMetrics metrics) {
        super(persistenceId(identity));
        this.counts = counts;
        this.metrics = metrics;
        this.leaseSettings = leaseSettings;
        this.unitSettings = unitSettings;
        this.certificates = new CertificateCheck(leaseSettings.clockSkew());
        this.context = context;
        this.identity = identity;
        this.vendorKeys = List.copyOf(vendorKeys);
        this.cleanupTimeout = cleanupTimeout;
        this.snapshotEvery = snapshotEvery;
        this.clock = clock;
        this.tracking = new TrackingLog(identity.serial());
        this.startedAt = clock.instant();
        this.tokens = tokenMac(identity);
    }

    @Override
    public ContainerState emptyState() {
        return new ContainerState(identity.serial(), identity.cmActId(), unitSettings);
    }

    /** Snapshots bound recovery; the events a snapshot covers are deleted, which bounds the journal too. */
    @Override
    public RetentionCriteria retentionCriteria() {
        return RetentionCriteria.snapshotEvery(snapshotEvery, 2).withDeleteEventsOnSnapshot();
    }

    /** The store gets an immutable copy made here, on the container's thread, never the live mutable state. */
    @Override
    public SnapshotAdapter<ContainerState> snapshotAdapter() {
        return new SnapshotAdapter<>() {
            @Override
            public Object toJournal(ContainerState state) {
                return state.toSnapshot();
            }

            @Override
            public ContainerState fromJournal(Object from) {
                return ContainerState.fromSnapshot((ContainerSnapshot) from, unitSettings);
            }
        };
    }

    @Override
    public EventHandler<ContainerState, ContainerEvent> eventHandler() {
        // After recovery the command handler has already applied an event when it decided on it.
        return newEventHandlerBuilder().forAnyState().onAnyEvent((state, event) -> recovered ? state : state.apply(event));
    }

    @Override
    public SignalHandler<ContainerState> signalHandler() {
        return newSignalHandlerBuilder()
                .onSignal(RecoveryCompleted.instance(), state -> {
                    recovered = true;
                    counts.update(state);
                    context.getLog().info(
                            "Container {} (CmActId {}) ready: {} product item(s), {} open handle(s), {} borrow(s), "
                                    + "{} TMR allocation(s), active lease epoch {}",
                            identity.serial(), identity.cmActId(), state.products().size(), state.handles().size(),
                            state.borrows().size(), state.allocations().size(),
                            state.highestEpoch(LeaseGrant.ACTIVE_LEASE));
                })
                .build();
    }

    @Override
    public CommandHandler<Command, ContainerEvent, ContainerState> commandHandler() {
        return newCommandHandlerBuilder().forAnyState()
                .onCommand(Drain.class, this::onDrain)
                .onCommand(Request.class, (state, request) -> persist(state, List.of(request), () -> { }))
                .onCommand(SessionActive.class, (state, c) -> {
                    lastSeen.put(c.sessionId(), clock.instant());
                    return Effect().none();
                })
                .onCommand(Cleanup.class, this::onCleanup)
                .onCommand(Abandoned.class, this::onAbandoned)
                .build();
    }

    /** What one request leads to: events (already applied to the live state) and what to do once they are durable. */
    private record Outcome(List<ContainerEvent> events, Runnable afterPersist, Runnable reply) {
    }

    private static final Runnable NOTHING = () -> { };

    private Effect<ContainerEvent, ContainerState> onDrain(ContainerState state, Drain drain) {
        if (!deskLent) {
            // The first Drain comes once the container has recovered (commands wait until then).
            deskLent = true;
            drain.inbox().leaseDesk(this::decideAtOnce);
        }
        List<Request> batch = drain.inbox().take();
        if (batch.isEmpty()) {
            if (drain.inbox().sleep()) {
                context.getSelf().tell(drain);
            }
            return Effect().none();
        }
        // Told to self, the next Drain comes after this write: whatever waits by then is the next batch.
        return persist(state, batch, () -> context.getSelf().tell(drain));
    }

    /**
     * Decides {@code requests} and persists their events in one write. Once it is durable: what each request
     * does after its write (tracking lines among it), then the batch's tracking lines in one write to the log,
     * then the replies. So a tracking line reaches the log (the operating system, not the disk) before the reply
     * to the request it records, as one write per batch rather than one per line.
     */
    private Effect<ContainerEvent, ContainerState> persist(ContainerState state, List<Request> requests,
                                                           Runnable whenDone) {
        List<ContainerEvent> events = new ArrayList<>();
        List<Outcome> outcomes = new ArrayList<>(requests.size());
        tracking.hold();
        for (Request request : requests) {
            Outcome outcome = handle(state, request);
            events.addAll(outcome.events());
            outcomes.add(outcome);
        }
        Runnable finish = () -> {
            outcomes.forEach(o -> o.afterPersist().run());
            tracking.flush();
            counts.update(state);
            // Each event loop gets the batch's replies for its connections as one task: one wake-up, not one a reply.
            ReplyBatch.run(() -> outcomes.forEach(o -> o.reply().run()));
            whenDone.run();
        };
        if (events.isEmpty()) {
            finish.run();
            return Effect().none();
        }
        long writing = System.nanoTime();
        return Effect().persist(events).thenRun(persisted -> {
            if (metrics != null) {
                metrics.journalWrite(System.nanoTime() - writing);
            }
            finish.run();
        });
    }

    private Outcome handle(ContainerState state, Request request) {
        if (request instanceof Access c) {
            return onAccess(state, c);
        } else if (request instanceof Release c) {
            Instant now = clock.instant();
            return decide(state, state.release(c.handleId(), c.sessionId(), now), c.replyTo(),
                    handle -> Done.getInstance(), handle -> tracking.release(handle.id(), handle.item(), now));
        } else if (request instanceof Resume c) {
            Instant now = clock.instant();
            lastSeen.put(c.sessionId(), now);
            return decide(state, state.resume(c.handleId(), digest(c.token().toArray()), c.sessionId(), now),
                    c.replyTo(), handle -> handle.withSession(c.sessionId()), handle -> { });
        } else if (request instanceof GetInfo c) {
            return onGetInfo(state, c);
        } else if (request instanceof DecrementUnits c) {
            return decide(state, state.decrementUnits(c.handleId(), c.sessionId(), c.operationId(), c.amount(),
                    clock.instant()), c.replyTo(), Function.identity(), remaining -> { });
        } else if (request instanceof Crypt c) {
            return onCrypt(state, c);
        } else if (request instanceof BorrowSeat c) {
            Instant now = clock.instant();
            if (late(c.deadline(), now)) {
                return reply(c.replyTo(), StatusReply.error(new CmFailure(CmError.NETWORK_FAULT,
                        "BORROW reached the container after its deadline; not carried out")));
            }
            return decide(state, state.borrow(c.handleId(), c.sessionId(), c.duration(), c.clientId(), now),
                    c.replyTo(), this::ticket, borrow -> {
                        tracking.borrow(borrow.ticketId(), borrow.item(), borrow.clientId(), borrow.expiresAt(), now);
                        if (late(c.deadline(), clock.instant())) {
                            context.getLog().warn("Container {}: borrow {} became durable after its request's "
                                    + "deadline; ending it", identity.serial(), borrow.ticketId());
                            context.getSelf().tell(new Abandoned(0, borrow.ticketId()));
                        }
                    });
        } else if (request instanceof ReturnBorrow c) {
            Instant now = clock.instant();
            return decide(state, state.returnBorrow(c.ticketId(), c.clientId(), now), c.replyTo(),
                    borrow -> Done.getInstance(),
                    borrow -> tracking.borrowEnded(borrow.ticketId(), true, now));
        } else if (request instanceof ImportLicense c) {
            return onImportLicense(state, c);
        } else if (request instanceof GetContext c) {
            return reply(c.replyTo(), StatusReply.success(ContainerContext.of(identity.serial(), identity.cmActId(),
                    state.firmUpdateCounters(), identity.rawPublicKey())));
        } else if (request instanceof GetOverview c) {
            return reply(c.replyTo(), StatusReply.success(overview(state)));
        } else if (request instanceof AdminRelease c) {
            Instant now = clock.instant();
            return decide(state, state.reclaim(c.handleId(), now), c.replyTo(), Function.identity(), handle -> {
                context.getLog().warn("Container {}: handle {} of {}@{} on {} released by an operator ({})",
                        identity.serial(), handle.id(), handle.owner().user(), handle.owner().host(), handle.item(),
                        c.by());
                tracking.adminRelease(handle.id(), handle.item(), c.by(), now);
            });
        } else if (request instanceof Describe c) {
            return reply(c.replyTo(), StatusReply.success(new ContainerInfo(identity.serial(), identity.cmActId(),
                    Bytes.of(identity.rawPublicKey()), state.products())));
        } else if (request instanceof AcquireLease c) {
            Instant now = clock.instant();
            long before = state.highestEpoch(c.leaseName());
            Decision<LeaseTable.Lease> decision = leases.acquire(c.leaseName(), c.holder(), c.proposedEpoch(),
                    ttl(c.ttlMillis()), c.connection(), before, state.highestHolder(c.leaseName()), now);
            return decide(state, decision, c.replyTo(), this::grant, lease -> {
                        leases.journaled(lease.name(), lease.epoch());
                        if (lease.epoch() > before) {
                            context.getLog().info("Container {}: lease {} granted to {} at epoch {} ({})",
                                    identity.serial(), lease.name(), lease.holder(), lease.epoch(), c.connection());
                        }
                    });
        } else if (request instanceof RenewLease c) {
            return decide(state, leases.renew(c.leaseName(), c.holder(), c.epoch(), ttl(c.ttlMillis()), c.connection(),
                    clock.instant()), c.replyTo(), this::grant, lease -> { });
        } else if (request instanceof ReleaseLease c) {
            return decide(state, leases.release(c.leaseName(), c.holder(), c.epoch(), c.connection()), c.replyTo(),
                    released -> Done.getInstance(), released -> {
                        if (released) {
                            context.getLog().info("Container {}: lease {} of {} at epoch {} released ({})",
                                    identity.serial(), c.leaseName(), c.holder(), c.epoch(), c.connection());
                        }
                    });
        } else if (request instanceof Allocate c) {
            return onAllocate(state, c);
        } else if (request instanceof Free c) {
            return onFree(state, c);
        } else if (request instanceof PeerBorrow c) {
            return onPeerBorrow(state, c);
        } else if (request instanceof UsageStart c) {
            return onUsageStart(state, c);
        } else if (request instanceof ListAllocations c) {
            int max = (int) Math.min(c.maxItems(), MAX_ALLOCATIONS_PER_PAGE);
            return reply(c.replyTo(), StatusReply.success(state.allocations(c.afterHandleId(), max,
                    MAX_ALLOCATION_PAGE_BYTES)));
        } else if (request instanceof ListDigests c) {
            return reply(c.replyTo(), StatusReply.success(state.digests(c.ranges())));
        } else if (request instanceof PeerCrypt c) {
            return onPeerCrypt(state, c);
        } else if (request instanceof PeerUnits c) {
            return onPeerUnits(state, c);
        }
        throw new IllegalArgumentException("unknown request " + request.getClass().getName());
    }

    private Overview overview(ContainerState state) {
        Instant now = clock.instant();
        List<LeaseView> live = leases.allLive(now).stream().map(l -> new LeaseView(l.name(), l.holder(), l.epoch(),
                l.issuedAt(), l.expiresAt(), l.connection().address())).toList();
        Map<String, Long> epochs = new java.util.TreeMap<>();
        epochs.put(LeaseGrant.ACTIVE_LEASE, state.highestEpoch(LeaseGrant.ACTIVE_LEASE));
        live.forEach(l -> epochs.put(l.name(), state.highestEpoch(l.name())));
        return new Overview(identity.serial(), identity.cmActId(), startedAt, state.products(),
                List.copyOf(state.handles()), Map.copyOf(lastSeen), List.copyOf(state.allocations()),
                List.copyOf(state.borrows()), live, epochs, List.copyOf(state.tmrBorrows()));
    }

    private Outcome onAccess(ContainerState state, Access c) {
        Instant now = clock.instant();
        if (late(c.deadline(), now)) {
            return reply(c.replyTo(), StatusReply.error(new CmFailure(CmError.NETWORK_FAULT,
                    "ACCESS reached the container after its deadline; not carried out")));
        }
        long handleId = state.nextHandleId();
        byte[] token = resumeToken(handleId);
        ContainerState.AccessRequest request = new ContainerState.AccessRequest(c.firmCode(), c.productCode(),
                c.featureBits(), c.mode(), c.owner(), digest(token), c.tmrPeer(), c.station(), c.requestId());
        lastSeen.put(c.owner().sessionId(), now);
        Handle earlier = state.retried(request, now);
        if (earlier != null) {
            // The same request again: its reply was lost. Hand over the same handle on the new session.
            Granted again = new Granted(earlier.withSession(c.owner().sessionId()),
                    Bytes.of(resumeToken(earlier.id())));
            return decide(state, Decision.accept(again, new HandleResumed(earlier.id(), c.owner().sessionId(), now)),
                    c.replyTo(), Function.identity(), granted -> { });
        }
        Decision<Handle> decision = state.access(request, now);
        if (decision instanceof Decision.Refuse<Handle> refuse) {
            tracking.denial(refuse.error().code(), refuse.text(), "ACCESS " + c.firmCode() + ":" + c.productCode(),
                    c.owner(), now);
        }
        return decide(state, decision, c.replyTo(), handle -> new Granted(handle, Bytes.of(token)), handle -> {
            tracking.access(handle, now);
            if (late(c.deadline(), clock.instant())) {
                context.getLog().warn("Container {}: handle {} for {}@{} became durable after its request's deadline;"
                        + " releasing it, the client was told the request failed", identity.serial(), handle.id(),
                        handle.owner().user(), handle.owner().host());
                context.getSelf().tell(new Abandoned(handle.id(), 0));
            }
        });
    }


    private Outcome onGetInfo(ContainerState state, GetInfo c) {
        Decision<Handle> owned = state.handle(c.handleId(), c.sessionId());
        if (owned instanceof Decision.Accept<Handle> accept) {
            Handle handle = accept.reply();
            return reply(c.replyTo(), StatusReply.success(new HandleInfo(handle, state.product(handle.item()))));
        }
        return refusal(c.replyTo(), (Decision.Refuse<Handle>) owned);
    }

    private Outcome onCrypt(ContainerState state, Crypt c) {
        Decision<Handle> owned = state.handle(c.handleId(), c.sessionId());
        if (owned instanceof Decision.Refuse<Handle> refuse) {
            return refusal(c.replyTo(), refuse);
        }
        Handle handle = ((Decision.Accept<Handle>) owned).reply();
        return reply(c.replyTo(), crypt(handle.item(), state.spec(handle.item()), c.direction(), c.encryptionCode(),
                c.data()));
    }

    /** CRYPT and PEER_CRYPT: the same transform, so the three TMR copies and a node's vote agree. */
    private StatusReply<Bytes> crypt(LicenseKey item, ProductItemSpec spec, CryptDirection direction,
                                     long encryptionCode, Bytes data) {
        Instant now = clock.instant();
        if (spec.expiresAt() != null && !now.isBefore(spec.expiresAt())) {
            return StatusReply.error(new CmFailure(CmError.EXPIRED,
                    "product item " + item + " expired at " + spec.expiresAt()));
        }
        byte[] bytes = data.toArray();
        try {
            byte[] result = direction == CryptDirection.ENCRYPT
                    ? CryptTransform.encrypt(spec.secretBytes(), encryptionCode, bytes)
                    : CryptTransform.decrypt(spec.secretBytes(), encryptionCode, bytes);
            return StatusReply.success(Bytes.of(result));
        } catch (IllegalArgumentException e) {
            return StatusReply.error(new CmFailure(CmError.INVALID_PARAMETER, e.getMessage()));
        }
    }

    // ---------------------------------------------------------------- TMR node requests

    private Duration ttl(long requestedMillis) {
        Duration requested = Duration.ofMillis(requestedMillis);
        return requested.compareTo(leaseSettings.maxTtl()) > 0 ? leaseSettings.maxTtl() : requested;
    }

    /**
     * The lease requests decided at once on the thread that submits them ({@link RequestInbox}), outside the batches
     * and their journal writes, as they write nothing: a LEASE_RENEW (a node's renewals must not wait for other
     * requests' fsyncs) of a lease whose epoch is journaled, and a LEASE_ACQUIRE refused while another holder's lease
     * is live (a standby's heartbeat).
     * Thread-safe: the lease table is, and the rest is immutable. False: the request waits for the container.
     */
    private boolean decideAtOnce(Request request) {
        if (request instanceof RenewLease c) {
            Decision<LeaseTable.Lease> renewed = leases.renewAtOnce(c.leaseName(), c.holder(), c.epoch(),
                    ttl(c.ttlMillis()), c.connection(), clock.instant());
            if (renewed == null) {
                return false;
            }
            answer(c.replyTo(), renewed);
            return true;
        } else if (request instanceof AcquireLease c) {
            Decision<LeaseTable.Lease> refused = leases.refusedAtOnce(c.leaseName(), c.holder(), c.connection(),
                    clock.instant());
            if (refused != null) {
                answer(c.replyTo(), refused);
                return true;
            }
        }
        return false;
    }

    private void answer(ReplyTo<LeaseGrant> replyTo, Decision<LeaseTable.Lease> decision) {
        if (decision instanceof Decision.Refuse<LeaseTable.Lease> refuse) {
            refusal(replyTo, refuse).reply().run();
        } else {
            replyTo.tell(StatusReply.success(grant(((Decision.Accept<LeaseTable.Lease>) decision).reply())));
        }
    }

    /** The lease as a grant signed by this container's key, as borrow tickets are. */
    private LeaseGrant grant(LeaseTable.Lease lease) {
        LeaseGrant unsigned = new LeaseGrant(lease.name(), lease.holder(), lease.epoch(),
                lease.issuedAt().toEpochMilli(), lease.ttl().toMillis(), identity.serial(), Bytes.EMPTY);
        return unsigned.withSignature(Bytes.of(Ed25519.sign(identity.keys().getPrivate(), unsigned.signedPayload())));
    }

    /**
     * Checks a peer request's certificate against the TMR copy's group keys. Accepted: the events that raise
     * the highest seen epoch, if the certificate's is higher (empty list otherwise); refused: null, and
     * {@code refused} has been given the 134.
     */
    private List<ContainerEvent> certified(ContainerState state, String request, PeerConnection connection,
                                           LeaseCertificate certificate, List<String> groupKeys, Instant now,
                                           Consumer<Decision.Refuse<Long>> refused) {
        Decision<Long> verdict = certificates.check(certificate, connection, groupKeys,
                state.highestEpoch(LeaseGrant.ACTIVE_LEASE), leases.live(LeaseGrant.ACTIVE_LEASE, now), now);
        if (verdict instanceof Decision.Refuse<Long> refuse) {
            context.getLog().warn("Container {}: refused {} of TMR node {} ({}): {}", identity.serial(), request,
                    connection.node(), connection.address(), refuse.text());
            refused.accept(refuse);
            return null;
        }
        // The certificate's holder is the connection's node: the check refused any other.
        return state.epochSeen(LeaseGrant.ACTIVE_LEASE, ((Decision.Accept<Long>) verdict).reply(), connection.node(),
                now);
    }

    /**
     * As {@link #decide}, with the epoch raise of a valid certificate persisted first; a refused write still
     * persists the raise, since the certificate showed the epoch.
     */
    private <T, R> Outcome decideCertified(ContainerState state, List<ContainerEvent> seen, Decision<T> decision,
                                           ReplyTo<R> replyTo, Function<T, R> reply,
                                           Consumer<T> afterPersist) {
        seen.forEach(state::apply);
        Outcome outcome = decide(state, decision, replyTo, reply, afterPersist);
        if (seen.isEmpty()) {
            return outcome;
        }
        List<ContainerEvent> events = new ArrayList<>(seen);
        events.addAll(outcome.events());
        return new Outcome(events, outcome.afterPersist(), outcome.reply());
    }

    /**
     * Whether a node's request comes too late: past its deadline by more than the clock skew, the node has
     * stopped waiting for it and counts this backend as not answering.
     */
    private boolean pastDeadline(long deadlineMillis, Instant now) {
        return now.toEpochMilli() - leaseSettings.clockSkew().toMillis() > deadlineMillis;
    }

    private <T> Outcome latePeerRequest(String request, PeerConnection connection, long deadlineMillis, Instant now,
                                        ReplyTo<T> replyTo) {
        context.getLog().warn("Container {}: {} of TMR node {} ({}) came after its deadline {} (now {}); not carried "
                + "out", identity.serial(), request, connection.node(), connection.address(),
                Instant.ofEpochMilli(deadlineMillis), now);
        return reply(replyTo, StatusReply.error(new CmFailure(CmError.NETWORK_FAULT, request
                + " reached the container after its deadline " + Instant.ofEpochMilli(deadlineMillis)
                + "; not carried out")));
    }

    private Outcome onAllocate(ContainerState state, Allocate c) {
        Instant now = clock.instant();
        if (pastDeadline(c.deadlineMillis(), now)) {
            return latePeerRequest("ALLOCATE", c.connection(), c.deadlineMillis(), now, c.replyTo());
        }
        LicenseKey key = c.allocation().key();
        List<String> groupKeys = state.tmrGroupKeys(key);
        if (groupKeys == null) {
            return reply(c.replyTo(), StatusReply.error(new CmFailure(CmError.ENTRY_NOT_FOUND,
                    "no TMR copy " + key + " in container " + identity.serial())));
        }
        List<Outcome> refusal = new ArrayList<>(1);
        List<ContainerEvent> seen = certified(state, "ALLOCATE", c.connection(), c.certificate(), groupKeys, now,
                refuse -> refusal.add(refusal(c.replyTo(), refuse)));
        if (seen == null) {
            return refusal.get(0);
        }
        boolean known = state.allocation(c.allocation().tmrHandleId()) != null;
        long leaseEpoch = certifiedEpoch(c.certificate());
        return decideCertified(state, seen, state.allocate(c.allocation(), now), c.replyTo(),
                allocation -> Done.getInstance(), allocation -> {
                    if (!known) {
                        tracking.allocation(allocation, c.connection().node(), leaseEpoch, now);
                    }
                });
    }

    private Outcome onFree(ContainerState state, Free c) {
        Instant now = clock.instant();
        if (pastDeadline(c.deadlineMillis(), now)) {
            return latePeerRequest("FREE", c.connection(), c.deadlineMillis(), now, c.replyTo());
        }
        TmrAllocation held = state.allocation(c.tmrHandleId());
        LicenseKey key = held != null ? held.item() : c.key();
        List<String> groupKeys = state.tmrGroupKeys(key);
        if (groupKeys == null) {
            // No such TMR copy, so no allocation of it either: nothing to free.
            return reply(c.replyTo(), StatusReply.success(Done.getInstance()));
        }
        List<Outcome> refusal = new ArrayList<>(1);
        List<ContainerEvent> seen = certified(state, "FREE", c.connection(), c.certificate(), groupKeys, now,
                refuse -> refusal.add(refusal(c.replyTo(), refuse)));
        if (seen == null) {
            return refusal.get(0);
        }
        long leaseEpoch = certifiedEpoch(c.certificate());
        return decideCertified(state, seen, state.free(c.tmrHandleId(), now), c.replyTo(),
                freed -> Done.getInstance(), freed -> {
                    if (freed != null) {
                        tracking.allocationFreed(freed, c.connection().node(), leaseEpoch, now);
                    }
                });
    }

    /**
     * The lease epoch a certificate that passed {@link #certified} stands for: every grant names the same one (the
     * check refused mixed grants). Not the epoch an allocation carries, which is the one its handle was opened in
     * (a take-over re-allocates a handle with its old epoch).
     */
    private static long certifiedEpoch(LeaseCertificate certificate) {
        return certificate.grants().get(0).epoch();
    }

    private Outcome onPeerBorrow(ContainerState state, PeerBorrow c) {
        Instant now = clock.instant();
        if (pastDeadline(c.deadlineMillis(), now)) {
            return latePeerRequest("PEER_BORROW", c.connection(), c.deadlineMillis(), now, c.replyTo());
        }
        BorrowTicket asked = c.ticket();
        TmrAllocation held = state.allocation(c.tmrHandleId());
        List<String> groupKeys = state.tmrGroupKeys(c.key());
        if (groupKeys == null || held != null && !held.item().equals(c.key()) || asked.firmCode() != c.key().firmCode()
                || asked.productCode() != c.key().productCode()) {
            return reply(c.replyTo(), StatusReply.error(new CmFailure(CmError.ENTRY_NOT_FOUND, "no TMR copy "
                    + c.key() + " for this ticket and handle in container " + identity.serial())));
        }
        GroupKeyStatement statement = state.tmrGroupStatement(c.key());
        int place = statement == null ? -1 : statement.indexOf(Bytes.of(Ed25519.raw(identity.keys().getPublic())));
        if (place < 0 || !statement.members().get(place).serial().equals(identity.serial())) {
            // Refused before anything is journaled: no seat of this container becomes a borrow.
            return reply(c.replyTo(), StatusReply.error(new CmFailure(CmError.ACCESS_DENIED, "TMR copy " + c.key()
                    + " in container " + identity.serial() + (statement == null
                    ? " was issued without the vendor's statement of its group's keys (a license file of the older "
                    + "format), which a ticket of a TMR node must carry: borrowing needs the license issued anew"
                    : " has a group key statement that does not name this container and its key"))));
        }
        List<Outcome> refusal = new ArrayList<>(1);
        List<ContainerEvent> seen = certified(state, "PEER_BORROW", c.connection(), c.certificate(), groupKeys, now,
                refuse -> refusal.add(refusal(c.replyTo(), refuse)));
        if (seen == null) {
            return refusal.get(0);
        }
        Instant expiresAt = Instant.ofEpochMilli(asked.expiresAtMillis());
        return decideCertified(state, seen, state.borrowAllocation(c.tmrHandleId(), asked.ticketId(), asked.clientId(),
                        expiresAt, now, leaseSettings.clockSkew()), c.replyTo(),
                borrow -> asked.withSignature(new BorrowTicket.GroupSignature(new java.util.TreeMap<>(Map.of(place,
                        Bytes.of(Ed25519.sign(identity.keys().getPrivate(), asked.withSignature(Bytes.EMPTY)
                                .signedPayload())))), statement).encode()),
                borrow -> {
                    tracking.borrow(borrow.ticketId(), c.key(), borrow.clientId(), borrow.expiresAt(), now);
                    context.getLog().info("Container {}: TMR handle {} borrowed under ticket {} of {} for {} until {} ({})",
                            identity.serial(), Long.toUnsignedString(borrow.tmrHandleId()),
                            Long.toUnsignedString(borrow.ticketId()), asked.issuer(), borrow.clientId(),
                            borrow.expiresAt(), c.connection());
                });
    }

    private Outcome onUsageStart(ContainerState state, UsageStart c) {
        Instant now = clock.instant();
        if (pastDeadline(c.deadlineMillis(), now)) {
            return latePeerRequest("USAGE_START", c.connection(), c.deadlineMillis(), now, c.replyTo());
        }
        List<String> groupKeys = state.tmrGroupKeys(c.key());
        if (groupKeys == null) {
            return reply(c.replyTo(), StatusReply.error(new CmFailure(CmError.ENTRY_NOT_FOUND,
                    "no TMR copy " + c.key() + " in container " + identity.serial())));
        }
        List<Outcome> refusal = new ArrayList<>(1);
        List<ContainerEvent> seen = certified(state, "USAGE_START", c.connection(), c.certificate(), groupKeys, now,
                refuse -> refusal.add(refusal(c.replyTo(), refuse)));
        if (seen == null) {
            return refusal.get(0);
        }
        Instant startedAt = Instant.ofEpochMilli(c.startedAtMillis());
        return decideCertified(state, seen, state.usageStart(c.key(), startedAt, now.plus(leaseSettings.clockSkew())),
                c.replyTo(), moved -> Done.getInstance(), moved -> {
                    if (moved) {
                        context.getLog().info("Container {}: usage period of {} now counts from {}, the start "
                                + "the TMR copies agree on ({})", identity.serial(), c.key(), startedAt, c.connection());
                    }
                });
    }

    private Outcome onPeerCrypt(ContainerState state, PeerCrypt c) {
        Instant now = clock.instant();
        List<String> groupKeys = state.tmrGroupKeys(c.key());
        if (groupKeys == null) {
            return reply(c.replyTo(), StatusReply.error(new CmFailure(CmError.ENTRY_NOT_FOUND,
                    "no TMR copy " + c.key() + " in container " + identity.serial())));
        }
        List<Outcome> refusal = new ArrayList<>(1);
        List<ContainerEvent> seen = certified(state, "PEER_CRYPT", c.connection(), c.certificate(), groupKeys, now,
                refuse -> refusal.add(refusal(c.replyTo(), refuse)));
        if (seen == null) {
            return refusal.get(0);
        }
        StatusReply<Bytes> result = crypt(c.key(), state.spec(c.key()), c.direction(), c.encryptionCode(), c.data());
        seen.forEach(state::apply);
        return new Outcome(seen, NOTHING, () -> c.replyTo().tell(result));
    }

    private Outcome onPeerUnits(ContainerState state, PeerUnits c) {
        Instant now = clock.instant();
        List<String> groupKeys = state.tmrGroupKeys(c.key());
        if (groupKeys == null) {
            return reply(c.replyTo(), StatusReply.error(new CmFailure(CmError.ENTRY_NOT_FOUND,
                    "no TMR copy " + c.key() + " in container " + identity.serial())));
        }
        List<Outcome> refusal = new ArrayList<>(1);
        List<ContainerEvent> seen = certified(state, "PEER_UNITS", c.connection(), c.certificate(), groupKeys, now,
                refuse -> refusal.add(refusal(c.replyTo(), refuse)));
        if (seen == null) {
            return refusal.get(0);
        }
        return decideCertified(state, seen, state.peerUnits(c.key(), c.operationId(), c.operation(), c.value(), now),
                c.replyTo(), Function.identity(), remaining -> { });
    }

    private BorrowTicket ticket(Borrow borrow) {
        BorrowTicket unsigned = new BorrowTicket(borrow.ticketId(), borrow.item().firmCode(),
                borrow.item().productCode(), borrow.clientId(), borrow.expiresAt().toEpochMilli(), identity.serial(),
                Bytes.EMPTY);
        return unsigned.withSignature(Bytes.of(Ed25519.sign(identity.keys().getPrivate(), unsigned.signedPayload())));
    }

    private Outcome onImportLicense(ContainerState state, ImportLicense c) {
        Instant now = clock.instant();
        LicenseUpdate update;
        try {
            update = LicenseUpdateFile.verify(c.file().toArray(), vendorKeys);
        } catch (LicenseRefusedException e) {
            context.getLog().warn("Container {}: license update refused ({}): {}", identity.serial(),
                    e.error().code(), e.getMessage());
            return reply(c.replyTo(), StatusReply.error(new CmFailure(e.error(), e.getMessage())));
        }
        Decision<LicenseUpdate> decision = state.applyUpdate(update, now);
        if (decision instanceof Decision.Refuse<LicenseUpdate> refuse) {
            context.getLog().warn("Container {}: license update refused ({}): {}", identity.serial(),
                    refuse.error().code(), refuse.text());
        }
        return decide(state, decision, c.replyTo(), Function.identity(), applied -> {
            context.getLog().info("Container {}: license update for firm {} applied, firm update counter {}, {} item(s)",
                    identity.serial(), applied.firmCode(), applied.firmUpdateCounter(), applied.items().size());
            tracking.licenseImport(applied.firmCode(), applied.firmUpdateCounter(), applied.items().size(), now);
        });
    }

    private Effect<ContainerEvent, ContainerState> onCleanup(ContainerState state, Cleanup c) {
        Instant now = clock.instant();
        for (LeaseTable.Lease ended : leases.purge(now)) {
            context.getLog().info("Container {}: lease {} of {} at epoch {} ended: {}", identity.serial(),
                    ended.name(), ended.holder(), ended.epoch(),
                    ended.connection().isOpen() ? "not renewed within " + ended.ttl() : "its connection closed");
        }
        List<ContainerEvent> events = new ArrayList<>(state.expiredBorrows(now));
        List<TmrBorrow> tmrEnded = state.tmrBorrows().stream().filter(b -> !now.isBefore(b.expiresAt())).toList();
        events.addAll(state.expiredTmrBorrows(now));
        // Captured before applying: the state is mutable and will no longer hold them afterwards.
        List<Handle> idle = state.handles().stream()
                .filter(h -> !lastSeen.getOrDefault(h.owner().sessionId(), startedAt).plus(cleanupTimeout).isAfter(now))
                .toList();
        idle.forEach(h -> events.add(new HandleReclaimed(h.id(), now)));
        // A session silent this long has no handle left after this pass: forget it, or the map grows with
        // every session the server ever saw.
        lastSeen.values().removeIf(seen -> !seen.plus(cleanupTimeout).isAfter(now));
        if (events.isEmpty()) {
            return Effect().none();
        }
        events.forEach(state::apply);
        return Effect().persist(events).thenRun(after -> {
            for (Handle h : idle) {
                context.getLog().info("Container {}: handle {} of {}@{} reclaimed after {} without traffic",
                        identity.serial(), h.id(), h.owner().user(), h.owner().host(), cleanupTimeout);
                tracking.reclaim(h.id(), h.item(), now);
            }
            for (ContainerEvent event : events) {
                if (event instanceof BorrowEnded ended) {
                    tracking.borrowEnded(ended.ticketId(), false, now);
                }
            }
            for (TmrBorrow ended : tmrEnded) {
                context.getLog().info("Container {}: TMR borrow {} of handle {} expired at {}; its seat is free",
                        identity.serial(), Long.toUnsignedString(ended.ticketId()),
                        Long.toUnsignedString(ended.tmrHandleId()), ended.expiresAt());
                tracking.borrowEnded(ended.ticketId(), false, now);
            }
        });
    }

    private static boolean late(Instant deadline, Instant now) {
        return deadline != null && now.isAfter(deadline);
    }

    private Effect<ContainerEvent, ContainerState> onAbandoned(ContainerState state, Abandoned c) {
        Instant now = clock.instant();
        List<ContainerEvent> events = new ArrayList<>();
        List<Runnable> tracked = new ArrayList<>();
        if (c.handleId() != 0 && state.reclaim(c.handleId(), now) instanceof Decision.Accept<Handle> accept) {
            events.addAll(accept.events());
            tracked.add(() -> tracking.reclaim(c.handleId(), accept.reply().item(), now));
        }
        if (c.ticketId() != 0 && state.endBorrow(c.ticketId(), now) instanceof Decision.Accept<Borrow> accept) {
            events.addAll(accept.events());
            tracked.add(() -> tracking.borrowEnded(c.ticketId(), false, now));
        }
        if (events.isEmpty()) {
            return Effect().none();
        }
        events.forEach(state::apply);
        return Effect().persist(events).thenRun(after -> tracked.forEach(Runnable::run));
    }

    /**
     * An accepted decision's events are applied to the live state now, so the next request of the batch
     * sees them; its reply goes out once they are durable. A refusal's reply goes out with the batch's
     * replies, after its write: it may depend on an accepted request before it.
     */
    private <T, R> Outcome decide(ContainerState state, Decision<T> decision, ReplyTo<R> replyTo,
                                  Function<T, R> reply, Consumer<T> afterPersist) {
        if (decision instanceof Decision.Refuse<T> refuse) {
            return refusal(replyTo, refuse);
        }
        Decision.Accept<T> accept = (Decision.Accept<T>) decision;
        accept.events().forEach(state::apply);
        return new Outcome(accept.events(), () -> afterPersist.accept(accept.reply()),
                () -> replyTo.tell(StatusReply.success(reply.apply(accept.reply()))));
    }

    private static <R> Outcome reply(ReplyTo<R> replyTo, StatusReply<R> reply) {
        return new Outcome(List.of(), NOTHING, () -> replyTo.tell(reply));
    }

    private static <R> Outcome refusal(ReplyTo<R> replyTo, Decision.Refuse<?> refuse) {
        return reply(replyTo, StatusReply.error(new CmFailure(refuse.error(), refuse.text())));
    }

    /**
     * The resume token of a handle: an HMAC of its id under a key only this container has. A re-sent ACCESS
     * gets the token of the handle it opened, also after a restart, while the journal keeps only its digest.
     * (Handles opened before tokens were derived have random ones; a re-sent ACCESS never finds those.)
     */
    private byte[] resumeToken(long handleId) {
        return tokens.doFinal(java.nio.ByteBuffer.allocate(Long.BYTES).putLong(handleId).array());
    }

    private static javax.crypto.Mac tokenMac(ContainerIdentity identity) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update("opentmr backend resume tokens\n".getBytes(java.nio.charset.StandardCharsets.UTF_8));
            sha.update(identity.keys().getPrivate().getEncoded());
            javax.crypto.Mac mac = javax.crypto.Mac.getInstance("HmacSHA256");
            mac.init(new javax.crypto.spec.SecretKeySpec(sha.digest(), "HmacSHA256"));
            return mac;
        } catch (java.security.GeneralSecurityException e) {
            throw new IllegalStateException("no SHA-256 or HmacSHA256", e);
        }
    }

    /** SHA-256 of a resume token, hex: what the journal and the backends keep instead of the token. */
    public static String digest(byte[] token) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(token));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("no SHA-256", e);
        }
    }
}
