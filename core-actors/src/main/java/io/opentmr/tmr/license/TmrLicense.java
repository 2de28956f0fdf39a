package io.opentmr.tmr.license;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.AllocationDigests;
import io.opentmr.protocol.AllocationRequest;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LeaseCertificate;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.UnitsOperation;
import io.opentmr.server.ReplyBatch;
import io.opentmr.tmr.backend.PeerGroup;
import io.opentmr.tmr.tracking.NodeTrackingLog;
import io.opentmr.tmr.license.TmrLicenseEvent.SeatGranted;
import io.opentmr.tmr.license.TmrLicenseEvent.SeatReleased;
import java.time.Clock;
import java.time.Instant;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.BitSet;
import java.util.Collection;
import java.util.Deque;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import java.util.function.LongFunction;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.SupervisorStrategy;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.SnapshotAdapter;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One TMR license {@code (firm, product, TMR-Id)} on the node: it sequences the rules that need two of the
 * three copies. The rules themselves are plain classes: {@link SeatTable} (who holds which seat),
 * {@link SeatRequest} (an access under way and what its answers decide), {@link MajorityVote} (units and
 * crypt) and {@link CopySync} (which backends the license may use).
 *
 * <p>A seat is granted once two backends acknowledged its ALLOCATE, journaled before the client hears of
 * it; grants and releases that complete while the journal writes are written together next. A backend that
 * refused, timed out or answered after the decision with anything else is re-synced before it counts again.
 * The handles of the license (owner session, last activity) live beside the seats: a handle is rebuilt from
 * its seat, and one without traffic for the cleanup timeout is reclaimed. ACCESS is idempotent by the
 * request that opened the seat, RELEASE by the handle (a repeated one is OK).
 *
 * <p>Every grant, release, reclaim and refused ACCESS goes to the node's {@link NodeTrackingLog}, once the
 * grant or release is journaled; after a restart the license hands the tracking log its journaled events, so a
 * line the process had no time to write is written then.
 *
 * <p>Nothing is served without the lease certificate: the license answers {@link NotServing} and the
 * session tells the client to come back (NOT_ACTIVE). A failed journal write restarts the license from its
 * journal ({@link #create} supervises it); what was in flight is then re-synced away.
 */
public final class TmrLicense extends EventSourcedBehavior<TmrLicense.Command, TmrLicenseEvent, SeatTable> {

    private static final Logger LOG = LoggerFactory.getLogger(TmrLicense.class);
    private static final Logger INTEGRITY = LoggerFactory.getLogger("opentmr.integrity");

    public sealed interface Command {
    }

    /** Who asks for a seat: the client's address (what STATIONSHARE counts), host, user, process and session. */
    public record Client(String station, String host, String user, long pid, long sessionId) {
    }

    /** The copies that count now and the product item they agree on (null: none). From the quorum. */
    public record Copies(BitSet counted, ProductInfo agreed) implements Command {
    }

    /**
     * When two counted copies started the usage period (epoch ms), and the copies that started later or not
     * at all: they are told the agreed start (USAGE_START). From the quorum.
     */
    public record UsageStarted(long startedAtMillis, BitSet behind) implements Command {
    }

    /**
     * What one backend holds for this license, listed for its re-sync under the lease's {@code epoch}. In another
     * epoch (the lease lost and gained again since) the listing may miss what another node wrote or freed meanwhile:
     * the license does not re-sync from it and asks for a re-sync again.
     */
    public record Resync(int backend, List<Allocation> held, long epoch, Coverage coverage) implements Command {
        /** A complete listing. */
        public Resync(int backend, List<Allocation> held, long epoch) {
            this(backend, held, epoch, null);
        }
    }

    /**
     * Which ranges of the handle id space a listing holds, when it is not complete ({@link AllocationDigests}): the
     * backend's count and digest of each other range agreed with the node's seat tables, so there the backend holds
     * exactly the table's seats, and the listing left those ranges out. {@code expected}: this license's part of the
     * node's digests, taken from its seats as the container knew them; a license whose table no longer gives the same
     * in a range left out does not use the listing ({@link Parent#listWhole}).
     */
    public record Coverage(BitSet listed, AllocationDigests expected) {
        public Coverage {
            listed = (BitSet) listed.clone();
        }

        /** Whether the listing holds the range of {@code handleId}. */
        boolean lists(long handleId) {
            return listed.get(AllocationDigests.rangeOf(handleId, expected.ranges()));
        }
    }

    /**
     * The allocations each backend listed for this license when the node gained the lease, before their re-syncs:
     * a handle two or more backends hold alike that the journal does not know (granted by a node that acknowledged
     * it with its own log alone and died) is journaled again from the backends' ALLOCATE metadata, so the re-syncs
     * keep it and its client resumes it, instead of freeing it. A handle the journal released lately stays freed. A
     * seat of the journal that no listing holds is dropped instead of allocated again ({@link #staleAtTheGain}).
     * {@code listings}: one per backend listed completely, empty where it holds nothing of this license. {@code epoch}:
     * the lease's epoch at whose gain the backends were listed; in any other epoch the listings may miss what another
     * node wrote or freed meanwhile, and the rebuild is dropped (that gain sends its own). {@code fenced}: how many of
     * the listings were taken from a backend that had granted the node this epoch before it was listed, so refuses
     * every write of an older epoch: a listing carries no certificate, and a backend that has not granted the epoch
     * yet (the old active's lease there still runs) may carry out an ALLOCATE of the old active after it was listed.
     */
    public record Rebuild(long epoch, List<List<Allocation>> listings, int fenced, List<Coverage> coverages)
            implements Command {
        public Rebuild {
            listings = List.copyOf(listings);
            coverages = Collections.unmodifiableList(new ArrayList<>(coverages));
            if (coverages.size() != listings.size()) {
                throw new IllegalArgumentException(coverages.size() + " coverages for " + listings.size()
                        + " listings");
            }
        }

        /** Every listing complete. */
        public Rebuild(long epoch, List<List<Allocation>> listings, int fenced) {
            this(epoch, listings, fenced, Collections.nCopies(listings.size(), null));
        }
    }

    /**
     * Every backend is to be re-synced: the node (re)gained the lease, so others may have written meanwhile.
     * {@code round} counts the container's lease gains; the license reports its usable copies with the round of
     * the last of these it got, so a report sent before it is not taken for one after it.
     */
    public record ResyncAll(long round) implements Command {
    }

    /**
     * A client's ACCESS. A product may have several TMR licenses (several TMR-Ids): the virtual container sends the
     * request to the first of them and names the others in {@code next}, by TMR-Id. A license that cannot serve it
     * (no seat free, feature bits it lacks, fewer than two usable copies) passes it on to the next one instead of
     * refusing, with its refusal in {@code passed}; the last one refuses with the weightiest refusal of all
     * ({@link #weightier}), so a client hears 212 when every license is full.
     *
     * @param next   the licenses of the same product to try after this one, in TMR-Id order (empty: none)
     * @param passed what the licenses before this one refused, merged; null when this is the first
     */
    public record Access(long featureBits, AccessMode mode, Client client, long requestId,
                         ActorRef<Reply> replyTo, List<ActorRef<Command>> next, Refused passed) implements Command {
        public Access {
            next = List.copyOf(next);
        }

        /** An ACCESS for this license alone. */
        public Access(long featureBits, AccessMode mode, Client client, long requestId, ActorRef<Reply> replyTo) {
            this(featureBits, mode, client, requestId, replyTo, List.of(), null);
        }

        /** Whether no other license of the product is tried for it, or was. */
        boolean alone() {
            return next.isEmpty() && passed == null;
        }
    }

    /** A client's RELEASE, or the node's on its behalf ({@code reason}: why, as journaled and tracked). */
    public record Release(long handleId, long sessionId, String reason, ActorRef<Reply> replyTo) implements Command {
        /** The client's own RELEASE. */
        public Release(long handleId, long sessionId, ActorRef<Reply> replyTo) {
            this(handleId, sessionId, RELEASED, replyTo);
        }
    }

    public record Resume(long handleId, Bytes token, long sessionId, ActorRef<Reply> replyTo) implements Command {
    }

    /**
     * RESUME of several handles of this license for one session at once (a client's RESUME_MANY): answered by one
     * {@link ResumedMany}, an outcome per item in the items' order.
     */
    public record ResumeMany(List<HandleToken> items, long sessionId, ActorRef<Reply> replyTo) implements Command {
    }

    /** A handle and the resume token its client holds. */
    public record HandleToken(long handleId, Bytes token) {
    }

    public record DecrementUnits(long handleId, long sessionId, long operationId, long amount,
                                 ActorRef<Reply> replyTo) implements Command {
    }

    public record Crypt(long handleId, long sessionId, CryptDirection direction, long encryptionCode, Bytes data,
                        ActorRef<Reply> replyTo) implements Command {
    }

    public record GetInfo(long handleId, long sessionId, ActorRef<Reply> replyTo) implements Command {
    }

    /**
     * BORROW: the handle's seat becomes a borrow for {@code clientId} ({@code host/user}) and the handle ends.
     * Answered {@link BorrowGranted} once two backends or more signed the ticket and the borrow is journaled.
     *
     * @param issuer the virtual container's serial, named in the ticket
     */
    public record Borrow(long handleId, long sessionId, long durationSeconds, String clientId,
                         io.opentmr.protocol.Serial issuer, ActorRef<Reply> replyTo) implements Command {
    }

    /** RETURN of a borrow ticket (its id is the borrowed handle's) by {@code clientId}: the seat is freed early. */
    public record ReturnBorrow(long ticketId, String clientId, ActorRef<Reply> replyTo) implements Command {
    }

    /** The session is alive and uses these handles. */
    public record Touch(long sessionId, long[] handleIds) implements Command {
    }

    /** The seat a handle holds, if any (tests, tools). */
    public record SeatOf(long handleId, ActorRef<Optional<Seat>> replyTo) implements Command {
    }

    /** Every handle of the license now (management HTTP). */
    public record ListHandles(ActorRef<Handles> replyTo) implements Command {
    }

    /**
     * A handle as an operator sees it: its seat, and its life beside it.
     *
     * @param sessionId      the session using it now; 0 while no session of this node has used it since a restart
     * @param lastActivityMillis when its session was last heard of (the cleanup timeout counts from there)
     * @param releasing      a release of it is being journaled
     */
    public record HandleView(Seat seat, long sessionId, long lastActivityMillis, boolean releasing) {
    }

    public record Handles(LicenseKey key, List<HandleView> handles) {
    }

    /**
     * An operator releases a handle, whichever session holds it, or a borrowed seat (by its ticket id): its seat is
     * freed on the backends and the release journaled, as for the client's own RELEASE. Answered {@link Released},
     * {@link Refused} 106 for an unknown handle, {@link NotServing} without the lease.
     *
     * @param by who asked (for the log line)
     */
    public record ForceRelease(long handleId, String by, ActorRef<Reply> replyTo) implements Command {
    }

    /** What a license answers the session; the session turns it into the wire message. */
    public sealed interface Reply {
    }

    /**
     * @param alone whether the ACCESS was for this license alone (its product has no other license it could go
     *              to): only then may the session send the product's next ACCESS straight to this license
     */
    public record Granted(long handleId, Bytes token, ActorRef<Command> license, boolean alone) implements Reply {
        public Granted(long handleId, Bytes token, ActorRef<Command> license) {
            this(handleId, token, license, true);
        }
    }

    public record Resumed(ActorRef<Command> license) implements Reply {
    }

    /** The answer to {@link ResumeMany}: for each item, in order, {@link Resumed} or {@link Refused}. */
    public record ResumedMany(List<Reply> outcomes) implements Reply {
    }

    /** The signed ticket of a borrow. */
    public record BorrowGranted(io.opentmr.protocol.BorrowTicket ticket) implements Reply {
    }

    public enum Released implements Reply {
        INSTANCE
    }

    public record UnitsLeft(long remaining) implements Reply {
    }

    public record Crypted(Bytes data) implements Reply {
    }

    public record Described(long handleId, AccessMode mode, ProductInfo product) implements Reply {
    }

    public record Refused(int code, String text) implements Reply {
        public Refused(CmError error, String text) {
            this(error.code(), text);
        }
    }

    /** The node does not hold the lease: the client is told to come back (NOT_ACTIVE), nothing was done. */
    public record NotServing(String why) implements Reply {
    }

    /** What the license tells its virtual container. */
    public interface Parent {
        /** Seats in use, handles, and how many backends the license can use now (2 or more: it serves). */
        /**
         * {@code units}: the counter as the license decided it last (-1: not known now); {@code round}: of the last
         * {@link ResyncAll} the license got (0 before any).
         */
        void seatsChanged(LicenseKey key, long inUse, int handles, long units, int usable, long round);

        /** A handle of this license exists (granted, or recovered with the seat table). */
        void opened(LicenseKey key, Seat seat);

        /**
         * The handles a recovery found, all at once: one message for a table of any size instead of one per
         * handle on the take-over's path.
         */
        default void openedAll(LicenseKey key, Collection<Seat> seats) {
            seats.forEach(seat -> opened(key, seat));
        }

        void closed(LicenseKey key, long handleId);

        /** Run a re-sync of this backend (list its allocations and send {@link Resync}). */
        void needsResync(LicenseKey key, int backend);

        /**
         * A listing left out ranges ({@link Coverage}) where this license's table is no longer what the container
         * digested: the license did not run that re-sync of {@code backend}, and wants the backends listed whole.
         */
        default void listWhole(LicenseKey key, int backend) {
            throw new UnsupportedOperationException("listings by digest come from the virtual container only");
        }

        /** The license recovered its journal (also after a restart): send {@link Copies} again. */
        void recovered(LicenseKey key, ActorRef<Command> license);

        /** The copies disagreed (logged on {@code opentmr.integrity}): counted for the operators. */
        default void integrityWarning(LicenseKey key) {
        }

        /** A journal write of the license took this long (handed over to acknowledged). */
        default void journalWritten(long nanos) {
        }
    }

    private record Allocated(long handleId, int backend, BackendAnswer answer) implements Command {
    }

    private record Voted(long voteId, int backend, BackendAnswer answer) implements Command {
    }

    private record Freed(long handleId, int backend, BackendAnswer answer) implements Command {
    }

    private record BorrowAnswered(long handleId, int backend, Message reply, Throwable failure) implements Command {
    }

    /** The FREE of a backend's borrowed allocation, after the borrow was refused, was answered. */
    private record BorrowUndone(long handleId, int backend, BackendAnswer answer) implements Command {
    }

    /**
     * A borrow whose backends are signing: their signatures by backend and by place in the vendor's statement of
     * the group's keys (the first signer's; a backend that sends another is refused), refusals, and who waits.
     */
    private static final class PendingBorrow {
        final io.opentmr.protocol.BorrowTicket ticket;
        final BitSet asked;
        final java.util.TreeMap<Integer, Bytes> signatures = new java.util.TreeMap<>();
        final java.util.TreeMap<Integer, Bytes> byPlace = new java.util.TreeMap<>();
        /** Backends that borrowed the seat (they signed) or may have (no answer): undone if the borrow is refused. */
        final BitSet mayHaveBorrowed = new BitSet();
        io.opentmr.protocol.GroupKeyStatement statement;
        final List<BackendAnswer> refusals = new ArrayList<>();
        final List<ActorRef<Reply>> waiters = new ArrayList<>();
        boolean decided;
        /** The lease's epoch the backends were asked under: the ticket is given only while the node holds it still. */
        final long epoch;

        PendingBorrow(io.opentmr.protocol.BorrowTicket ticket, BitSet asked, ActorRef<Reply> replyTo, long epoch) {
            this.ticket = ticket;
            this.asked = asked;
            this.epoch = epoch;
            waiters.add(replyTo);
        }

        int answered() {
            return signatures.size() + refusals.size();
        }
    }

    /** Why a borrowed seat was released, as journaled. */
    static final String BORROW_RETURNED = "borrow returned";
    static final String BORROW_EXPIRED = "borrow expired";

    private record ResyncDone(int backend, long generation, String failure) implements Command {
    }

    /** A window of a re-sync's writes was answered, and more are to be sent. */
    private record ResyncWindowDone(int backend, long generation) implements Command {
    }

    /**
     * The writes of a re-sync under way: FREEs of stale allocations, then ALLOCATEs of missing seats (handle ids),
     * sent from {@code next} on.
     */
    private static final class ResyncRun {
        final long generation;
        /** The lease's epoch the listing was taken under: every window is sent under it, or the run ends. */
        final long epoch;
        final List<Long> frees;
        final List<Long> adds;
        int next;

        ResyncRun(long generation, long epoch, List<Long> frees, List<Long> adds) {
            this.generation = generation;
            this.epoch = epoch;
            this.frees = frees;
            this.adds = adds;
        }
    }

    /** A re-sync that found every re-sync slot of its backend in use tries again this much later. */
    static final Duration RESYNC_SLOT_WAIT = Duration.ofMillis(20);

    /**
     * The most writes of one re-sync in flight at once: well below a node connection's bound on requests in flight,
     * which a re-sync of a far-behind backend would otherwise exceed (the backend refuses the excess with 309).
     */
    static final int RESYNC_WINDOW = 256;

    /** The wait after the failed re-sync of this backend and generation is over: ask for the next one. */
    private record RetryResync(int backend, long generation) implements Command {
    }

    /** A deferred decrement, admitted when it arrived: it is carried out without asking for the handle again. */
    private record AdmittedDecrement(DecrementUnits request) implements Command {
    }

    private enum Flush implements Command {
        INSTANCE
    }

    private enum Sweep implements Command {
        INSTANCE
    }

    /** A twin's license journals its table as a {@link TmrLicenseEvent.Checkpoint} if one is due. */
    private enum WriteCheckpoint implements Command {
        INSTANCE
    }

    /** An access under way: its rule, its token, and everyone waiting for it (a re-sent ACCESS waits too). */
    private static final class Pending {
        final SeatRequest request;
        final byte[] token;
        final List<ActorRef<Reply>> waiting = new ArrayList<>(1);
        /** The ACCESS was for this license alone ({@link Access#alone}). */
        final boolean alone;
        /** The seat is in the journal (written beside the allocations, not after them). */
        boolean journaled;
        /** The client has its answer; the request stays only to hear the backends that have not answered. */
        boolean finished;

        Pending(SeatRequest request, byte[] token, ActorRef<Reply> replyTo, boolean alone) {
            this.request = request;
            this.token = token;
            this.waiting.add(replyTo);
            this.alone = alone;
        }
    }

    private enum VoteKind { DECREMENT, READ, CRYPT }

    private record OpenVote(MajorityVote vote, VoteKind kind, String what, ActorRef<Reply> replyTo) {
    }

    /** A handle recovered from the journal that no session of this node has used since. */
    private static final long UNBOUND = 0;

    /** A handle's life beside its seat: which session uses it and when it was last heard of. */
    private static final class Life {
        long sessionId;
        long lastActivity;
        /** The session a re-sent ACCESS moved the handle to ({@link #UNBOUND}: none, or another move since). */
        long resentTo = UNBOUND;

        Life(long sessionId, long lastActivity) {
            this.sessionId = sessionId;
            this.lastActivity = lastActivity;
        }
    }

    /**
     * A release to journal, and who waits for it (null for a reclaim). {@code refused}: the seat was journaled
     * with its allocations and the backends refused it; its waiters hear the refusal once the release is
     * journaled (the backends that acknowledged were told to free it already).
     */
    private record Releasing(long handleId, String reason, List<ActorRef<Reply>> waiters, Pending refused,
                             Reply refusal, BitSet freedOn) {
        Releasing(long handleId, String reason, ActorRef<Reply> replyTo, BitSet freedOn) {
            this(handleId, reason, replyTo == null ? new ArrayList<>() : new ArrayList<>(List.of(replyTo)), null, null,
                    freedOn);
        }
    }

    /** Why a seat was released, as journaled; the tracking log's event follows from it ({@link #trackedEvent}). */
    static final String RELEASED = "released by its client";
    static final String RECLAIMED = "reclaimed after ";
    static final String NOT_ALLOCATED = "not allocated: ";
    /** A journal's seat no backend holds at the lease's gain ({@link #staleAtTheGain}): no tracking line. */
    static final String NO_BACKEND_HOLDS_IT = NOT_ALLOCATED + "no backend holds it at the take-over";

    /**
     * The tracking event of a journaled release: {@code reclaim} for a reclaim, none for a seat the backends
     * refused (that access was a denial, told when it happened), {@code return} and {@code borrow-expired} (the
     * backend's names) for the end of a borrowed seat, {@code release} otherwise.
     */
    static String trackedEvent(String reason) {
        if (reason == null) {
            return "release";
        }
        if (reason.startsWith(NOT_ALLOCATED)) {
            return null;
        }
        if (reason.equals(BORROW_RETURNED)) {
            return "return";
        }
        if (reason.equals(BORROW_EXPIRED)) {
            return "borrow-expired";
        }
        return reason.startsWith(RECLAIMED) ? "reclaim" : "release";
    }

    private final ActorContext<Command> context;
    private final TimerScheduler<Command> timers;
    private final LicenseKey key;
    private final PeerGroup peers;
    private final Parent parent;
    private final Clock clock;
    private final Random random;
    private final LongFunction<byte[]> tokens;
    private final Settings settings;
    private final NodeTrackingLog tracking;
    /** The events this license is persisting now: any other its event handler sees is replayed from the journal. */
    private final Set<TmrLicenseEvent> persisting = Collections.newSetFromMap(new IdentityHashMap<>());
    /** The events replayed since the recovery began, for the tracking log; emptied when it completes. */
    private final List<TmrLicenseEvent> replayed = new ArrayList<>();
    /**
     * This recovery started from a snapshot, and no {@link TmrLicenseEvent.Checkpoint} was replayed after it. A
     * twin's snapshots are its own (a single node's, or its own as the active node); a twin's log that was ever cut
     * back to its twin's had them set aside first ({@code ReplicationFollower}), so a snapshot found stands for this
     * log's own history.
     */
    private boolean fromSnapshotWithoutCheckpoint;
    /** Events since the last {@link TmrLicenseEvent.Checkpoint} (replayed ones too). */
    private long sinceCheckpoint;
    private boolean checkpointAsked;
    /** For the recovery's log line: when this incarnation began ({@link System#nanoTime}), events it replayed. */
    private final long createdNanos = System.nanoTime();
    private long replayedCount;
    /** This recovery started from the standby's table ({@link WarmTable}). */
    private boolean fromWarmTable;

    /**
     * A license's seat table as a twin's standby keeps it current while its log copies the active's records
     * ({@code StandbyTables}), handed to the license's recovery as its snapshot when the node takes over, so that a
     * take-over replays no table: only the events after {@code sequenceNr}, usually none. The table is the fold of
     * the journal's events from a {@link TmrLicenseEvent.Checkpoint} (or from the first event) on, exactly what a
     * replay makes; it is the license's own from then on.
     *
     * @param sinceCheckpoint       events folded since the newest checkpoint (the next one is due by them)
     * @param sinceCheckpointEvents the grants and releases among those, for the tracking log's recovery
     */
    public record WarmTable(SeatTable table, long sinceCheckpoint, List<TmrLicenseEvent> sinceCheckpointEvents) {
    }

    /**
     * Timing and sizes of a license, from the node's settings.
     *
     * @param snapshotEvery a snapshot every this many events, older events deleted; 0: no snapshot, every event kept
     * @param checkpoints   a twin's: snapshots are not copied to the standby, so the table is journaled as a
     *                      {@link TmrLicenseEvent.Checkpoint} at least every {@link #checkpointEvery} events and
     *                      after a recovery from a snapshot with none after it, and events are deleted only below
     *                      the third-newest snapshot (the standby replays from the newest checkpoint above that)
     */
    public record Settings(Duration cleanupTimeout, int snapshotEvery, boolean checkpoints, int resyncWindow) {

        public Settings {
            if (resyncWindow < 1) {
                throw new IllegalArgumentException("resyncWindow must be at least 1, not " + resyncWindow);
            }
        }

        /** Re-syncs send {@link #RESYNC_WINDOW} writes at a time. */
        public Settings(Duration cleanupTimeout, int snapshotEvery, boolean checkpoints) {
            this(cleanupTimeout, snapshotEvery, checkpoints, RESYNC_WINDOW);
        }

        /** A single node's: snapshots, no checkpoints. */
        public Settings(Duration cleanupTimeout, int snapshotEvery) {
            this(cleanupTimeout, snapshotEvery, false);
        }

        /**
         * A checkpoint is due after this many events, for a table of {@code handles} handles: half
         * {@code snapshotEvery}, or as many events as the table has handles up to twice {@code snapshotEvery}, so
         * that a big table's checkpoints cost about one seat written per event instead of the whole table every
         * half {@code snapshotEvery} events (which made opening n handles cost n² / snapshotEvery seats written and
         * replicated, and the standby replay up to eight whole tables). Never more than twice {@code snapshotEvery}:
         * the events deleted at a snapshot end three times {@code snapshotEvery} behind the newest, so the newest
         * checkpoint always stays above them.
         */
        long checkpointEvery(long handles) {
            long half = Math.max(1, snapshotEvery / 2);
            return Math.max(half, Math.min(handles, 2L * snapshotEvery));
        }
    }

    private SeatTable table = new SeatTable();
    private final SeatTable pendingSeats = new SeatTable();
    private final Map<Long, Pending> pending = new HashMap<>();
    private final Map<Seat.RequestKey, Pending> pendingByRequest = new HashMap<>();
    /** Accesses under way whose seats are not journaled yet: the next flush writes them. */
    private final List<Pending> intents = new ArrayList<>();
    private final Map<Long, Releasing> releasing = new LinkedHashMap<>();
    private final Map<Long, Life> lives = new HashMap<>();
    private final CopySync sync;
    private final Map<Long, OpenVote> votes = new HashMap<>();
    private final Deque<DecrementUnits> deferredUnits = new ArrayDeque<>();
    private final Map<Integer, Resync> waitingResyncs = new LinkedHashMap<>();
    /** Of the last {@link ResyncAll}: sent with every report of the usable copies. */
    private long round;
    /** Re-syncs under way that set the unit counter, by backend and generation: decrements wait for them. */
    private final java.util.Set<List<Long>> unitSets = new java.util.HashSet<>();
    /** Re-syncs sending their writes, by backend. */
    private final Map<Integer, ResyncRun> resyncRuns = new HashMap<>();
    private int unitVotesOpen;
    private boolean readingUnits;
    private ProductInfo agreed;
    /** A rebuild told before the copies agreed on the quantity: carried out once they do ({@link #onCopies}). */
    private Rebuild rebuildDue;
    /**
     * The handles the gain's rebuild added, sorted: from listings of other backends, so they may lie in a range a
     * backend's listing by ranges left out (listed whole elsewhere), where that backend does not hold them.
     */
    private long[] rebuiltAtGain = new long[0];
    /** The last coverage the table was found to match ({@link #coverageHolds}), the table and its changes then. */
    private Coverage checkedCoverage;
    private SeatTable checkedTable;
    private long checkedChanges;
    /** When two copies started the usage period (epoch ms), 0 while they have not; see {@link UsageStarted}. */
    private long usageStartedAt;
    /** The node's unit count: from the last decided vote or fresh read; -1 while unknown. */
    private long units = -1;
    private long nextVote;
    private boolean flushQueued;
    /** Borrows whose tickets the backends are signing, by handle. */
    private final Map<Long, PendingBorrow> borrowing = new HashMap<>();

    /**
     * A supervised license: a failed journal write restarts it from its journal (with backoff), after which
     * it tells its parent it recovered and re-syncs every backend.
     *
     * @param tokens the resume token of a handle id (derived, so that a re-sent ACCESS gets the same one)
     */
    public static Behavior<Command> create(LicenseKey key, PeerGroup peers, Parent parent, Clock clock,
                                           Random random, LongFunction<byte[]> tokens, Settings settings) {
        return create(key, peers, parent, clock, random, tokens, settings, NodeTrackingLog.none());
    }

    /** As {@link #create(LicenseKey, PeerGroup, Parent, Clock, Random, LongFunction, Settings)}, tracked. */
    public static Behavior<Command> create(LicenseKey key, PeerGroup peers, Parent parent, Clock clock,
                                           Random random, LongFunction<byte[]> tokens, Settings settings,
                                           NodeTrackingLog tracking) {
        return Behaviors.supervise(Behaviors.<Command>setup(context -> Behaviors.withTimers(timers ->
                        new TmrLicense(context, timers, key, peers, parent, clock, random, tokens, settings,
                                tracking))))
                .onFailure(SupervisorStrategy.restartWithBackoff(Duration.ofMillis(200), Duration.ofSeconds(5), 0.2));
    }

    /** Persistence ids of TMR licenses start with this: {@code tmr-license|FIRM-PRODUCT-TMRID}. */
    public static final String PERSISTENCE_ID_PREFIX = "tmr-license|";

    public static PersistenceId persistenceId(LicenseKey key) {
        return PersistenceId.of("tmr-license", key.firmCode() + "-" + key.productCode() + "-" + key.tmrId(), "|");
    }

    /** The key of the license whose persistence id this is ({@link #persistenceId}), if it is one. */
    public static Optional<LicenseKey> keyOf(String persistenceId) {
        if (!persistenceId.startsWith(PERSISTENCE_ID_PREFIX)) {
            return Optional.empty();
        }
        String[] parts = persistenceId.substring(PERSISTENCE_ID_PREFIX.length()).split("-", -1);
        if (parts.length != 3) {
            return Optional.empty();
        }
        try {
            LicenseKey key = new LicenseKey(Long.parseLong(parts[0]), Long.parseLong(parts[1]),
                    Long.parseLong(parts[2]));
            return persistenceId(key).id().equals(persistenceId) ? Optional.of(key) : Optional.empty();
        } catch (IllegalArgumentException e) {
            return Optional.empty();
        }
    }

    private TmrLicense(ActorContext<Command> context, TimerScheduler<Command> timers, LicenseKey key, PeerGroup peers,
                       Parent parent, Clock clock, Random random, LongFunction<byte[]> tokens, Settings settings,
                       NodeTrackingLog tracking) {
        // A failed journal write restarts the license from its journal, with backoff; see onRecovered.
        super(persistenceId(key), SupervisorStrategy.restartWithBackoff(Duration.ofMillis(200), Duration.ofSeconds(5),
                0.2));
        this.context = context;
        this.timers = timers;
        this.key = key;
        this.peers = peers;
        this.parent = parent;
        this.clock = clock;
        this.random = random;
        this.tokens = tokens;
        this.settings = settings;
        this.tracking = tracking;
        this.sync = new CopySync(peers.size());
    }

    /**
     * Pekko keeps the empty state it got here and starts every recovery from it, also the one after a restart;
     * the seat table is mutable, so the empty one is never changed: the first event makes a table of its own.
     */
    @Override
    public SeatTable emptyState() {
        return SeatTable.EMPTY;
    }

    @Override
    public RetentionCriteria retentionCriteria() {
        if (settings.snapshotEvery() <= 0) {
            return RetentionCriteria.disabled();
        }
        // A twin deletes below its third-newest snapshot: 3 × snapshotEvery events back. A write that brings the
        // events since the last checkpoint to checkpointEvery (at most 2 × snapshotEvery) ends with one (onFlush), so
        // after every write, and at every snapshot, the newest checkpoint is less than that behind: above the deleted events, and written
        // before the deletion the snapshot starts.
        return RetentionCriteria.snapshotEvery(settings.snapshotEvery(), settings.checkpoints() ? 3 : 2)
                .withDeleteEventsOnSnapshot();
    }

    @Override
    public SnapshotAdapter<SeatTable> snapshotAdapter() {
        return new SnapshotAdapter<>() {
            @Override
            public Object toJournal(SeatTable state) {
                return state.toSnapshot();
            }

            @Override
            public SeatTable fromJournal(Object from) {
                // Only recovery loads a snapshot.
                if (from instanceof WarmTable warm) {
                    // The standby's table, folded from the journal's own events since a checkpoint (or the first):
                    // what replaying them makes, no snapshot of this node's in it.
                    fromSnapshotWithoutCheckpoint = false;
                    sinceCheckpoint = warm.sinceCheckpoint();
                    replayed.addAll(warm.sinceCheckpointEvents());
                    fromWarmTable = true;
                    return warm.table();
                }
                fromSnapshotWithoutCheckpoint = true;
                fromWarmTable = false;
                return SeatTable.fromSnapshot((TmrLicenseEvent.Snapshot) from);
            }
        };
    }

    /** {@link SeatTable#apply}, which {@code tmr journal replay} applies too. */
    @Override
    public EventHandler<SeatTable, TmrLicenseEvent> eventHandler() {
        return newEventHandlerBuilder().forAnyState().onAnyEvent((state, event) -> {
            replayedOrLive(event);
            if (event instanceof TmrLicenseEvent.Checkpoint) {
                fromSnapshotWithoutCheckpoint = false;
                sinceCheckpoint = 0;
            } else {
                sinceCheckpoint++;
            }
            return SeatTable.apply(state, event);
        });
    }

    private void replayedOrLive(TmrLicenseEvent event) {
        if (!persisting.remove(event)) {
            replayedCount++;
            replayed.add(event);
        }
    }

    /**
     * Hands the tracking log what the journal holds: every seat held (its access) and the releases replayed since
     * the last snapshot. The log writes those its files lack.
     */
    private void trackRecovered(SeatTable state) {
        NodeTrackingLog.Recovery recovery = tracking.recovery(key);
        Map<Long, Seat> granted = new HashMap<>();
        Set<Long> refused = new java.util.HashSet<>();
        for (TmrLicenseEvent event : replayed) {
            if (event instanceof SeatGranted g) {
                granted.put(g.seat().handleId(), g.seat());
            } else if (event instanceof SeatReleased r) {
                String tracked = trackedEvent(r.reason());
                Seat seat = granted.get(r.handleId());
                if (tracked == null) {
                    refused.add(r.handleId());
                } else {
                    if (seat != null) {
                        recovery.access(seat.handleId(), seat.mode(), owner(seat), seat.grantedAtMillis());
                    }
                    recovery.ended(r.handleId(), tracked, r.reason(), seat == null ? null : owner(seat), r.atMillis());
                }
            }
        }
        replayed.clear();
        for (Seat seat : state.all()) {
            if (!refused.contains(seat.handleId())) {
                recovery.access(seat.handleId(), seat.mode(), owner(seat), seat.grantedAtMillis());
            }
        }
        recovery.submit();
    }

    static NodeTrackingLog.Owner owner(Seat seat) {
        return new NodeTrackingLog.Owner(seat.station(), seat.host(), seat.user(), seat.pid(), seat.sessionId());
    }

    private static NodeTrackingLog.Owner owner(Client client) {
        return new NodeTrackingLog.Owner(client.station(), client.host(), client.user(), client.pid(),
                client.sessionId());
    }

    private void trackDenial(Client client, int code, String text) {
        tracking.denial(key, key.firmCode(), key.productCode(), code, text, "ACCESS " + key.firmCode() + ":"
                + key.productCode(), owner(client), clock.millis());
    }

    @Override
    public SignalHandler<SeatTable> signalHandler() {
        return newSignalHandlerBuilder()
                .onSignal(RecoveryCompleted.instance(), state -> {
                    forgetInFlight();
                    table = SeatTable.writable(state);
                    trackRecovered(state);
                    long now = clock.millis();
                    for (Seat seat : state.all()) {
                        // Sessions that held it before a restart of this license still do: the first one
                        // that uses it binds it again (a restarted node has new sessions, which RESUME).
                        // A borrowed seat has no handle: its ticket holds it, and no cleanup reclaims it.
                        if (state.borrowed(seat.handleId()) == null) {
                            lives.put(seat.handleId(), new Life(UNBOUND, now));
                        }
                    }
                    parent.openedAll(key, List.copyOf(state.all()));
                    LOG.info("TMR license {} ready: {} handle(s), recovered in {} ms ({} event(s) replayed{})", key,
                            state.handles(), (System.nanoTime() - createdNanos) / 1_000_000, replayedCount,
                            fromWarmTable ? " after the standby's warm table" : "");
                    timers.startTimerWithFixedDelay(Sweep.INSTANCE, sweepEvery());
                    publishSeats();
                    parent.recovered(key, context.getSelf());
                    // A twin on a single node's data, or on its own snapshot without a checkpoint after it: its standby
                    // gets the journal's events only, and those before the snapshot are deleted.
                    askCheckpointIfDue();
                })
                .build();
    }

    /**
     * After a restart (a failed journal write) nothing in flight is known any more: accesses under way are
     * forgotten (their clients time out and retry by request id, and their allocations are freed by the
     * re-syncs that follow), votes are dropped, and every backend is re-synced before it counts again.
     * Answers of calls made before the restart find no request and change nothing.
     */
    private void forgetInFlight() {
        persisting.clear();
        pendingSeats.clear();
        pending.clear();
        pendingByRequest.clear();
        intents.clear();
        releasing.clear();
        lives.clear();
        votes.clear();
        deferredUnits.clear();
        waitingResyncs.clear();
        unitSets.clear();
        resyncRuns.clear();
        unitVotesOpen = 0;
        borrowing.values().forEach(b -> b.waiters.forEach(w -> w.tell(new NotServing(
                "the license restarted while the borrow was being signed; send BORROW again"))));
        borrowing.clear();
        readingUnits = false;
        units = -1;
        flushQueued = false;
        // A WriteCheckpoint asked for before the restart may have been dropped with the stash: ask again if due.
        checkpointAsked = false;
        sync.forget();
    }

    private Duration sweepEvery() {
        Duration quarter = settings.cleanupTimeout().dividedBy(4);
        return quarter.compareTo(Duration.ofSeconds(1)) < 0 ? Duration.ofSeconds(1) : quarter;
    }

    @Override
    public CommandHandler<Command, TmrLicenseEvent, SeatTable> commandHandler() {
        return newCommandHandlerBuilder().forAnyState()
                .onCommand(Copies.class, this::onCopies)
                .onCommand(UsageStarted.class, this::onUsageStarted)
                .onCommand(Resync.class, this::onResync)
                .onCommand(Rebuild.class, this::onRebuild)
                .onCommand(ResyncAll.class, this::onResyncAll)
                .onCommand(ResyncDone.class, this::onResyncDone)
                .onCommand(ResyncWindowDone.class, this::onResyncWindowDone)
                .onCommand(RetryResync.class, retry -> {
                    if (sync.retryDue(retry.backend(), retry.generation())) {
                        parent.needsResync(key, retry.backend());
                    }
                    return Effect().none();
                })
                .onCommand(Access.class, this::onAccess)
                .onCommand(Allocated.class, this::onAllocated)
                .onCommand(Flush.class, flush -> onFlush())
                .onCommand(Release.class, this::onRelease)
                .onCommand(Freed.class, this::onFreed)
                .onCommand(Resume.class, this::onResume)
                .onCommand(ResumeMany.class, this::onResumeMany)
                .onCommand(Touch.class, this::onTouch)
                .onCommand(Borrow.class, this::onBorrow)
                .onCommand(BorrowAnswered.class, this::onBorrowAnswered)
                .onCommand(BorrowUndone.class, this::onBorrowUndone)
                .onCommand(ReturnBorrow.class, this::onReturnBorrow)
                .onCommand(Sweep.class, sweep -> onSweep())
                .onCommand(WriteCheckpoint.class, write -> onWriteCheckpoint())
                .onCommand(DecrementUnits.class, this::onUnits)
                .onCommand(AdmittedDecrement.class, admitted -> decrement(admitted.request()))
                .onCommand(Crypt.class, this::onCrypt)
                .onCommand(Voted.class, this::onVoted)
                .onCommand(GetInfo.class, this::onInfo)
                .onCommand(SeatOf.class, seatOf -> {
                    seatOf.replyTo().tell(table.get(seatOf.handleId()));
                    return Effect().none();
                })
                .onCommand(ListHandles.class, list -> {
                    List<HandleView> views = new ArrayList<>(table.handles());
                    for (Seat seat : table.all()) {
                        Life life = lives.get(seat.handleId());
                        views.add(new HandleView(seat, life == null ? UNBOUND : life.sessionId,
                                life == null ? seat.grantedAtMillis() : life.lastActivity,
                                releasing.containsKey(seat.handleId())));
                    }
                    list.replyTo().tell(new Handles(key, views));
                    return Effect().none();
                })
                .onCommand(ForceRelease.class, this::onForceRelease)
                .build();
    }

    private String name() {
        return "TMR license " + key;
    }

    /** The integrity log, each warning on it also counted for the operators. */
    private Logger integrity() {
        parent.integrityWarning(key);
        return INTEGRITY;
    }

    // --- copies and re-sync -------------------------------------------------------------------------

    private Effect<TmrLicenseEvent, SeatTable> onCopies(Copies copies) {
        BitSet lost = sync.counted();
        lost.andNot(copies.counted());
        agreed = copies.agreed();
        if (agreed != null && rebuildDue != null) {
            // Before the re-syncs asked for below, which would free what it rebuilds (dropped there if the lease's
            // epoch moved meanwhile).
            context.getSelf().tell(rebuildDue);
            rebuildDue = null;
        }
        BitSet needs = sync.counted(copies.counted());
        if (!lost.isEmpty()) {
            LOG.info("{}: copies on backend(s) {} no longer count; {} usable", name(), indices(lost),
                    indices(sync.usable()));
        }
        askResyncs(needs);
        publishSeats();
        return Effect().none();
    }

    private Effect<TmrLicenseEvent, SeatTable> onUsageStarted(UsageStarted started) {
        usageStartedAt = started.startedAtMillis();
        BitSet behind = started.behind();
        if (!peers.holdsLease()) {
            // Told again by the quorum once the copies change; a node without the lease cannot write.
            return Effect().none();
        }
        for (int b = behind.nextSetBit(0); b >= 0; b = behind.nextSetBit(b + 1)) {
            int backend = b;
            LOG.info("{}: backend {} is told the usage period started at {}, as two copies agree", name(), backend + 1,
                    Instant.ofEpochMilli(started.startedAtMillis()));
            peers.call(backend, certificate -> new Message.UsageStart(certificate, key, started.startedAtMillis(),
                    peers.deadline())).whenComplete((reply, failure) -> {
                        if (failure != null || reply instanceof Message.Error) {
                            LOG.warn("{}: backend {} did not take the agreed usage period start: {}", name(), backend + 1,
                                    failure != null ? failure.toString() : reply);
                        }
                    });
        }
        return Effect().none();
    }

    private Effect<TmrLicenseEvent, SeatTable> onRebuild(Rebuild rebuild) {
        if (!peers.holdsLease() || peers.epoch() != rebuild.epoch()) {
            return Effect().none();
        }
        // The table against the listings as sorted id arrays: at a take-over with 100 000 handles this runs before
        // the JIT has compiled it, and per-handle map lookups cost it most of a second.
        // What to rebuild comes from the listed allocations alone: the ranges a listing left out held exactly the
        // seats there, none lacking. Whether the left-out seats count as held (for dropping the seats no backend
        // holds) needs the table still to be what they were compared with; if not, nothing is dropped.
        boolean leftOutHeld = true;
        for (Coverage coverage : rebuild.coverages()) {
            leftOutHeld &= coverageHolds(coverage);
        }
        long[] tableIds = tableIds();
        boolean[] listedAnywhere = new boolean[tableIds.length];
        boolean lacking = false;
        for (int i = 0; i < rebuild.listings().size(); i++) {
            lacking |= markListed(tableIds, handleIds(rebuild.listings().get(i), true), listedAnywhere);
            if (leftOutHeld) {
                markLeftOut(tableIds, rebuild.coverages().get(i), listedAnywhere);
            }
        }
        // Counted without their requests: a backend older than them lists none (docs/protocol.md, LIST_ALLOCATIONS).
        Map<Allocation, Integer> holders = new HashMap<>();
        Map<Long, AllocationRequest> requests = new HashMap<>();
        for (List<Allocation> listing : lacking ? rebuild.listings() : List.<List<Allocation>>of()) {
            for (Allocation allocation : listing) {
                long handleId = allocation.tmrHandleId();
                if (allocation.key().equals(key) && !table.holds(handleId) && !table.releasedLately(handleId)
                        && !pending.containsKey(handleId) && !releasing.containsKey(handleId)) {
                    holders.merge(allocation.withRequest(null), 1, Integer::sum);
                    if (allocation.request() != null) {
                        requests.putIfAbsent(handleId, allocation.request());
                    }
                }
            }
        }
        if (agreed == null) {
            // The quantity is not known yet: rebuilt once the copies agree on it.
            rebuildDue = rebuild;
            return Effect().none();
        }
        long now = clock.millis();
        List<Seat> stale = leftOutHeld ? staleAtTheGain(rebuild, tableIds, listedAnywhere) : List.of();
        Map<Long, Seat> rebuilt = new LinkedHashMap<>();
        List<Allocation> heldByTwo = holders.entrySet().stream().filter(e -> e.getValue() >= 2).map(Map.Entry::getKey)
                .sorted(java.util.Comparator.comparingLong(Allocation::tmrHandleId)).toList();
        if (!heldByTwo.isEmpty()) {
            // Within the quantity only, in the order of the handles, after the journal's seats that a backend still
            // holds (the old active may have freed a seat on the backends and granted it again, journaling both with
            // its own log alone: the seat it freed is stale, dropped above), so a rebuild never counts more seats
            // than the license has; the re-syncs free the handles left out. The table is copied only then: with
            // 100 000 seats the copy is a good part of a take-over's CPU.
            SeatTable after = SeatTable.fromSnapshot(table.toSnapshot());
            stale.forEach(seat -> SeatTable.apply(after, new SeatReleased(seat.handleId(), NO_BACKEND_HOLDS_IT, now)));
            for (Allocation allocation : heldByTwo) {
                Seat seat = rebuiltSeat(allocation.withRequest(requests.get(allocation.tmrHandleId())), now);
                if (!rebuilt.containsKey(seat.handleId()) && after.admit(seat.mode(), seat.station(),
                        agreed.quantity(), name(), pendingSeats).isEmpty()) {
                    after.add(seat);
                    rebuilt.put(seat.handleId(), seat);
                }
            }
        }
        long[] rebuiltNow = rebuilt.keySet().stream().mapToLong(Long::longValue).sorted().toArray();
        if (!Arrays.equals(rebuiltNow, rebuiltAtGain)) {
            rebuiltAtGain = rebuiltNow;
            checkedCoverage = null;
        }
        if (rebuilt.size() < heldByTwo.size()) {
            integrity().warn("{}: handle(s) two or more backends hold that the journal lacks exceed the quantity "
                    + "{}: only {} rebuilt, the others are freed", name(), agreed.quantity(), rebuilt.size());
        }
        if (rebuilt.isEmpty() && stale.isEmpty()) {
            return Effect().none();
        }
        List<TmrLicenseEvent> events = new ArrayList<>(stale.size() + rebuilt.size() + 1);
        stale.forEach(seat -> events.add(new SeatReleased(seat.handleId(), NO_BACKEND_HOLDS_IT, now)));
        rebuilt.values().forEach(seat -> events.add(new SeatGranted(seat, now)));
        return persistTimed(events, now, state -> {
            for (Seat seat : stale) {
                lives.remove(seat.handleId());
                parent.closed(key, seat.handleId());
            }
            if (!stale.isEmpty()) {
                LOG.warn("{}: {} seat(s) of the journal that no backend holds at the take-over were dropped (released, "
                        + "or never granted, by a node that journaled alone): {}", name(), stale.size(),
                        stale.stream().map(seat -> Long.toUnsignedString(seat.handleId())).toList());
            }
            if (rebuilt.isEmpty()) {
                publishSeats();
                return;
            }
            for (Seat seat : rebuilt.values()) {
                lives.put(seat.handleId(), new Life(UNBOUND, now));
                tracking.access(key, seat.handleId(), seat.mode(), owner(seat), null, now);
            }
            parent.openedAll(key, List.copyOf(rebuilt.values()));
            LOG.warn("{}: {} handle(s) two or more backends hold were not in the journal (granted by a node that "
                    + "acknowledged them alone): rebuilt from the backends' allocations", name(), rebuilt.size());
            publishSeats();
        });
    }

    /**
     * The journal's seats that no backend holds at the lease's gain, which are dropped rather than allocated again:
     * with two or more complete listings of backends that had fenced the older epochs when they were listed
     * ({@link Rebuild#fenced}) a seat that was granted (allocated on two backends of three, by the old active before
     * its epoch was fenced there) is on at least one of them, so a seat none lists was released on the backends by a
     * node that journaled the release with its own log alone, or never granted (the node died before its ALLOCATEs
     * arrived; its client sends the ACCESS again). A listing of a backend that had not fenced them may precede the
     * old active's ALLOCATE there, whose OK with another backend's acknowledged the seat: it does not count. Only
     * while no backend was re-synced since the gain (the license has not served in this epoch: every seat it knows
     * was there when the listings were taken) and not for seats being allocated or released now.
     */
    private List<Seat> staleAtTheGain(Rebuild rebuild, long[] tableIds, boolean[] listedAnywhere) {
        if (rebuild.fenced() < 2 || !sync.usable().isEmpty()) {
            return List.of();
        }
        List<Seat> stale = new ArrayList<>();
        for (int i = 0; i < tableIds.length; i++) {
            long handleId = tableIds[i];
            if (!listedAnywhere[i] && !pending.containsKey(handleId) && !releasing.containsKey(handleId)) {
                stale.add(table.get(handleId).orElseThrow());
            }
        }
        return stale;
    }

    /**
     * A seat as the backends' ALLOCATE describes it, naming the request that opened it when the backends listed it: a
     * re-sent ACCESS of the client that never got the answer then gets this handle. Without a request (a backend older
     * than them, an allocation of a node before them) the seat names none, as a seat journaled before requests were
     * kept, and a re-sent ACCESS gets a second handle while this one waits for {@code cleanup-timeout}.
     */
    private static Seat rebuiltSeat(Allocation allocation, long now) {
        HandleOwner owner = allocation.owner();
        AllocationRequest request = allocation.request();
        return new Seat(allocation.tmrHandleId(), allocation.accessMode(), allocation.featureBits(), owner.host(),
                owner.user(), owner.pid(), owner.sessionId(),
                Base64.getEncoder().encodeToString(allocation.tokenDigest().toArray()), allocation.epoch(), now,
                request == null ? null : request.host(), request == null ? 0 : request.requestId());
    }

    private Effect<TmrLicenseEvent, SeatTable> onResyncAll(ResyncAll all) {
        round = all.round();
        if (rebuiltAtGain.length > 0) {
            rebuiltAtGain = new long[0];
            checkedCoverage = null;
        }
        // Re-syncs waiting for the unit counter were listed before this gain: every backend is listed again.
        waitingResyncs.clear();
        LOG.info("{}: every backend is re-synced before it counts again", name());
        // The node served nobody while it had no lease: clients could not show they are alive meanwhile.
        long now = clock.millis();
        lives.values().forEach(life -> life.lastActivity = now);
        askResyncs(sync.reset());
        units = -1;
        publishSeats();
        return Effect().none();
    }

    private void askResyncs(BitSet backends) {
        for (int b = backends.nextSetBit(0); b >= 0; b = backends.nextSetBit(b + 1)) {
            parent.needsResync(key, b);
        }
    }

    private boolean hasUnits() {
        return agreed != null && agreed.hasUnitCounter();
    }

    private Effect<TmrLicenseEvent, SeatTable> onResync(Resync resync) {
        int backend = resync.backend();
        if (!sync.mayBegin(backend)) {
            sync.notBegun(backend);
            return Effect().none();
        }
        if (!peers.holdsLease() || peers.epoch() != resync.epoch()) {
            // Every write of a re-sync needs the lease certificate, and its listing must be of the epoch held now:
            // the container lists again.
            sync.notBegun(backend);
            parent.needsResync(key, backend);
            return Effect().none();
        }
        if (hasUnits() && (units < 0 || unitVotesOpen > 0 || readingUnits)) {
            // The counter is set only from a value the node knows now, and never while a vote or a read may still
            // move it.
            waitingResyncs.put(backend, resync);
            if (units < 0 && !readingUnits) {
                readUnits();
            }
            return Effect().none();
        }
        runResync(resync);
        return Effect().none();
    }

    private void runResync(Resync resync) {
        int backend = resync.backend();
        if (!coverageHolds(resync.coverage())) {
            sync.notBegun(backend);
            parent.listWhole(key, backend);
            return;
        }
        // A rebuild still waiting for the quantity comes too late once a re-sync may have freed what it holds.
        rebuildDue = null;
        boolean wasUsable = sync.usable().get(backend);
        long generation = sync.begin(backend);
        if (wasUsable) {
            // Not counted while it is re-synced: the container's view of the usable copies follows.
            publishSeats();
        }
        long[] heldIds = handleIds(resync.held(), false);
        List<Long> frees = new ArrayList<>();
        for (Allocation allocation : resync.held()) {
            long handleId = allocation.tmrHandleId();
            if (staleOnBackend(handleId)) {
                frees.add(handleId);
            }
        }
        List<Long> adds = new ArrayList<>();
        long[] tableIds = tableIds();
        boolean[] held = new boolean[tableIds.length];
        markListed(tableIds, heldIds, held);
        markLeftOut(tableIds, resync.coverage(), held);
        for (int i = 0; i < tableIds.length; i++) {
            // A seat being released was freed already; allocating it again would leave it behind.
            if (!held[i] && !releasing.containsKey(tableIds[i])) {
                adds.add(tableIds[i]);
            }
        }
        // Accesses under way that were sent before this backend got seat writes: their seats are added here, so
        // the backend does not end the re-sync without a seat granted meanwhile (a refused one is freed on every
        // write target, this backend included).
        for (Pending under : pending.values()) {
            Seat seat = under.request.seat();
            if (!under.finished && !under.request.asked().get(backend) && !listedIn(heldIds, seat.handleId())
                    && table.get(seat.handleId()).isEmpty()) {
                adds.add(seat.handleId());
            }
        }
        boolean setsUnits = hasUnits() && units >= 0;
        LOG.info("{}: re-syncing backend {}: {} stale allocation(s) to free, {} missing to add{}", name(),
                backend + 1, frees.size(), adds.size(), setsUnits ? ", units set to " + units : "");
        List<CompletionStage<Message>> first = new ArrayList<>();
        if (setsUnits) {
            long value = units;
            long operationId = random.nextLong();
            unitSets.add(List.of((long) backend, generation));
            first.add(peers.call(backend, certificate -> new Message.PeerUnits(certificate, key, operationId,
                    UnitsOperation.SET, value)));
        }
        ResyncRun run = new ResyncRun(generation, resync.epoch(), frees, adds);
        resyncRuns.put(backend, run);
        sendResyncWindow(backend, run, first);
    }

    /**
     * The handle ids of {@code allocations} (of this license only, if {@code ofThisLicense}), sorted, for
     * {@link #markListed} and {@link #listedIn}: a take-over compares listings of 100 000 allocations and more with the table, and sets of
     * boxed ids cost it a good part of a second of CPU.
     */
    private long[] handleIds(List<Allocation> allocations, boolean ofThisLicense) {
        long[] ids = new long[allocations.size()];
        int n = 0;
        for (Allocation allocation : allocations) {
            if (!ofThisLicense || allocation.key().equals(key)) {
                ids[n++] = allocation.tmrHandleId();
            }
        }
        long[] listed = n == ids.length ? ids : Arrays.copyOf(ids, n);
        Arrays.sort(listed);
        return listed;
    }

    /** The handle ids of the table's seats, sorted. */
    private long[] tableIds() {
        long[] ids = new long[table.handles()];
        int n = 0;
        for (Seat seat : table.all()) {
            ids[n++] = seat.handleId();
        }
        Arrays.sort(ids);
        return ids;
    }

    /**
     * Marks in {@code listed} the places of {@code tableIds} that {@code ids} holds (both sorted): one pass over
     * each. Whether {@code ids} holds one the table lacks.
     */
    static boolean markListed(long[] tableIds, long[] ids, boolean[] listed) {
        boolean lacking = false;
        int t = 0;
        for (long id : ids) {
            while (t < tableIds.length && tableIds[t] < id) {
                t++;
            }
            if (t < tableIds.length && tableIds[t] == id) {
                listed[t] = true;
            } else {
                lacking = true;
            }
        }
        return lacking;
    }

    /**
     * Marks in {@code listed} the places of {@code tableIds} in the ranges {@code coverage} left out: the backend holds
     * exactly the table's seats there, as they were compared, so not the handles the gain rebuilt since. Nothing for a
     * complete listing (null).
     */
    private void markLeftOut(long[] tableIds, Coverage coverage, boolean[] listed) {
        if (coverage == null) {
            return;
        }
        for (int t = 0; t < tableIds.length; t++) {
            if (!coverage.lists(tableIds[t]) && !listedIn(rebuiltAtGain, tableIds[t])) {
                listed[t] = true;
            }
        }
    }

    /**
     * Whether the table, less the handles the gain rebuilt, gives in each range {@code coverage} left out the count and
     * digest the container took its listing's ranges by: else the backend holds there what the table held then, which
     * the listing cannot tell (a complete listing, null, always holds). Logged, as it should never happen: before the
     * node serves only the gain's rebuild changes a table, and a listing by ranges is not taken once it serves.
     */
    private boolean coverageHolds(Coverage coverage) {
        if (coverage == null) {
            return true;
        }
        if (coverage.equals(checkedCoverage) && table == checkedTable && table.changes() == checkedChanges) {
            // The gain's rebuild and each re-sync bring the same coverage: with 100 000 seats each check is 100 000
            // digests on the take-over's path.
            return true;
        }
        AllocationDigests own = new AllocationDigests(coverage.expected().ranges());
        for (Seat seat : table.all()) {
            if (!listedIn(rebuiltAtGain, seat.handleId())) {
                own.add(seat.handleId(), key);
            }
        }
        for (int k = 0; k < own.ranges(); k++) {
            if (!coverage.listed().get(k) && !own.sameIn(coverage.expected(), k)) {
                integrity().warn("{}: its seats in range {} of {} are not those the listing of the take-over was cut "
                        + "by ({} against {}); every backend is listed whole", name(), k, own.ranges(), own.count(k),
                        coverage.expected().count(k));
                return false;
            }
        }
        checkedCoverage = coverage;
        checkedTable = table;
        checkedChanges = table.changes();
        return true;
    }

    private static boolean listedIn(long[] sortedIds, long handleId) {
        return Arrays.binarySearch(sortedIds, handleId) >= 0;
    }

    /**
     * Whether an allocation a backend lists is stale there: no seat keeps it and no access still under way may
     * grant it (one whose client has its answer does not keep its allocations).
     */
    private boolean staleOnBackend(long handleId) {
        boolean kept = table.holds(handleId) && !releasing.containsKey(handleId);
        Pending undecided = pending.get(handleId);
        return !kept && (undecided == null || undecided.finished);
    }

    /** Why a re-sync's listing no longer counts (the lease is not held in the epoch it was taken under), or null. */
    private String leaseMoved(ResyncRun run) {
        return peers.holdsLease() && peers.epoch() == run.epoch ? null
                : "the lease moved from epoch " + run.epoch + " during the re-sync";
    }

    /**
     * Sends the next writes of a re-sync, at most {@link Settings#resyncWindow} with {@code first} among them and at most
     * as many as the backend's free re-sync slots ({@link PeerGroup#takeResyncSlots}, shared by every license); when
     * they are answered, the next window follows. With no slot free it tries again after {@link #RESYNC_SLOT_WAIT}.
     * Each write is decided when it is sent, from the seats as they are then: a seat released meanwhile is not
     * allocated again after its FREE went out on the same connection.
     */
    private void sendResyncWindow(int backend, ResyncRun run, List<CompletionStage<Message>> first) {
        int total = run.frees.size() + run.adds.size();
        int slots = run.next < total ? peers.takeResyncSlots(backend, settings.resyncWindow() - first.size()) : 0;
        if (slots == 0 && first.isEmpty() && run.next < total) {
            context.scheduleOnce(RESYNC_SLOT_WAIT, context.getSelf(), new ResyncWindowDone(backend, run.generation));
            return;
        }
        List<CompletionStage<Message>> calls = new ArrayList<>(first);
        int sent = 0;
        try {
            while (sent < slots && run.next < total) {
                int index = run.next++;
                CompletionStage<Message> call = null;
                if (index < run.frees.size()) {
                    long handleId = run.frees.get(index);
                    if (staleOnBackend(handleId)) {
                        call = peers.call(backend, certificate -> free(certificate, handleId));
                    }
                } else {
                    Seat seat = resyncSeat(run.adds.get(index - run.frees.size()));
                    if (seat != null) {
                        call = peers.call(backend, certificate -> allocate(certificate, backend, allocation(seat)));
                    }
                }
                if (call != null) {
                    sent++;
                    calls.add(call.whenComplete((answer, failure) -> peers.releaseResyncSlots(backend, 1)));
                }
            }
        } finally {
            peers.releaseResyncSlots(backend, slots - sent);
        }
        long generation = run.generation;
        boolean last = run.next >= total;
        CompletableFuture<?>[] all = calls.stream().map(CompletionStage::toCompletableFuture)
                .toArray(CompletableFuture[]::new);
        context.pipeToSelf(CompletableFuture.allOf(all), (ok, failure) -> failure != null || last
                ? new ResyncDone(backend, generation, failure == null ? null : describe(failure))
                : new ResyncWindowDone(backend, generation));
    }

    /** The seat a re-sync still allocates: one the table keeps and is not releasing, or an access under way. */
    private Seat resyncSeat(long handleId) {
        Optional<Seat> seat = table.get(handleId);
        if (seat.isPresent()) {
            return releasing.containsKey(handleId) ? null : seat.get();
        }
        Pending under = pending.get(handleId);
        return under != null && !under.finished ? under.request.seat() : null;
    }

    private Effect<TmrLicenseEvent, SeatTable> onResyncWindowDone(ResyncWindowDone done) {
        ResyncRun run = resyncRuns.get(done.backend());
        if (run == null || run.generation != done.generation() || sync.generation(done.backend()) != run.generation) {
            // Begun again or dropped meanwhile: the newer re-sync sends its own writes. This one ends here (a units
            // SET it sent no longer holds back the decrements waiting for it).
            return onResyncDone(new ResyncDone(done.backend(), done.generation(), "superseded"));
        }
        String moved = leaseMoved(run);
        if (moved != null) {
            // Its listing is of an epoch no longer held: another node may have written since. Listed again.
            return onResyncDone(new ResyncDone(done.backend(), done.generation(), moved));
        }
        sendResyncWindow(done.backend(), run, List.of());
        return Effect().none();
    }

    private Effect<TmrLicenseEvent, SeatTable> onResyncDone(ResyncDone done) {
        ResyncRun run = resyncRuns.get(done.backend());
        if (run != null && run.generation == done.generation()) {
            resyncRuns.remove(done.backend());
            String moved = leaseMoved(run);
            if (done.failure() == null && moved != null) {
                // Its last window was answered after the lease moved: not counted from an old epoch's listing.
                done = new ResyncDone(done.backend(), done.generation(), moved);
            }
        }
        if (unitSets.remove(List.of((long) done.backend(), done.generation()))) {
            if (done.failure() != null) {
                // The SET may or may not have been applied: the node's value stays right, that backend is re-synced.
                LOG.debug("{}: units SET on backend {} not confirmed", name(), done.backend() + 1);
            }
            runDeferredUnits();
        }
        switch (sync.finish(done.backend(), done.generation(), done.failure() == null)) {
            case SYNCED -> {
                publishSeats();
                LOG.info("{}: backend {} re-synced; usable backends {}", name(), done.backend() + 1,
                        indices(sync.usable()));
            }
            case AGAIN -> {
                int failures = sync.failures(done.backend());
                long retryIn = sync.retryDelayMillis(done.backend());
                String what = done.failure() != null ? "failed: " + done.failure()
                        : "was spoiled by a write that failed meanwhile";
                if (failures == 1 || failures % 10 == 0) {
                    LOG.warn("{}: re-sync of backend {} {} ({} in a row); it does not count until a later one "
                            + "succeeds; next try in {} ms", name(), done.backend() + 1, what, failures, retryIn);
                } else {
                    LOG.debug("{}: re-sync of backend {} {} ({} in a row); next try in {} ms", name(),
                            done.backend() + 1, what, failures, retryIn);
                }
                context.scheduleOnce(Duration.ofMillis(retryIn), context.getSelf(),
                        new RetryResync(done.backend(), done.generation()));
            }
            case STALE -> {
            }
        }
        return Effect().none();
    }

    /** A write to this backend was missed: it is re-synced before it counts again. */
    private void missed(int backend, String why) {
        boolean wasUsable = sync.usable().get(backend);
        if (sync.missed(backend)) {
            parent.needsResync(key, backend);
        }
        if (wasUsable) {
            LOG.warn("{}: backend {} missed a write ({}); it is re-synced before it counts again", name(),
                    backend + 1, why);
            publishSeats();
        }
    }

    // --- access ----------------------------------------------------------------------------------------

    private Effect<TmrLicenseEvent, SeatTable> onAccess(SeatTable state, Access access) {
        Client client = access.client();
        Seat.RequestKey request = new Seat.RequestKey(client.station(), client.host(), client.user(), client.pid(),
                access.requestId());
        Pending inFlight = pendingByRequest.get(request);
        if (inFlight != null) {
            inFlight.waiting.add(access.replyTo());
            return Effect().none();
        }
        if (!peers.holdsLease()) {
            access.replyTo().tell(new NotServing("the node holds no lease certificate"));
            return Effect().none();
        }
        Optional<Seat> opened = table.byRequest(request);
        if (opened.isPresent() && isRepeat(opened.get())) {
            // A re-sent ACCESS (reconnect, timeout): the handle it opened, not a second seat.
            Seat seat = opened.get();
            Life life = lives.get(seat.handleId());
            life.sessionId = client.sessionId();
            life.resentTo = client.sessionId();
            life.lastActivity = clock.millis();
            access.replyTo().tell(new Granted(seat.handleId(), Bytes.of(tokens.apply(seat.handleId())),
                    context.getSelf(), access.alone()));
            return Effect().none();
        }
        if (!peers.holdsLease()) {
            access.replyTo().tell(new NotServing("the node holds no lease certificate"));
            return Effect().none();
        }
        BitSet usable = sync.usable();
        if (agreed == null || usable.cardinality() < 2) {
            return refuse(access, new Refused(CmError.REDUNDANCY_SERVER_MISSING, name() + " has "
                    + usable.cardinality() + " usable cop" + (usable.cardinality() == 1 ? "y" : "ies") + "; 2 are needed"));
        }
        if ((agreed.featureMap() & access.featureBits()) != access.featureBits()) {
            return refuse(access, new Refused(CmError.ENTRY_NOT_FOUND, name() + " lacks feature bits "
                    + Long.toHexString(access.featureBits() & ~agreed.featureMap())));
        }
        Refused outOfTime = outOfTime(clock.millis());
        if (outOfTime != null) {
            return refuse(access, outOfTime);
        }
        Optional<SeatTable.Refusal> refusal = table.admit(access.mode(), client.station(), agreed.quantity(), name(),
                pendingSeats);
        if (refusal.isPresent()) {
            return refuse(access, new Refused(refusal.get().error(), refusal.get().text()));
        }
        long handleId;
        do {
            handleId = random.nextLong() & Long.MAX_VALUE;
        } while (handleId == 0 || table.get(handleId).isPresent() || pending.containsKey(handleId)
                || table.releasedLately(handleId));
        byte[] token = tokens.apply(handleId);
        Seat seat = new Seat(handleId, access.mode(), access.featureBits(), client.station(), client.user(),
                client.pid(), client.sessionId(), Seat.digestOf(token), peers.epoch(), clock.millis(), client.host(),
                access.requestId());
        BitSet targets = sync.writeTargets();
        Pending started = new Pending(new SeatRequest(seat, targets), token, access.replyTo(), access.alone());
        pending.put(handleId, started);
        pendingByRequest.put(seat.requestKey(), started);
        pendingSeats.add(seat);
        Allocation allocation = allocation(seat);
        for (int backend = targets.nextSetBit(0); backend >= 0; backend = targets.nextSetBit(backend + 1)) {
            int asked = backend;
            long id = handleId;
            context.pipeToSelf(peers.call(asked, certificate -> allocate(certificate, asked, allocation)),
                    (reply, failure) -> new Allocated(id, asked, answer(reply, failure)));
        }
        // Journaled while the backends allocate, not after: a node restarted between the two finds the seat in
        // its journal and reconciles the backends with it (the client's re-sent ACCESS gets this handle).
        intents.add(started);
        queueFlush();
        return Effect().none();
    }

    /**
     * The agreed activation time and expiry, judged on the node's clock before any backend is asked. The copies'
     * clocks differ within the lease's clock skew, so near either instant they would answer differently and a
     * client would hear a quorum fault (130) where the license's own answer (37 or 35) is due; the node's clock
     * decides instead, and the copies' checks remain the bound a node with a wrong clock cannot pass.
     */
    private Refused outOfTime(long now) {
        if (agreed.activatesAtMillis() != 0 && now < agreed.activatesAtMillis()) {
            return new Refused(CmError.NOT_YET_ACTIVATED, name() + " activates at "
                    + Instant.ofEpochMilli(agreed.activatesAtMillis()));
        }
        if (agreed.expiresAtMillis() != 0 && now >= agreed.expiresAtMillis()) {
            return new Refused(CmError.EXPIRED, name() + " expired at " + Instant.ofEpochMilli(agreed.expiresAtMillis()));
        }
        // Only the end: a start ahead of the node's clock within the skew is no sign of a clock set back.
        long usageEnd = usageStartedAt + agreed.usagePeriodSeconds() * 1000;
        if (agreed.usagePeriodSeconds() != 0 && usageStartedAt != 0 && now >= usageEnd) {
            return new Refused(CmError.USAGE_PERIOD_ELAPSED, "usage period of " + name() + " ended at "
                    + Instant.ofEpochMilli(usageEnd));
        }
        return null;
    }

    /**
     * Refuses an ACCESS this license cannot serve, or passes it on to the next license of the product: the denial
     * is tracked and told only by the last one, with the weightiest refusal of all.
     */
    private Effect<TmrLicenseEvent, SeatTable> refuse(Access access, Refused refused) {
        Refused merged = access.passed() == null ? refused : weightier(access.passed(), refused);
        if (!access.next().isEmpty()) {
            access.next().get(0).tell(new Access(access.featureBits(), access.mode(), access.client(),
                    access.requestId(), access.replyTo(), access.next().subList(1, access.next().size()), merged));
            return Effect().none();
        }
        if (access.passed() == null) {
            trackDenial(access.client(), merged.code(), merged.text());
        } else {
            // Every license of the product refused: a denial of the product, not of the license asked last.
            tracking.denial(null, key.firmCode(), key.productCode(), merged.code(), merged.text(), "ACCESS "
                    + key.firmCode() + ":" + key.productCode(), owner(access.client()), clock.millis());
        }
        access.replyTo().tell(merged);
        return Effect().none();
    }

    /**
     * What a client is told when several licenses of its product refused: the number of the refusal that says most
     * about the product (a license full or in exclusive use, 212/213, before one without two usable copies, 130,
     * before one lacking the feature bits, 200; the earlier license on a tie) and every license's reason.
     */
    public static Refused weightier(Refused earlier, Refused later) {
        int code = weight(later.code()) > weight(earlier.code()) ? later.code() : earlier.code();
        return new Refused(code, earlier.text() + "; " + later.text());
    }

    private static int weight(int code) {
        if (code == CmError.NO_MORE_LICENSES.code() || code == CmError.EXCLUSIVE_CONFLICT.code()) {
            return 3;
        }
        return code == CmError.REDUNDANCY_SERVER_MISSING.code() ? 2 : 1;
    }

    private Allocation allocation(Seat seat) {
        return new Allocation(seat.handleId(), key, seat.mode(), seat.featureBits(),
                new HandleOwner(seat.station(), seat.user(), seat.pid(), seat.sessionId()),
                Bytes.of(Base64.getDecoder().decode(seat.tokenDigest())), seat.epoch(),
                seat.host() == null ? null : new AllocationRequest(seat.host(), seat.requestId()));
    }

    /** ALLOCATE of {@code allocation} to {@code backend}: naming its request if that backend keeps requests. */
    private Message.Allocate allocate(LeaseCertificate certificate, int backend, Allocation allocation) {
        return new Message.Allocate(certificate, peers.namesRequests(backend) ? allocation
                : allocation.withRequest(null), peers.deadline());
    }

    private Message free(LeaseCertificate certificate, long handleId) {
        return new Message.Free(certificate, handleId, key, peers.deadline());
    }

    private Effect<TmrLicenseEvent, SeatTable> onAllocated(Allocated allocated) {
        Pending request = pending.get(allocated.handleId());
        if (request == null) {
            // An answer from before a restart: an allocation the table does not know is freed again.
            if (allocated.answer() instanceof BackendAnswer.Replied && table.get(allocated.handleId()).isEmpty()) {
                freeOn(allocated.backend(), allocated.handleId());
            }
            return Effect().none();
        }
        SeatRequest rule = request.request;
        SeatRequest.Outcome decided = rule.answer(allocated.backend(), allocated.answer());
        if (decided == SeatRequest.Outcome.GRANTED && request.journaled) {
            grant(request, clock.millis());
            publishSeats();
        } else if (decided == SeatRequest.Outcome.REFUSED) {
            if (rule.refusalsDisagree()) {
                integrity().warn("{}: the copies refused ALLOCATE differently: {}", name(), rule.answers());
            }
            BackendAnswer.Refused refused = rule.refusal(name());
            boolean fenced = rule.answers().values().stream().anyMatch(a -> a instanceof BackendAnswer.Fenced);
            // A copy that missed a write since (a FREE lost on the way) may still hold a seat the node freed: its
            // refusal says nothing about the seats. Unless two copies in sync refused too, the client asks again
            // once it is re-synced.
            BitSet staleRefusals = new BitSet();
            rule.answers().forEach((backend, answer) -> {
                if (answer instanceof BackendAnswer.Refused) {
                    staleRefusals.set(backend);
                }
            });
            BitSet syncedRefusals = (BitSet) staleRefusals.clone();
            syncedRefusals.and(sync.usable());
            staleRefusals.andNot(sync.usable());
            if (syncedRefusals.cardinality() >= 2) {
                staleRefusals.clear();
            }
            Reply reply = fenced && refused.code() == CmError.REDUNDANCY_SERVER_MISSING.code()
                    ? new NotServing("the backends refused the node's lease certificate")
                    : !staleRefusals.isEmpty()
                    ? new NotServing("refused by a copy that is being re-synced (backend(s) " + staleRefusals
                    + "); ask again")
                    : new Refused(refused.code(), refused.text());
            if (request.journaled) {
                // Its seat is in the journal: the refusal is told once the release is too.
                releasing.put(allocated.handleId(), new Releasing(allocated.handleId(), NOT_ALLOCATED
                        + refused.text(), null, request, reply, rule.asked()));
                queueFlush();
            } else {
                intents.remove(request);
                forget(request);
                trackRefusal(rule.seat(), reply);
                request.waiting.forEach(waiter -> waiter.tell(reply));
            }
        }
        if (rule.outcome() == SeatRequest.Outcome.REFUSED) {
            if (decided == SeatRequest.Outcome.REFUSED) {
                // Not only the backends that acknowledged may hold the refused seat: an ALLOCATE that timed out
                // may still be carried out, and a re-sync adds a journaled seat whose access is under way. It is
                // freed everywhere, behind those writes on each link, like a released seat.
                freeEverywhere(allocated.handleId());
            } else if (allocated.answer() instanceof BackendAnswer.Replied
                    || allocated.answer() instanceof BackendAnswer.Lost) {
                // An answer after the refusal: that backend holds (or may still get) an allocation nobody has.
                freeOn(allocated.backend(), allocated.handleId());
            }
        } else if (rule.outcome() == SeatRequest.Outcome.GRANTED) {
            if (decided == SeatRequest.Outcome.GRANTED) {
                BitSet missing = rule.missingAfterGrant();
                for (int b = missing.nextSetBit(0); b >= 0; b = missing.nextSetBit(b + 1)) {
                    missed(b, "ALLOCATE " + rule.answers().get(b).describe());
                }
            } else if (!(allocated.answer() instanceof BackendAnswer.Replied)) {
                missed(allocated.backend(), "ALLOCATE " + allocated.answer().describe());
            }
        }
        if (request.finished && rule.allAnswered()) {
            // Every backend answered: a re-sync may now free what this request left behind.
            pending.remove(allocated.handleId());
        }
        return Effect().none();
    }

    private void trackRefusal(Seat seat, Reply reply) {
        if (reply instanceof Refused refused) {
            tracking.denial(key, key.firmCode(), key.productCode(), refused.code(), refused.text(), "ACCESS "
                    + key.firmCode() + ":" + key.productCode(), owner(seat), clock.millis());
        }
    }

    /** A request both journaled and acknowledged by two backends: the client has its handle. */
    private void grant(Pending request, long now) {
        Seat seat = request.request.seat();
        forget(request);
        BitSet acknowledged = new BitSet();
        request.request.answers().forEach((backend, answer) -> {
            if (answer instanceof BackendAnswer.Replied) {
                acknowledged.set(backend);
            }
        });
        tracking.access(key, seat.handleId(), seat.mode(), owner(seat), acknowledged, now);
        lives.put(seat.handleId(), new Life(seat.sessionId(), now));
        parent.opened(key, seat);
        Granted reply = new Granted(seat.handleId(), Bytes.of(request.token), context.getSelf(), request.alone);
        request.waiting.forEach(waiter -> waiter.tell(reply));
    }

    /** The request is done with: granted or refused (late answers still find it until all are in). */
    private void forget(Pending request) {
        request.finished = true;
        long handleId = request.request.seat().handleId();
        pendingSeats.remove(handleId, -1);
        pendingByRequest.remove(request.request.seat().requestKey());
        if (request.request.allAnswered()) {
            pending.remove(handleId);
        }
    }

    /**
     * FREE goes out while the release is being journaled, not after: the backends' next ALLOCATE does not
     * queue behind it. A crash before the journal write leaves the seat in the journal, and the re-syncs
     * allocate it again until the client's repeated RELEASE frees it.
     */
    private BitSet freeEverywhere(long handleId) {
        BitSet targets = sync.writeTargets();
        for (int b = targets.nextSetBit(0); b >= 0; b = targets.nextSetBit(b + 1)) {
            freeOn(b, handleId);
        }
        return targets;
    }

    private void freeOn(int backend, long handleId) {
        context.pipeToSelf(peers.call(backend, certificate -> free(certificate, handleId)),
                (reply, failure) -> new Freed(handleId, backend, answer(reply, failure)));
    }

    private Effect<TmrLicenseEvent, SeatTable> onFreed(Freed freed) {
        if (!(freed.answer() instanceof BackendAnswer.Replied)) {
            missed(freed.backend(), "FREE " + freed.answer().describe());
        }
        Pending request = pending.get(freed.handleId());
        if (request != null && request.request.allAnswered()) {
            pending.remove(freed.handleId());
        }
        return Effect().none();
    }

    private void queueFlush() {
        if (!flushQueued) {
            flushQueued = true;
            context.getSelf().tell(Flush.INSTANCE);
        }
    }

    private boolean checkpointDue() {
        return checkpointDueAfter(0);
    }

    /** A checkpoint is due once {@code writing} more events are journaled. */
    /**
     * Adds a checkpoint to {@code events} when one is due after them: in the same write, never after it, since the
     * snapshot this write may trigger deletes events behind it before a checkpoint asked for afterwards is written,
     * and a write of many events may reach past the newest checkpoint there is.
     */
    /**
     * Journals {@code events}, with a checkpoint if one is due (persisting until written), times the write, takes the
     * table they make and runs {@code written} with it.
     */
    private Effect<TmrLicenseEvent, SeatTable> persistTimed(List<TmrLicenseEvent> events, long now,
                                                           java.util.function.Consumer<SeatTable> written) {
        addCheckpointIfDue(events, now);
        persisting.addAll(events);
        long writing = System.nanoTime();
        return Effect().persist(events).thenRun(state -> {
            parent.journalWritten(System.nanoTime() - writing);
            table = state;
            // The answers of the clients' asks this write completes reach each event loop as one task.
            ReplyBatch.run(() -> written.accept(state));
        });
    }

    private void addCheckpointIfDue(List<TmrLicenseEvent> events, long now) {
        if (checkpointDueAfter(events.size())) {
            SeatTable after = SeatTable.fromSnapshot(table.toSnapshot());
            for (TmrLicenseEvent event : events) {
                after = SeatTable.apply(after, event);
            }
            events.add(new TmrLicenseEvent.Checkpoint(after.toSnapshot(), now));
        }
    }

    private boolean checkpointDueAfter(int writing) {
        return settings.checkpoints() && (fromSnapshotWithoutCheckpoint
                || sinceCheckpoint + writing >= settings.checkpointEvery(table.handles()));
    }

    private void askCheckpointIfDue() {
        if (!checkpointAsked && checkpointDue()) {
            checkpointAsked = true;
            context.getSelf().tell(WriteCheckpoint.INSTANCE);
        }
    }

    /**
     * Journals the decided table as a {@link TmrLicenseEvent.Checkpoint}. Seats being allocated now are not in it;
     * their grants are journaled after it.
     */
    private Effect<TmrLicenseEvent, SeatTable> onWriteCheckpoint() {
        checkpointAsked = false;
        if (!checkpointDue()) {
            return Effect().none();
        }
        boolean adopting = fromSnapshotWithoutCheckpoint;
        TmrLicenseEvent.Checkpoint checkpoint = new TmrLicenseEvent.Checkpoint(table.toSnapshot(), clock.millis());
        persisting.add(checkpoint);
        return Effect().persist(checkpoint).thenRun(state -> {
            table = state;
            logAdopted(adopting, state);
        });
    }

    private void logAdopted(boolean adopted, SeatTable state) {
        if (adopted) {
            LOG.info("TMR license {}: the table recovered from a snapshot, {} handle(s), is journaled for the "
                    + "twin's standby", key, state.handles());
        }
    }

    /**
     * Journals the grants decided and the releases asked for since the last write, in one write: while it
     * is under way the actor stashes what comes, so the next flush takes all of that together.
     */
    private Effect<TmrLicenseEvent, SeatTable> onFlush() {
        flushQueued = false;
        if (intents.isEmpty() && releasing.isEmpty()) {
            return Effect().none();
        }
        List<Pending> granted = new ArrayList<>(intents);
        intents.clear();
        List<Releasing> released = new ArrayList<>(releasing.values());
        releasing.clear();
        long now = clock.millis();
        List<TmrLicenseEvent> events = new ArrayList<>(granted.size() + released.size());
        for (Pending request : granted) {
            events.add(new SeatGranted(request.request.seat(), now));
        }
        // The seats as they are before the releases: the table drops them when the events apply.
        Map<Long, Seat> ending = new HashMap<>();
        for (Releasing release : released) {
            events.add(new SeatReleased(release.handleId(), release.reason(), now));
            table.get(release.handleId()).ifPresent(seat -> ending.put(seat.handleId(), seat));
        }
        boolean adopting = fromSnapshotWithoutCheckpoint;
        return persistTimed(events, now, state -> {
            for (Releasing release : released) {
                if (release.refused() != null) {
                    forget(release.refused());
                    trackRefusal(release.refused().request.seat(), release.refusal());
                    release.refused().waiting.forEach(waiter -> waiter.tell(release.refusal()));
                    continue;
                }
                Seat seat = ending.get(release.handleId());
                if (seat != null && trackedEvent(release.reason()) != null) {
                    tracking.ended(key, release.handleId(), trackedEvent(release.reason()), release.reason(),
                            owner(seat), release.freedOn(), now);
                }
                lives.remove(release.handleId());
                parent.closed(key, release.handleId());
                release.waiters().forEach(waiter -> waiter.tell(Released.INSTANCE));
            }
            for (Pending request : granted) {
                request.journaled = true;
                // In the journaled table now: no longer a pending seat.
                pendingSeats.remove(request.request.seat().handleId(), -1);
                if (request.request.outcome() == SeatRequest.Outcome.GRANTED) {
                    grant(request, now);
                }
            }
            publishSeats();
            logAdopted(adopting && !fromSnapshotWithoutCheckpoint, state);
        });
    }

    // --- handles: release, resume, activity, reclaim ------------------------------------------------------

    private Effect<TmrLicenseEvent, SeatTable> onRelease(Release release) {
        long handleId = release.handleId();
        if (table.releasedLately(handleId)) {
            // Released already (its answer may have been lost): releasing again changes nothing.
            release.replyTo().tell(Released.INSTANCE);
            return Effect().none();
        }
        Optional<Seat> seat = table.get(handleId);
        Life life = lives.get(handleId);
        if (seat.isEmpty() || life == null) {
            release.replyTo().tell(unknownHandle(handleId));
            return Effect().none();
        }
        if (life.sessionId == UNBOUND) {
            life.sessionId = release.sessionId();
        }
        if (life.sessionId != release.sessionId()) {
            release.replyTo().tell(otherSession(handleId));
            return Effect().none();
        }
        return startRelease(handleId, release.reason(), release.replyTo(), () -> { });
    }

    /**
     * Frees a held seat on every backend and journals its release (with the next flush); a repeat while the first
     * is under way is answered with it. Needs the lease: without it the caller is told so and nothing changes.
     * {@code started} runs when this call starts the release (not for a repeat, not without the lease).
     */
    private Effect<TmrLicenseEvent, SeatTable> startRelease(long handleId, String reason, ActorRef<Reply> replyTo,
                                                            Runnable started) {
        if (!peers.holdsLease()) {
            replyTo.tell(new NotServing("the node holds no lease certificate"));
            return Effect().none();
        }
        Releasing already = releasing.get(handleId);
        if (already != null) {
            // A repeat while the first is being journaled: both are answered once it is.
            already.waiters().add(replyTo);
            return Effect().none();
        }
        started.run();
        releasing.put(handleId, new Releasing(handleId, reason, replyTo, freeEverywhere(handleId)));
        queueFlush();
        return Effect().none();
    }

    private Effect<TmrLicenseEvent, SeatTable> onForceRelease(ForceRelease release) {
        long handleId = release.handleId();
        Optional<Seat> seat = table.get(handleId);
        TmrLicenseEvent.Borrowed borrowed = table.borrowed(handleId);
        // A borrowed seat has no live handle, but its ticket holds the seat: an operator may free it too (the
        // ticket then still works offline until its expiry; the seat counts no more on the node nor the backends).
        if (seat.isEmpty() || !lives.containsKey(handleId) && borrowed == null) {
            release.replyTo().tell(unknownHandle(handleId));
            return Effect().none();
        }
        return startRelease(handleId, "released by an operator (" + release.by() + ")", release.replyTo(),
                () -> LOG.warn("{} {} of {}@{} on {} released by an operator ({})", borrowed == null ? "Handle"
                        : "Borrowed seat (ticket of " + borrowed.clientId() + ")", Long.toUnsignedString(handleId),
                        seat.get().user(), seat.get().station(), key, release.by()));
    }

    /**
     * Whether an ACCESS with the request key of {@code seat} repeats the one that opened it: while the handle is still
     * where that ACCESS (or a repeat of it) left it: its first session, a session a repeat moved it to, or none after a
     * restart or take-over. A handle its client took up elsewhere (RESUME, a request on it) is held by a client that has
     * its answer: the same key again is a new request of a client numbering its requests anew per connection.
     */
    private boolean isRepeat(Seat seat) {
        Life life = lives.get(seat.handleId());
        return life != null && (life.sessionId == UNBOUND || life.sessionId == seat.sessionId()
                || life.sessionId == life.resentTo);
    }

    private Effect<TmrLicenseEvent, SeatTable> onResume(Resume resume) {
        resume.replyTo().tell(resume(resume.handleId(), resume.token(), resume.sessionId()));
        return Effect().none();
    }

    private Effect<TmrLicenseEvent, SeatTable> onResumeMany(ResumeMany resume) {
        List<Reply> outcomes = new ArrayList<>(resume.items().size());
        for (HandleToken item : resume.items()) {
            outcomes.add(resume(item.handleId(), item.token(), resume.sessionId()));
        }
        resume.replyTo().tell(new ResumedMany(outcomes));
        return Effect().none();
    }

    /** Binds a handle to the session that RESUMEs it with its token: {@link Resumed}, or 106. Nothing journaled. */
    private Reply resume(long handleId, Bytes token, long sessionId) {
        Optional<Seat> seat = table.get(handleId);
        Life life = lives.get(handleId);
        if (seat.isEmpty() || life == null || releasing.containsKey(handleId)) {
            return unknownHandle(handleId);
        }
        if (!seat.get().tokenMatches(token.toArray())) {
            LOG.warn("RESUME of handle {} of {} with a wrong token refused (session {})",
                    Long.toUnsignedString(handleId), name(), Long.toUnsignedString(sessionId));
            return new Refused(CmError.INVALID_HANDLE, "wrong resume token for handle "
                    + Long.toUnsignedString(handleId));
        }
        life.sessionId = sessionId;
        life.lastActivity = clock.millis();
        return new Resumed(context.getSelf());
    }

    private Effect<TmrLicenseEvent, SeatTable> onTouch(Touch touch) {
        long now = clock.millis();
        for (long handleId : touch.handleIds()) {
            Life life = lives.get(handleId);
            if (life != null && (life.sessionId == touch.sessionId() || life.sessionId == UNBOUND)) {
                life.sessionId = touch.sessionId();
                life.lastActivity = now;
            }
        }
        return Effect().none();
    }

    private Effect<TmrLicenseEvent, SeatTable> onSweep() {
        long now = clock.millis();
        long timeout = settings.cleanupTimeout().toMillis();
        boolean any = false;
        for (Map.Entry<Long, Life> entry : lives.entrySet()) {
            long idle = now - entry.getValue().lastActivity;
            long handleId = entry.getKey();
            if (idle >= timeout && !releasing.containsKey(handleId) && peers.holdsLease()) {
                Seat seat = table.get(handleId).orElseThrow();
                LOG.info("Handle {} of {}@{} on {} reclaimed: no traffic for {} s", Long.toUnsignedString(handleId),
                        seat.user(), seat.station(), key, idle / 1000);
                releasing.put(handleId, new Releasing(handleId, RECLAIMED + settings.cleanupTimeout(), null,
                        freeEverywhere(handleId)));
                any = true;
            }
        }
        for (TmrLicenseEvent.Borrowed borrow : table.borrows()) {
            long handleId = borrow.handleId();
            if (now >= borrow.expiresAtMillis() && !releasing.containsKey(handleId) && peers.holdsLease()) {
                LOG.info("Borrow {} of {} on {} expired at {}: its seat is freed", Long.toUnsignedString(handleId),
                        borrow.clientId(), key, Instant.ofEpochMilli(borrow.expiresAtMillis()));
                releasing.put(handleId, new Releasing(handleId, BORROW_EXPIRED, null, freeEverywhere(handleId)));
                any = true;
            }
        }
        if (any) {
            queueFlush();
        }
        return Effect().none();
    }

    // --- borrowing -------------------------------------------------------------------------------------

    private Effect<TmrLicenseEvent, SeatTable> onBorrow(Borrow borrow) {
        long handleId = borrow.handleId();
        TmrLicenseEvent.Borrowed done = table.borrowed(handleId);
        if (done != null) {
            // A BORROW repeated after its answer was lost: the same ticket, to the same client only.
            borrow.replyTo().tell(done.clientId().equals(borrow.clientId()) ? new BorrowGranted(ticketOf(done))
                    : unknownHandle(handleId));
            return Effect().none();
        }
        PendingBorrow under = borrowing.get(handleId);
        if (under != null) {
            // A repeat while the backends sign: the same ticket, to the same client only.
            if (under.ticket.clientId().equals(borrow.clientId())) {
                under.waiters.add(borrow.replyTo());
            } else {
                borrow.replyTo().tell(unknownHandle(handleId));
            }
            return Effect().none();
        }
        if (!peers.holdsLease()) {
            borrow.replyTo().tell(new NotServing("the node holds no lease certificate"));
            return Effect().none();
        }
        if (owned(handleId, borrow.sessionId(), borrow.replyTo()).isEmpty()) {
            return Effect().none();
        }
        if (agreed == null || agreed.borrowMaxSeconds() == 0) {
            borrow.replyTo().tell(new Refused(CmError.ACCESS_DENIED, name() + " does not allow borrowing"));
            return Effect().none();
        }
        if (borrow.durationSeconds() <= 0 || borrow.durationSeconds() > agreed.borrowMaxSeconds()) {
            borrow.replyTo().tell(new Refused(CmError.INVALID_PARAMETER, "borrow of " + borrow.durationSeconds()
                    + " s for " + name() + "; allowed is up to " + agreed.borrowMaxSeconds() + " s"));
            return Effect().none();
        }
        BitSet usable = sync.usable();
        if (usable.cardinality() < 2) {
            borrow.replyTo().tell(new Refused(CmError.REDUNDANCY_SERVER_MISSING, name() + " has "
                    + usable.cardinality() + " usable copies; 2 must sign a borrow"));
            return Effect().none();
        }
        long expiresAt = clock.millis() + borrow.durationSeconds() * 1000;
        if (agreed.expiresAtMillis() != 0) {
            // Never after the license itself, as on a backend.
            expiresAt = Math.min(expiresAt, agreed.expiresAtMillis());
        }
        io.opentmr.protocol.BorrowTicket ticket = new io.opentmr.protocol.BorrowTicket(handleId, key.firmCode(),
                key.productCode(), borrow.clientId(), expiresAt, borrow.issuer(), Bytes.EMPTY);
        borrowing.put(handleId, new PendingBorrow(ticket, usable, borrow.replyTo(), peers.epoch()));
        for (int b = usable.nextSetBit(0); b >= 0; b = usable.nextSetBit(b + 1)) {
            int backend = b;
            context.pipeToSelf(peers.call(backend, certificate -> new Message.PeerBorrow(certificate, key, handleId,
                    ticket, peers.deadline())), (reply, failure) -> new BorrowAnswered(handleId, backend, reply, failure));
        }
        return Effect().none();
    }

    private Effect<TmrLicenseEvent, SeatTable> onBorrowAnswered(BorrowAnswered answered) {
        PendingBorrow pending = borrowing.get(answered.handleId());
        if (pending == null || pending.decided) {
            return Effect().none();
        }
        BackendAnswer answer = answer(answered.reply(), answered.failure());
        if (answered.reply() instanceof Message.BorrowOk || answer instanceof BackendAnswer.Lost) {
            pending.mayHaveBorrowed.set(answered.backend());
        }
        String unusable = answered.reply() instanceof Message.BorrowOk ok
                && ok.ticket().withSignature(Bytes.EMPTY).equals(pending.ticket)
                ? addSignature(pending, answered.backend(), ok.ticket().signature()) : null;
        if (unusable != null) {
            BackendAnswer refused = new BackendAnswer.Refused(CmError.ACCESS_DENIED.code(), unusable);
            pending.refusals.add(refused);
            missed(answered.backend(), "PEER_BORROW " + refused.describe());
        } else if (!pending.signatures.containsKey(answered.backend())) {
            pending.refusals.add(answer);
            missed(answered.backend(), "PEER_BORROW " + answer.describe());
        }
        Reply voided = pending.byPlace.size() < 2 ? null : voidBorrow(answered.handleId(), pending);
        if (voided != null) {
            // A ticket now would hold a seat no serving node counts, and work offline all the same. Every backend
            // asked frees what it borrowed (each FREE follows its PEER_BORROW on the link, also one not answered
            // yet); without the lease the node that holds it frees them, not knowing the seat.
            pending.decided = true;
            borrowing.remove(answered.handleId());
            LOG.warn("Borrow of handle {} of {} refused: {}", Long.toUnsignedString(answered.handleId()), key,
                    voided instanceof Refused refused ? refused.text() : ((NotServing) voided).why());
            undoBorrow(answered.handleId(), pending.asked);
            pending.waiters.forEach(waiter -> waiter.tell(voided));
            return Effect().none();
        }
        if (pending.byPlace.size() >= 2) {
            pending.decided = true;
            TmrLicenseEvent.Borrowed borrowed = new TmrLicenseEvent.Borrowed(answered.handleId(),
                    pending.ticket.clientId(), pending.ticket.expiresAtMillis(), pending.ticket.issuer().toString(),
                    new io.opentmr.protocol.BorrowTicket.GroupSignature(pending.byPlace, pending.statement).encode()
                            .toArray());
            long now = clock.millis();
            Optional<Seat> seat = table.get(answered.handleId());
            return Effect().persist(new TmrLicenseEvent.SeatBorrowed(borrowed, now)).thenRun(state -> {
                table = state;
                seat.ifPresent(s -> tracking.ended(key, answered.handleId(), "borrow", "borrowed by "
                        + borrowed.clientId() + " until " + Instant.ofEpochMilli(borrowed.expiresAtMillis()), owner(s),
                        toBits(pending.signatures.keySet()), now));
                borrowing.remove(answered.handleId());
                // The handle ends: no session uses it, no cleanup reclaims it; its ticket holds the seat.
                lives.remove(answered.handleId());
                LOG.info("Handle {} of {} borrowed by {} until {}, signed by backend(s) {}",
                        Long.toUnsignedString(answered.handleId()), key, borrowed.clientId(),
                        Instant.ofEpochMilli(borrowed.expiresAtMillis()), indices(toBits(pending.signatures.keySet())));
                BorrowGranted granted = new BorrowGranted(ticketOf(borrowed));
                pending.waiters.forEach(waiter -> waiter.tell(granted));
            });
        }
        if (pending.answered() == pending.asked.cardinality()) {
            pending.decided = true;
            borrowing.remove(answered.handleId());
            Refused refused = borrowRefusal(pending);
            LOG.warn("Borrow of handle {} of {} refused: {}{}", Long.toUnsignedString(answered.handleId()), key,
                    refused.text(), pending.mayHaveBorrowed.isEmpty() ? "" : "; its seat is freed on backend(s) "
                            + indices(pending.mayHaveBorrowed) + ", which borrowed it or may have, and allocated "
                            + "there again by a re-sync");
            undoBorrow(answered.handleId(), pending.mayHaveBorrowed);
            pending.waiters.forEach(waiter -> waiter.tell(refused));
        }
        return Effect().none();
    }

    /**
     * Why signatures enough for a ticket give none, or null: the handle was released (by its client, an operator or
     * the cleanup) while the backends signed, so its seat is free; or the node no longer holds the lease it asked
     * under, so another node may serve and, not knowing the seat, have freed it.
     */
    private Reply voidBorrow(long handleId, PendingBorrow pending) {
        if (table.get(handleId).isEmpty() || releasing.containsKey(handleId)) {
            return unknownHandle(handleId);
        }
        if (!peers.holdsLease() || peers.epoch() != pending.epoch) {
            return new NotServing("the node lost the backends' lease (epoch " + pending.epoch
                    + ") while they signed the borrow");
        }
        return null;
    }

    /**
     * A refused borrow leaves no borrowed allocation behind (it would hold the seat on that backend until the
     * ticket's expiry, after the handle's release): each backend that borrowed it, or may have, frees it (FREE ends
     * a borrowed allocation), and a re-sync then allocates the still held seat there again, as a plain allocation.
     * The re-sync is asked once the FREE is answered, so it cannot list the borrowed allocation before it is gone.
     */
    private void undoBorrow(long handleId, BitSet backends) {
        for (int b = backends.nextSetBit(0); b >= 0; b = backends.nextSetBit(b + 1)) {
            int backend = b;
            context.pipeToSelf(peers.call(backend, certificate -> free(certificate, handleId)),
                    (reply, failure) -> new BorrowUndone(handleId, backend, answer(reply, failure)));
        }
    }

    private Effect<TmrLicenseEvent, SeatTable> onBorrowUndone(BorrowUndone undone) {
        if (table.get(undone.handleId()).isPresent() && !releasing.containsKey(undone.handleId())) {
            missed(undone.backend(), "its allocation of handle " + Long.toUnsignedString(undone.handleId())
                    + " was freed after a refused borrow (FREE: " + undone.answer().describe() + ")");
        }
        return Effect().none();
    }

    /**
     * Takes a backend's signature of the ticket: one signature and the vendor's statement of the group's keys it
     * is placed in ({@code BorrowTicket.GroupSignature}). The node checks no signature (the program holding the
     * ticket does, with the vendor's key); it only keeps the signatures that share one statement.
     *
     * @return null when taken, else why it cannot be used
     */
    private static String addSignature(PendingBorrow pending, int backend, Bytes signature) {
        io.opentmr.protocol.BorrowTicket.GroupSignature one;
        try {
            one = io.opentmr.protocol.BorrowTicket.GroupSignature.parse(signature);
        } catch (IllegalArgumentException e) {
            return "a signature of another layout: " + e.getMessage();
        }
        if (one.statement() == null || one.signatures().size() != 1) {
            return "a signature without the vendor's statement of the group's keys";
        }
        if (pending.statement != null && !pending.statement.equals(one.statement())) {
            return "a signature under another statement of the group's keys (" + one.statement() + ") than "
                    + pending.statement;
        }
        int place = one.signatures().firstKey();
        if (pending.byPlace.containsKey(place)) {
            return "a signature in place " + place + " of the group's keys, which another backend signed";
        }
        pending.statement = one.statement();
        pending.byPlace.put(place, one.signatures().get(place));
        pending.signatures.put(backend, one.signatures().get(place));
        return null;
    }

    /** Two backends that refused alike decide the answer; otherwise the quorum is missing. */
    private Refused borrowRefusal(PendingBorrow pending) {
        Map<Integer, Integer> byCode = new HashMap<>();
        for (BackendAnswer answer : pending.refusals) {
            if (answer instanceof BackendAnswer.Refused refused && byCode.merge(refused.code(), 1, Integer::sum) >= 2) {
                return new Refused(refused.code(), refused.text());
            }
        }
        return new Refused(CmError.REDUNDANCY_SERVER_MISSING, name() + ": fewer than 2 backends signed the borrow ("
                + pending.refusals.stream().map(BackendAnswer::describe).toList() + ")");
    }

    private static BitSet toBits(Set<Integer> backends) {
        BitSet bits = new BitSet();
        backends.forEach(bits::set);
        return bits;
    }

    private io.opentmr.protocol.BorrowTicket ticketOf(TmrLicenseEvent.Borrowed borrowed) {
        return new io.opentmr.protocol.BorrowTicket(borrowed.handleId(), key.firmCode(), key.productCode(),
                borrowed.clientId(),
                borrowed.expiresAtMillis(), io.opentmr.protocol.Serial.parse(borrowed.issuer()),
                Bytes.of(borrowed.signature()));
    }

    private Effect<TmrLicenseEvent, SeatTable> onReturnBorrow(ReturnBorrow ret) {
        long ticketId = ret.ticketId();
        TmrLicenseEvent.Borrowed borrowed = table.borrowed(ticketId);
        if (borrowed == null || !borrowed.clientId().equals(ret.clientId())) {
            // As a backend answers: only the client the ticket was issued to may return it.
            ret.replyTo().tell(new Refused(CmError.INVALID_HANDLE, "no borrow with ticket "
                    + Long.toUnsignedString(ticketId) + " for " + ret.clientId()));
            return Effect().none();
        }
        if (clock.millis() >= borrowed.expiresAtMillis()) {
            ret.replyTo().tell(new Refused(CmError.INVALID_HANDLE, "borrow ticket " + Long.toUnsignedString(ticketId)
                    + " expired at " + Instant.ofEpochMilli(borrowed.expiresAtMillis()) + "; its seat is free"));
            return Effect().none();
        }
        return startRelease(ticketId, BORROW_RETURNED, ret.replyTo(), () -> LOG.info("Borrow {} of {} on {} returned",
                Long.toUnsignedString(ticketId), ret.clientId(), key));
    }

    /** The handle's seat, if the asking session owns it; otherwise the refusal has been sent. */
    private Optional<Seat> owned(long handleId, long sessionId, ActorRef<Reply> replyTo) {
        Optional<Seat> seat = table.get(handleId);
        Life life = lives.get(handleId);
        if (seat.isEmpty() || life == null || releasing.containsKey(handleId)) {
            replyTo.tell(unknownHandle(handleId));
            return Optional.empty();
        }
        if (life.sessionId == UNBOUND) {
            life.sessionId = sessionId;
        }
        if (life.sessionId != sessionId) {
            replyTo.tell(otherSession(handleId));
            return Optional.empty();
        }
        life.lastActivity = clock.millis();
        return seat;
    }

    private Refused unknownHandle(long handleId) {
        return new Refused(CmError.INVALID_HANDLE, "handle " + Long.toUnsignedString(handleId)
                + " is unknown, released or reclaimed");
    }

    private Refused otherSession(long handleId) {
        return new Refused(CmError.INVALID_HANDLE, "handle " + Long.toUnsignedString(handleId)
                + " belongs to another session; RESUME it with its token");
    }

    // --- units and crypt: majority votes ---------------------------------------------------------------

    private Effect<TmrLicenseEvent, SeatTable> onUnits(DecrementUnits request) {
        if (owned(request.handleId(), request.sessionId(), request.replyTo()).isEmpty()) {
            return Effect().none();
        }
        return decrement(request);
    }

    /**
     * A decrement of a handle its session owned when it arrived. One deferred behind a counter being set or read
     * comes back here, not through the ownership check again: a RELEASE of the handle that arrived after it does
     * not overtake it.
     */
    private Effect<TmrLicenseEvent, SeatTable> decrement(DecrementUnits request) {
        if (!unitSets.isEmpty() || readingUnits) {
            // A counter is being set or read: the decrement follows it, so nothing is counted from a stale value.
            deferredUnits.add(request);
            return Effect().none();
        }
        // The same client operation maps to the same backend operation id, so a retry is never spent twice.
        long operationId = operationId(request.handleId(), request.operationId());
        vote(request.replyTo(), VoteKind.DECREMENT, "units", certificate -> new Message.PeerUnits(certificate, key,
                operationId, UnitsOperation.DECREMENT, request.amount()));
        return Effect().none();
    }

    static long operationId(long handleId, long clientOperation) {
        long mixed = handleId * 0x9E3779B97F4A7C15L + clientOperation;
        mixed ^= mixed >>> 31;
        return mixed * 0xBF58476D1CE4E5B9L;
    }

    private void runDeferredUnits() {
        while (unitSets.isEmpty() && !readingUnits && !deferredUnits.isEmpty()) {
            context.getSelf().tell(new AdmittedDecrement(deferredUnits.poll()));
        }
        if (unitVotesOpen == 0 && !readingUnits && units >= 0 && !waitingResyncs.isEmpty()) {
            List<Resync> waiting = new ArrayList<>(waitingResyncs.values());
            waitingResyncs.clear();
            // Checked again as they arrived: the copy must still count, the lease be held in the listing's epoch.
            waiting.forEach(this::onResync);
        }
    }

    private Effect<TmrLicenseEvent, SeatTable> onCrypt(Crypt request) {
        if (owned(request.handleId(), request.sessionId(), request.replyTo()).isEmpty()) {
            return Effect().none();
        }
        vote(request.replyTo(), VoteKind.CRYPT, "crypt", certificate -> new Message.PeerCrypt(certificate, key,
                request.direction(), request.encryptionCode(), request.data()));
        return Effect().none();
    }

    /** Reads the counter of every counted copy: the value the node re-syncs from, never an old inventory. */
    private void readUnits() {
        BitSet counted = sync.counted();
        if (counted.cardinality() < 2 || !peers.holdsLease()) {
            return;
        }
        readingUnits = true;
        long operationId = random.nextLong();
        startVote(counted, null, VoteKind.READ, "units read", certificate -> new Message.PeerUnits(certificate, key,
                operationId, UnitsOperation.READ, 0));
    }

    private void vote(ActorRef<Reply> replyTo, VoteKind kind, String what, Function<LeaseCertificate, Message> request) {
        if (!peers.holdsLease()) {
            replyTo.tell(new NotServing("the node holds no lease certificate"));
            return;
        }
        BitSet usable = sync.usable();
        if (usable.cardinality() < 2) {
            replyTo.tell(new Refused(CmError.REDUNDANCY_SERVER_MISSING, name() + " has " + usable.cardinality()
                    + " usable copies; 2 are needed"));
            return;
        }
        startVote(usable, replyTo, kind, what, request);
    }

    private void startVote(BitSet asked, ActorRef<Reply> replyTo, VoteKind kind, String what,
                           Function<LeaseCertificate, Message> request) {
        long voteId = nextVote++;
        votes.put(voteId, new OpenVote(new MajorityVote(asked), kind, what, replyTo));
        if (kind == VoteKind.DECREMENT) {
            unitVotesOpen++;
        }
        for (int backend = asked.nextSetBit(0); backend >= 0; backend = asked.nextSetBit(backend + 1)) {
            int b = backend;
            context.pipeToSelf(peers.call(b, request), (reply, failure) -> new Voted(voteId, b, answer(reply, failure)));
        }
    }

    private Effect<TmrLicenseEvent, SeatTable> onVoted(Voted voted) {
        OpenVote open = votes.get(voted.voteId());
        if (open == null) {
            return Effect().none();
        }
        MajorityVote vote = open.vote();
        MajorityVote.State ended = vote.answer(voted.backend(), voted.answer());
        if (ended != MajorityVote.State.OPEN && open.kind() != VoteKind.READ) {
            open.replyTo().tell(result(open, vote));
        }
        if (ended == MajorityVote.State.DECIDED && open.kind() == VoteKind.DECREMENT
                && vote.decided() instanceof Message.UnitsOk ok) {
            // Decrements run side by side and may be decided out of order: the counter only goes down, so a vote
            // decided after a later one carries the older, higher value and must not put the counter back up.
            units = units < 0 ? ok.remaining() : Math.min(units, ok.remaining());
            publishSeats();
        }
        if (!vote.allAnswered()) {
            return Effect().none();
        }
        votes.remove(voted.voteId());
        switch (open.kind()) {
            case DECREMENT -> {
                unitVotesOpen--;
                if (vote.state() != MajorityVote.State.DECIDED) {
                    units = -1;
                }
                BitSet behind = vote.lost();
                behind.or(vote.dissenters());
                if (vote.state() != MajorityVote.State.DECIDED) {
                    behind = vote.asked();
                    integrity().warn("{}: no two copies agree on units: {}", name(), vote.answers());
                }
                for (int b = behind.nextSetBit(0); b >= 0; b = behind.nextSetBit(b + 1)) {
                    missed(b, "units " + (vote.lost().get(b) ? "unanswered" : "differ from the majority"));
                }
            }
            case READ -> {
                readingUnits = false;
                // A decrement vote begun before the read may have been decided while it was out: the node then
                // knows a value already, and the lower of the two stands (spent units never come back). A read
                // without two answers does not undo that value.
                long read = readValue(vote);
                if (read >= 0) {
                    units = units < 0 ? read : Math.min(units, read);
                    LOG.info("{}: units read from the copies: {}; the node's value: {}", name(), read, units);
                } else if (units >= 0) {
                    LOG.warn("{}: fewer than two copies answered the units read ({}); the node keeps {}, decided by a "
                            + "decrement meanwhile", name(), vote.answers(), units);
                } else {
                    LOG.warn("{}: fewer than two copies answered the units read ({}); the re-syncs waiting for it are "
                            + "asked again", name(), vote.answers());
                    waitingResyncs.keySet().forEach(b -> {
                        sync.notBegun(b);
                        parent.needsResync(key, b);
                    });
                    waitingResyncs.clear();
                }
                publishSeats();
            }
            case CRYPT -> {
                if (vote.state() == MajorityVote.State.DISAGREE) {
                    integrity().warn("{}: the copies disagree on crypt: {}", name(), vote.answers());
                }
            }
        }
        runDeferredUnits();
        return Effect().none();
    }

    /** A read's value: two copies that agree, else the lowest any copy reports (spent units never come back). */
    private long readValue(MajorityVote vote) {
        if (vote.state() == MajorityVote.State.DECIDED && vote.decided() instanceof Message.UnitsOk ok) {
            return ok.remaining();
        }
        long lowest = Long.MAX_VALUE;
        int answered = 0;
        for (Message answer : vote.answers().values()) {
            if (answer instanceof Message.UnitsOk ok) {
                lowest = Math.min(lowest, ok.remaining());
                answered++;
            }
        }
        // A confirmed decrement is on two copies of three, so any two copies show it (the lower of the two
        // does); a single copy may be the one it missed, and setting its value everywhere would undo it.
        if (answered >= 2) {
            integrity().warn("{}: no two copies agree on the units left ({}); the lowest, {}, is taken", name(),
                    vote.answers(), lowest);
            return lowest;
        }
        return -1;
    }

    private Reply result(OpenVote open, MajorityVote vote) {
        return switch (vote.state()) {
            case DECIDED -> {
                Message decided = vote.decided();
                if (decided instanceof Message.UnitsOk ok) {
                    yield new UnitsLeft(ok.remaining());
                } else if (decided instanceof Message.CryptOk ok) {
                    yield new Crypted(ok.data());
                } else if (decided instanceof Message.Error error) {
                    yield new Refused(error.code(), error.text());
                }
                yield new Refused(CmError.TMR_COPIES_DISAGREE, name() + ": unexpected answer to " + open.what() + ": "
                        + decided.type());
            }
            case DISAGREE -> {
                integrity().warn("{}: the copies disagree on {}: {}", name(), open.what(), vote.answers());
                yield new Refused(CmError.TMR_COPIES_DISAGREE, name() + ": no two copies agree on " + open.what());
            }
            default -> !vote.fenced().isEmpty()
                    ? new NotServing("the backends refused the node's lease certificate")
                    : new Refused(CmError.REDUNDANCY_SERVER_MISSING, name() + ": fewer than 2 copies answered "
                    + open.what());
        };
    }

    private Effect<TmrLicenseEvent, SeatTable> onInfo(GetInfo request) {
        Optional<Seat> seat = owned(request.handleId(), request.sessionId(), request.replyTo());
        if (seat.isEmpty()) {
            return Effect().none();
        }
        if (!peers.holdsLease()) {
            request.replyTo().tell(new NotServing("the node holds no lease certificate"));
            return Effect().none();
        }
        if (agreed == null) {
            request.replyTo().tell(new Refused(CmError.REDUNDANCY_SERVER_MISSING, name() + " has fewer than 2 counted "
                    + "copies; handle " + Long.toUnsignedString(request.handleId()) + " keeps its seat"));
            return Effect().none();
        }
        request.replyTo().tell(new Described(request.handleId(), seat.get().mode(), product()));
        return Effect().none();
    }

    /** The license as the virtual container shows it: the agreed item, seats from the table, the node's units. */
    private ProductInfo product() {
        return new ProductInfo(agreed.firmCode(), agreed.productCode(), agreed.featureMap(), agreed.text(),
                agreed.quantity(), table.seatsInUse(agreed.quantity()), agreed.tmrId(), agreed.hasUnitCounter(),
                unitsShown(), agreed.expiresAtMillis(), agreed.activatesAtMillis(), agreed.usagePeriodSeconds(),
                agreed.usageStartedAtMillis(), agreed.borrowMaxSeconds());
    }

    /**
     * The units a client is told: the node's own value, or while it knows none (a vote ended without two copies
     * agreeing, and the read that follows has not found two yet) the value two copies agreed on in the last
     * inventory, not 0.
     */
    private long unitsShown() {
        return Math.max(0, units >= 0 ? units : agreed.units());
    }

    private void publishSeats() {
        long inUse = agreed == null ? 0 : table.seatsInUse(agreed.quantity());
        parent.seatsChanged(key, inUse, table.handles(), hasUnits() ? units : -1, sync.usable().cardinality(),
                round);
    }

    // --- answers -----------------------------------------------------------------------------------------

    /** A backend call's outcome as the rules see it. */
    static BackendAnswer answer(Message reply, Throwable failure) {
        if (failure == null) {
            if (reply instanceof Message.Error error) {
                return error.code() == CmError.TMR_LEASE_REFUSED.code() ? new BackendAnswer.Fenced(error.text())
                        : new BackendAnswer.Refused(error.code(), error.text());
            }
            return new BackendAnswer.Replied(reply);
        }
        Throwable cause = failure instanceof java.util.concurrent.CompletionException && failure.getCause() != null
                ? failure.getCause() : failure;
        if (cause instanceof io.opentmr.protocol.CmFailure refused
                && refused.code() == CmError.TMR_LEASE_REFUSED.code()) {
            return new BackendAnswer.Fenced(refused.text());
        }
        if (cause instanceof io.opentmr.protocol.CmFailure refused
                && refused.code() != CmError.NETWORK_FAULT.code()) {
            return new BackendAnswer.Refused(refused.code(), refused.text());
        }
        return new BackendAnswer.Lost(describe(cause));
    }

    private static String describe(Throwable failure) {
        Throwable cause = failure instanceof java.util.concurrent.CompletionException && failure.getCause() != null
                ? failure.getCause() : failure;
        return cause.getMessage() == null ? cause.toString() : cause.getMessage();
    }

    public static String indices(BitSet backends) {
        StringBuilder text = new StringBuilder("[");
        for (int i = backends.nextSetBit(0); i >= 0; i = backends.nextSetBit(i + 1)) {
            text.append(text.length() > 1 ? "," : "").append(i + 1);
        }
        return text.append(']').toString();
    }
}
