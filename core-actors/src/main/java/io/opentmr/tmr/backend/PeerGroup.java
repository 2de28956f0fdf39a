package io.opentmr.tmr.backend;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.LeaseCertificate;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Message;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.function.Function;
import java.util.function.LongSupplier;

/**
 * The node's three backend connections and its lease over them, shared by the actors that call backends.
 *
 * <p>The watchers put links in and take them out; the license actors call {@link #call} without an
 * actor hop in between, so a request to a backend costs one network round trip and no more. The lease:
 * each watcher hands in the grant its backend gave; the grants that name the highest epoch form the
 * certificate every peer write carries, valid with two or more. A backend that granted a lower epoch is
 * asked (by its watcher, which reads {@link #targetEpoch()}) to grant the higher one, so the grants of
 * all backends converge on one epoch.
 *
 * <p>Whether the node asks for the active lease at all is a switch ({@link #activeLease()}): a single node
 * always wants it; a twin's standby wants it only while its Pekko lease is acquired, and gives back whatever
 * grants it holds when it stops wanting it, so it never competes with the active node.
 */
public final class PeerGroup {

    private final Clock clock;
    /** The node's monotonic clock in milliseconds (see {@link Moment}); only differences of its readings count. */
    private final LongSupplier monotonicMillis;
    private final PeerLink[] links;
    private final LeaseGrant[] grants;
    /**
     * When each grant runs out by the node's own clocks: the moment its request was sent + the TTL the backend
     * granted (it may cap the TTL asked for), never trusting the backend's clock. The backend starts the TTL
     * when it gets the request, after it was sent, so the node's view never outlives the backend's (see
     * {@link Moment} for why on two clocks).
     */
    private final Moment[] grantExpiry;
    /** The grants the certificate shows (see {@link #granted}) and when each runs out. */
    private final LeaseGrant[] shownGrants;
    private final Moment[] shownExpiry;
    private long targetEpoch;
    /** The certificate and when each of its grants runs out, read and replaced as one. */
    private volatile Shown shown = Shown.NONE;

    /**
     * A certificate and when each of its grants runs out. It stops being one once fewer than two of them are current,
     * which a single moment per clock could not tell: after steps of the wall clock the grants' ends on the two clocks
     * may come in different orders.
     */
    private record Shown(LeaseCertificate certificate, List<Moment> expiries) {

        static final Shown NONE = new Shown(LeaseCertificate.NONE, List.of());

        boolean currentAt(Moment now) {
            int current = 0;
            for (Moment expiry : expiries) {
                current += expiry.reachedBy(now) ? 0 : 1;
            }
            return current >= 2;
        }
    }

    /**
     * A reading of both the node's clocks. A grant runs out when either says its TTL has passed since its request
     * was sent: the monotonic clock, so that a step back of the wall clock does not lengthen it (a node that heard
     * no renewal served on as long as the step, on grants the backends may have let go), and the wall clock, which
     * also counts the time a suspended host was away and the monotonic clock did not see. A step forward of the
     * wall clock cannot be told from such a suspend, so it ends the grants; the next renewals bring them back.
     */
    public record Moment(long wallMillis, long monotonicMillis) {

        Moment plus(long millis) {
            return new Moment(wallMillis + millis, monotonicMillis + millis);
        }

        /** Whether this moment has come by {@code now}, on either clock. */
        boolean reachedBy(Moment now) {
            return now.wallMillis >= wallMillis || now.monotonicMillis >= monotonicMillis;
        }

        /** Milliseconds until this moment on the clock that reaches it first. */
        long after(Moment now) {
            return Math.min(wallMillis - now.wallMillis, monotonicMillis - now.monotonicMillis);
        }

        /** The earlier reading of each clock. */
        static Moment earlier(Moment a, Moment b) {
            return new Moment(Math.min(a.wallMillis, b.wallMillis), Math.min(a.monotonicMillis, b.monotonicMillis));
        }
    }

    private final Duration timeout;

    /** Whether the watchers ask for the active lease (LEASE_ACQUIRE / RENEW) or give it back (LEASE_RELEASE). */
    private boolean leaseWanted;
    /** Not wanted from the start: a Pekko lease switches it (see {@link QuorumLease#onRequest()}). */
    private final boolean leaseOnRequest;
    /**
     * Per backend: it may hold a grant for this node that was not given back (a LEASE_ACQUIRE or RENEW was sent,
     * and no release, refusal or closed connection has ended it since).
     */
    private final boolean[] mayHold;
    /** Per backend: its last answer to a LEASE_ACQUIRE or RENEW was a refusal (another node holds its grant). */
    private final boolean[] refused;
    /** Before then no watcher of a backend in {@link #quietOn} asks for a grant it does not hold. */
    private long quietUntil;
    /** Per backend: left alone until {@link #quietUntil} ({@link #quietAfterStandOff}). */
    private final boolean[] quietOn;
    private final List<CompletableFuture<Void>> heldWaiters = new ArrayList<>();
    private final List<CompletableFuture<Void>> releasedWaiters = new ArrayList<>();
    /** Told (on the changing thread) whenever the wish changes; the watchers turn it into a message to themselves. */
    private final List<Runnable> wishListeners = new CopyOnWriteArrayList<>();
    private final QuorumLease activeLease = new ActiveLease();
    /** Per backend, whether it knows the requests of allocations (docs/protocol.md, LIST_ALLOCATIONS): not yet known. */
    private static final int REQUESTS_UNKNOWN = 0;
    private static final int REQUESTS_KNOWN = 1;
    private static final int REQUESTS_REFUSED = 2;
    /** Per backend, {@link #REQUESTS_UNKNOWN}, {@link #REQUESTS_KNOWN} or {@link #REQUESTS_REFUSED}. */
    private final AtomicIntegerArray requests;
    /** Per backend, {@link #DIGESTS_UNKNOWN}, {@link #DIGESTS_ANSWERED} or {@link #DIGESTS_REFUSED}. */
    private final AtomicIntegerArray digests;
    private static final int DIGESTS_UNKNOWN = 0;
    private static final int DIGESTS_ANSWERED = 1;
    private static final int DIGESTS_REFUSED = 2;
    /** Per backend, re-sync writes that may still be sent ({@link #takeResyncSlots}). */
    private final AtomicIntegerArray resyncSlots;

    /**
     * Re-sync writes in flight to one backend at most, over every license: half a backend's default bound on a node
     * connection's requests in flight ({@code opentmr.backend.max-in-flight-per-peer}, 1024), so that licenses
     * re-syncing a backend that was away leave the other half to the clients' writes (beyond the bound the backend
     * refuses a request with 309, and a client's refused write makes that backend miss it).
     */
    public static final int RESYNC_SLOTS = 512;

    /** A node's monotonic clock: {@link System#nanoTime} in milliseconds. */
    private static final LongSupplier MONOTONIC = () -> TimeUnit.NANOSECONDS.toMillis(System.nanoTime());

    /** A group that always wants the active lease (the single node). */
    public PeerGroup(int backends, Clock clock, Duration timeout) {
        this(backends, clock, timeout, true);
    }

    /**
     * @param timeout     bound on every call, whatever the link's own bound
     * @param leaseWanted whether the watchers ask for the active lease from the start
     */
    public PeerGroup(int backends, Clock clock, Duration timeout, boolean leaseWanted) {
        this(backends, clock, MONOTONIC, timeout, leaseWanted);
    }

    /**
     * @param clock           the wall clock: the grants (see {@link Moment}) and the deadlines of the requests to the
     *                        backends, which they judge by theirs
     * @param monotonicMillis the monotonic clock grants are timed on too, in ms: a node's is {@link System#nanoTime}
     * @param timeout         bound on every call, whatever the link's own bound
     * @param leaseWanted     whether the watchers ask for the active lease from the start
     */
    public PeerGroup(int backends, Clock clock, LongSupplier monotonicMillis, Duration timeout, boolean leaseWanted) {
        this.clock = clock;
        this.monotonicMillis = monotonicMillis;
        this.timeout = timeout;
        this.leaseWanted = leaseWanted;
        this.leaseOnRequest = !leaseWanted;
        this.links = new PeerLink[backends];
        this.grants = new LeaseGrant[backends];
        this.grantExpiry = new Moment[backends];
        this.shownGrants = new LeaseGrant[backends];
        this.shownExpiry = new Moment[backends];
        this.mayHold = new boolean[backends];
        this.refused = new boolean[backends];
        this.quietOn = new boolean[backends];
        this.requests = new AtomicIntegerArray(backends);
        this.digests = new AtomicIntegerArray(backends);
        resyncSlots = new AtomicIntegerArray(backends);
        for (int b = 0; b < backends; b++) {
            resyncSlots.set(b, RESYNC_SLOTS);
        }
    }

    public int size() {
        return links.length;
    }

    /** Now, on both the node's clocks: a request's {@code sentAt} for {@link #granted}. */
    public Moment now() {
        return new Moment(clock.millis(), monotonicMillis.getAsLong());
    }

    public synchronized void linkUp(int backend, PeerLink link) {
        links[backend] = link;
    }

    public synchronized void linkDown(int backend, PeerLink link) {
        if (links[backend] == link) {
            links[backend] = null;
            grants[backend] = null;
            shownGrants[backend] = null;
            // The backend frees a lease whose connection closed (or lets it run out, if it missed the close).
            mayHold[backend] = false;
            refused[backend] = false;
            rebuildCertificate();
            checkReleased();
        }
    }

    /** Whether {@code backend} refused the node's last LEASE_ACQUIRE or RENEW ({@code true}) or granted it. */
    public synchronized void leaseAnswered(int backend, boolean refusedIt) {
        refused[backend] = refusedIt;
    }

    /** How many backends other than {@code backend} refused the node's last lease request: held by another node. */
    public synchronized int refusedOtherThan(int backend) {
        int count = 0;
        for (int b = 0; b < refused.length; b++) {
            if (b != backend && refused[b]) {
                count++;
            }
        }
        return count;
    }

    /**
     * The node gave {@code givenBack}'s grant back in a stand-off: no watcher asks that backend, nor any backend that
     * refused the node (a rival holds its grant), for a grant before {@code until} (epoch millis). Backends that
     * were down or never refused it are not held back: no rival can take them from this node in a swap.
     */
    public synchronized void quietAfterStandOff(int givenBack, long until) {
        for (int b = 0; b < quietOn.length; b++) {
            quietOn[b] = b == givenBack || refused[b];
        }
        quietUntil = until;
    }

    /** Until when the node leaves {@code backend}'s grant to a rival ({@link #quietAfterStandOff}); 0 if not so. */
    public synchronized long quietUntil(int backend) {
        return quietOn[backend] ? quietUntil : 0;
    }

    public synchronized boolean isLinked(int backend) {
        return links[backend] != null;
    }

    /**
     * Records a backend's grant, valid for the TTL the backend granted ({@link LeaseGrant#ttlMillis()}: it may
     * have capped the TTL asked for) from {@code sentAt}, when the request that brought it was sent (read from
     * {@link #now()}; a slow answer shortens the grant, it never lengthens it); returns the epoch the backend should
     * be asked to grant instead, or -1.
     *
     * <p>The certificate keeps a backend's grant while more than half of its lifetime is left, even when a
     * renewal brought a newer one: every new grant in the certificate costs each backend an Ed25519
     * verification, so the certificate changes about once per half lifetime and not at every heartbeat.
     */
    public synchronized long granted(int backend, LeaseGrant grant, Moment sentAt) {
        if (!leaseWanted) {
            // Arrived after the node stopped wanting the lease: the watcher gives it back, it counts for nothing.
            return -1;
        }
        Moment now = now();
        long ttl = grant.ttlMillis();
        grants[backend] = grant;
        grantExpiry[backend] = Moment.earlier(now, sentAt).plus(ttl);
        targetEpoch = Math.max(targetEpoch, grant.epoch());
        LeaseGrant shown = shownGrants[backend];
        boolean keep = shown != null && shown.epoch() == grant.epoch() && shown.holder().equals(grant.holder())
                && shownExpiry[backend].after(now) > ttl / 2;
        if (!keep) {
            shownGrants[backend] = grant;
            shownExpiry[backend] = grantExpiry[backend];
            rebuildCertificate();
        }
        return grant.epoch() < targetEpoch ? targetEpoch : -1;
    }

    public synchronized void grantLost(int backend) {
        grants[backend] = null;
        shownGrants[backend] = null;
        rebuildCertificate();
    }

    // --- the switch: whether the watchers ask for the active lease -------------------------------------------

    /** The active lease as a Pekko lease drives it. */
    public QuorumLease activeLease() {
        return activeLease;
    }

    public synchronized boolean leaseWanted() {
        return leaseWanted;
    }

    /**
     * Starts or stops wanting the active lease. Stopping drops the certificate at once (the node writes with it
     * no more) and the watchers give back the grants their backends hold.
     */
    public void wantLease(boolean wanted) {
        synchronized (this) {
            if (leaseWanted == wanted) {
                return;
            }
            leaseWanted = wanted;
            // A quiet time belongs to the stand-off it was set in: a new wish asks every backend at once.
            Arrays.fill(quietOn, false);
            if (!wanted) {
                Arrays.fill(grants, null);
                Arrays.fill(shownGrants, null);
                rebuildCertificate();
                checkReleased();
            }
        }
        wishListeners.forEach(Runnable::run);
    }

    /** {@code listener} runs whenever {@link #wantLease} changes the wish, on the thread that changed it. */
    public void addWishListener(Runnable listener) {
        wishListeners.add(listener);
    }

    public void removeWishListener(Runnable listener) {
        wishListeners.remove(listener);
    }

    /** The watcher of {@code backend} sent a LEASE_ACQUIRE or RENEW: the backend may hold a grant from now on. */
    public synchronized void asking(int backend) {
        mayHold[backend] = true;
    }

    /** Whether {@code backend} may hold a grant of the node's that was not given back. */
    public synchronized boolean mayHold(int backend) {
        return mayHold[backend];
    }

    /** {@code backend} holds no grant of the node's: it answered a LEASE_RELEASE or refused the lease. */
    public synchronized void givenBack(int backend) {
        mayHold[backend] = false;
        checkReleased();
    }

    private void checkReleased() {
        if (leaseWanted) {
            return;
        }
        for (boolean holds : mayHold) {
            if (holds) {
                return;
            }
        }
        // Completed on another thread: whatever follows must not run under this lock.
        releasedWaiters.forEach(waiter -> waiter.completeAsync(() -> null));
        releasedWaiters.clear();
    }

    private final class ActiveLease implements QuorumLease {

        @Override
        public String name() {
            return LeaseGrant.ACTIVE_LEASE;
        }

        @Override
        public void want(boolean wanted) {
            wantLease(wanted);
        }

        @Override
        public boolean wanted() {
            return leaseWanted();
        }

        @Override
        public boolean onRequest() {
            return leaseOnRequest;
        }

        @Override
        public boolean held() {
            return holdsLease();
        }

        @Override
        public long epoch() {
            List<LeaseGrant> held = certificate().grants();
            return held.size() >= 2 ? held.get(0).epoch() : 0;
        }

        @Override
        public CompletionStage<Void> whenHeld() {
            CompletableFuture<Void> waiter = new CompletableFuture<>();
            synchronized (PeerGroup.this) {
                if (holdsLease()) {
                    waiter.complete(null);
                } else {
                    heldWaiters.removeIf(CompletableFuture::isDone);
                    heldWaiters.add(waiter);
                }
            }
            return waiter;
        }

        @Override
        public CompletionStage<Void> whenReleased() {
            CompletableFuture<Void> waiter = new CompletableFuture<>();
            synchronized (PeerGroup.this) {
                releasedWaiters.removeIf(CompletableFuture::isDone);
                releasedWaiters.add(waiter);
                checkReleased();
            }
            return waiter;
        }
    }

    /**
     * Raises the epoch the watchers ask for to at least {@code epoch} (a group other than the node's first follows
     * the first group's epoch): grants of a lower epoch no longer make the certificate, and the backends that gave
     * them are asked for this one.
     */
    public synchronized void followEpoch(long epoch) {
        if (epoch > targetEpoch) {
            targetEpoch = epoch;
            rebuildCertificate();
        }
    }

    /** The epoch a fresh LEASE_ACQUIRE proposes: the highest seen, or 1 before any grant. */
    public synchronized long targetEpoch() {
        return Math.max(1, targetEpoch);
    }

    /** The current certificate (empty when fewer than two backends granted the current epoch). */
    public LeaseCertificate certificate() {
        Shown current = shown;
        if (current != Shown.NONE && !current.currentAt(now())) {
            synchronized (this) {
                rebuildCertificate();
                current = shown;
            }
        }
        return current.certificate();
    }

    /** Whether the node holds the active lease now: grants of two backends for the target epoch, unexpired. */
    public boolean holdsLease() {
        return certificate().grants().size() >= 2;
    }

    /** Unexpired grants the node holds now, of any epoch (two of one epoch make the certificate). */
    public synchronized int grantsHeld() {
        Moment now = now();
        int held = 0;
        for (int i = 0; i < grants.length; i++) {
            held += grants[i] != null && !grantExpiry[i].reachedBy(now) ? 1 : 0;
        }
        return held;
    }

    public synchronized long epoch() {
        return targetEpoch;
    }

    /** The epoch of the unexpired grant {@code backend} gave this node, or -1 when it holds none. */
    public synchronized long grantEpoch(int backend) {
        LeaseGrant grant = grants[backend];
        return grant != null && !grantExpiry[backend].reachedBy(now()) ? grant.epoch() : -1;
    }

    private void rebuildCertificate() {
        Moment now = now();
        List<LeaseGrant> current = new ArrayList<>(shownGrants.length);
        List<Moment> expiries = new ArrayList<>(shownGrants.length);
        for (int i = 0; i < shownGrants.length; i++) {
            if (shownGrants[i] != null && shownGrants[i].epoch() == targetEpoch && !shownExpiry[i].reachedBy(now)) {
                current.add(shownGrants[i]);
                expiries.add(shownExpiry[i]);
            }
        }
        if (current.size() >= 2) {
            shown = new Shown(new LeaseCertificate(current), List.copyOf(expiries));
            heldWaiters.forEach(waiter -> waiter.completeAsync(() -> null));
            heldWaiters.clear();
        } else {
            shown = Shown.NONE;
        }
    }

    /**
     * The deadline of an ALLOCATE or FREE sent now (epoch milliseconds): when {@link #call} stops waiting for
     * its answer. A backend that gets to it later does not carry it out.
     */
    public long deadline() {
        return clock.millis() + timeout.toMillis();
    }

    /**
     * Sends a request to one backend; the certificate is put in at the moment of sending. Fails at once
     * (ERROR 100) when the backend is not connected.
     */
    public CompletionStage<Message> call(int backend, Function<LeaseCertificate, Message> request) {
        PeerLink link;
        synchronized (this) {
            link = links[backend];
        }
        if (link == null) {
            return CompletableFuture.failedFuture(new CmFailure(CmError.NETWORK_FAULT,
                    "backend " + (backend + 1) + " is not connected"));
        }
        LeaseCertificate shownThen = certificate();
        CompletableFuture<Message> sent = link.request(request.apply(shownThen)).toCompletableFuture();
        Duration own = link.requestTimeout();
        // A link that bounds its requests within ours needs no second timer (each cost the JDK's delay thread a
        // queue insertion, a removal and now and then a wake-up).
        if (own == null || own.compareTo(timeout) > 0) {
            sent.orTimeout(timeout.toMillis(), TimeUnit.MILLISECONDS);
        }
        // A refusal is looked at before the caller hears of it, so that a write the caller sends at once carries the
        // certificate it leads to; the caller sees the answer's own failure, not one wrapped by a further stage.
        CompletableFuture<Message> answer = new CompletableFuture<>();
        sent.whenComplete((reply, failure) -> {
            if (refusedAsExpired(reply, failure)) {
                certificateRefused(shownThen);
            }
            if (failure != null) {
                answer.completeExceptionally(failure);
            } else {
                answer.complete(reply);
            }
        });
        return answer;
    }

    private static boolean refusedAsExpired(Message reply, Throwable failure) {
        Throwable cause = failure instanceof CompletionException ? failure.getCause() : failure;
        String text = reply instanceof Message.Error error && error.code() == CmError.TMR_LEASE_REFUSED.code()
                ? error.text()
                : cause instanceof CmFailure refused && refused.code() == CmError.TMR_LEASE_REFUSED.code()
                ? refused.text() : null;
        return text != null && text.startsWith(LeaseCertificate.REFUSED_AS_EXPIRED);
    }

    /**
     * A backend refused {@code refused}, the certificate a write carried, as expired by its clock. If it is still the
     * one shown, the certificate shows the newest grants from now on: it keeps a grant while more than half of its
     * lifetime is left (see {@link #granted}), and a backend whose clock stepped forward may count that grant as run
     * out, from its issue time, while it counts the renewal that replaced it as current. Until then every write would
     * be refused. Refusals for other reasons (a rival's higher epoch) are no matter for newer grants.
     */
    synchronized void certificateRefused(LeaseCertificate refused) {
        if (shown.certificate() != refused) {
            return;
        }
        boolean newer = false;
        Moment now = now();
        for (int i = 0; i < grants.length; i++) {
            if (grants[i] != null && grants[i] != shownGrants[i] && !grantExpiry[i].reachedBy(now)) {
                shownGrants[i] = grants[i];
                shownExpiry[i] = grantExpiry[i];
                newer = true;
            }
        }
        if (newer) {
            rebuildCertificate();
        }
    }

    /**
     * Whether the node's listings of {@code backend} ask for the requests of its allocations: unless the backend
     * refused that (an older one; docs/protocol.md, LIST_ALLOCATIONS).
     */
    public boolean asksForRequests(int backend) {
        return requests.get(backend) != REQUESTS_REFUSED;
    }

    /**
     * Whether the node's ALLOCATEs to {@code backend} name their request: once a listing of it answered with requests
     * (a backend older than the field would refuse the frame and close the connection).
     */
    public boolean namesRequests(int backend) {
        return requests.get(backend) == REQUESTS_KNOWN;
    }

    /** A listing of {@code backend} answered with requests ({@code true}) or refused them ({@code false}). */
    public void requestsAnswered(int backend, boolean known) {
        requests.set(backend, known ? REQUESTS_KNOWN : REQUESTS_REFUSED);
    }

    /**
     * Whether the standby may ask {@code backend} for digests of its allocations (LIST_DIGESTS): unless it refused
     * them. An older backend refuses the request by closing the connection, which would cost a lease holder its grant
     * there: only a node without the lease finds that out ({@link #digestsKnown}).
     */
    public boolean mayAskForDigests(int backend) {
        return digests.get(backend) != DIGESTS_REFUSED;
    }

    /**
     * Whether {@code backend} answered LIST_DIGESTS while this node runs: a take-over asks it for digests, and lists a
     * backend not known to answer them whole.
     */
    public boolean digestsKnown(int backend) {
        return digests.get(backend) == DIGESTS_ANSWERED;
    }

    /** How {@code backend} took LIST_DIGESTS: answered, or refused (an older backend; docs/protocol.md). */
    public void digestsAnswered(int backend, boolean answered) {
        digests.set(backend, answered ? DIGESTS_ANSWERED : DIGESTS_REFUSED);
    }

    /**
     * Takes up to {@code wanted} of {@code backend}'s re-sync slots ({@link #RESYNC_SLOTS}); returns how many were
     * taken, 0 when every slot is in use. Each write sent on a slot gives it back when it is answered or fails
     * ({@link #releaseResyncSlots}).
     */
    public int takeResyncSlots(int backend, int wanted) {
        while (true) {
            int free = resyncSlots.get(backend);
            int taken = Math.min(free, Math.max(0, wanted));
            if (taken == 0 || resyncSlots.compareAndSet(backend, free, free - taken)) {
                return taken;
            }
        }
    }

    /** Gives back {@code slots} of {@code backend}'s re-sync slots. */
    public void releaseResyncSlots(int backend, int slots) {
        resyncSlots.addAndGet(backend, slots);
    }
}
