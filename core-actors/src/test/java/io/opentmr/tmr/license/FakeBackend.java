package io.opentmr.tmr.license;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.LeaseCertificate;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.backend.PeerLink;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;

/**
 * One backend's copy of a TMR license, in memory, behind the {@link PeerLink} the node's actors call. It
 * applies the seat rules of a backend to ALLOCATE (its own small implementation, so that it shares no bug
 * with {@link SeatTable}), and is idempotent by handle id and by units operation id.
 *
 * <p>Nothing happens on its own: like a network the test drives by hand, a request waits in the link's
 * inbox until {@link #deliverRequest()} carries it out (in the order sent, as over one TCP connection),
 * and its answer waits in the outbox until {@link #deliverAnswer(int)} hands it to the node, in whatever
 * order the test picks, so answers of one backend overtake each other and those of the others. An
 * acknowledged ALLOCATE is written down with a sequence number shared by the three fakes at the moment
 * the node gets the answer, so a test can tell which acknowledgements the node had when it decided.
 * {@link #timeOut} fails a request the way the node's bound on a call does, with the request still on its
 * way (carried out later) or lost. "Down", it fails every request at once and every one in flight, the
 * way a closed peer connection does (ERROR 100).
 */
final class FakeBackend implements PeerLink {

    /** An acknowledged ALLOCATE, as the node received it. */
    record Ack(long sequence, int backend, long handleId) {
    }

    /** A request on its way: in the inbox (not carried out yet), or carried out with its answer in the outbox. */
    private static final class Call {
        final Message request;
        final CompletableFuture<Message> future = new CompletableFuture<>();
        Message answer;

        Call(Message request) {
            this.request = request;
        }
    }

    private final int index;
    private final LicenseKey key;
    private final long quantity;
    private final AtomicLong sequence;
    private final TreeMap<Long, Allocation> allocations = new TreeMap<>();
    private final Map<Long, Long> unitOperations = new HashMap<>();
    private final List<Ack> acks = new ArrayList<>();
    private final ArrayDeque<Call> inbox = new ArrayDeque<>();
    private final List<Call> outbox = new ArrayList<>();
    private long units;
    /** The most requests that were sent and not answered at one time, since {@link #countOutstandingFromNow}. */
    private int mostOutstanding;
    private long grantedEpoch;
    /** Every request sent to this backend over its link, in order. */
    private final List<Message> received = new ArrayList<>();
    private boolean up = true;
    private CompletableFuture<Void> closed = new CompletableFuture<>();

    FakeBackend(int index, LicenseKey key, long quantity, long units, AtomicLong sequence) {
        this.index = index;
        this.key = key;
        this.quantity = quantity;
        this.units = units;
        this.sequence = sequence;
    }

    /** Connection lost: requests in flight are lost (not carried out) and their answers fail, as do later ones. */
    void down() {
        List<Call> lost;
        CompletableFuture<Void> gone;
        synchronized (this) {
            up = false;
            lost = new ArrayList<>(inbox);
            lost.addAll(outbox);
            inbox.clear();
            outbox.clear();
            gone = closed;
        }
        lost.forEach(call -> call.future.completeExceptionally(closedError("closed before the answer")));
        gone.complete(null);
    }

    /** The most requests that were sent to this backend and not answered at one time, since the last call. */
    synchronized int countOutstandingFromNow() {
        int most = mostOutstanding;
        mostOutstanding = inbox.size() + outbox.size();
        return most;
    }

    synchronized void up() {
        up = true;
        closed = new CompletableFuture<>();
    }

    /** Carries out the oldest request in flight; false when there is none. */
    synchronized boolean deliverRequest() {
        Call call = inbox.poll();
        if (call == null) {
            return false;
        }
        try {
            call.answer = answer(call.request);
        } catch (CmFailure refused) {
            call.answer = new Message.Error(refused.code(), refused.text());
        }
        if (!call.future.isDone()) {
            outbox.add(call);
        }
        return true;
    }

    /**
     * Carries out every request sent so far, in the order sent: what the backend does before it reads a request
     * sent after them on the same connection (a re-sync's listing). Their answers stay on their way.
     */
    synchronized void carryOutAll() {
        while (deliverRequest()) {
            // in the order sent
        }
    }

    /**
     * Hands the node the answer number {@code pick} (modulo those waiting); with none waiting, carries out
     * the oldest request first. False when nothing is in flight.
     */
    boolean deliverAnswer(int pick) {
        Call call;
        synchronized (this) {
            while (outbox.isEmpty() && !inbox.isEmpty()) {
                deliverRequest();
            }
            if (outbox.isEmpty()) {
                return false;
            }
            call = outbox.remove(pick % outbox.size());
            if (call.request instanceof Message.Allocate allocate && call.answer instanceof Message.Ok) {
                acks.add(new Ack(sequence.incrementAndGet(), index, allocate.allocation().tmrHandleId()));
            }
        }
        if (call.answer instanceof Message.Error error) {
            call.future.completeExceptionally(new CmFailure(error.code(), error.text()));
        } else {
            call.future.complete(call.answer);
        }
        return true;
    }

    /**
     * The node's bound on call number {@code pick} of those in flight that {@code which} accepts (inbox
     * first, then outbox) runs out: the node gets a timeout. A request not carried out yet is {@code lost},
     * or carried out later all the same.
     */
    boolean timeOut(int pick, boolean lost, Predicate<Message> which) {
        Call call;
        synchronized (this) {
            List<Call> candidates = new ArrayList<>();
            inbox.stream().filter(c -> !c.future.isDone() && which.test(c.request)).forEach(candidates::add);
            outbox.stream().filter(c -> which.test(c.request)).forEach(candidates::add);
            if (candidates.isEmpty()) {
                return false;
            }
            call = candidates.get(pick % candidates.size());
            if (!inbox.contains(call) || lost) {
                inbox.remove(call);
                outbox.remove(call);
            }
        }
        call.future.completeExceptionally(new TimeoutException("the test timed out a call to " + backendName()));
        return true;
    }

    synchronized int requestsInFlight() {
        return inbox.size();
    }

    synchronized int answersInFlight() {
        return outbox.size();
    }

    /** Whether a unit counter request is on its way or its answer is. */
    synchronized boolean unitsInFlight() {
        return inbox.stream().anyMatch(call -> call.request instanceof Message.PeerUnits)
                || outbox.stream().anyMatch(call -> call.request instanceof Message.PeerUnits);
    }

    /**
     * A request answered at once, past the requests in flight: the test's own LIST_ALLOCATIONS and
     * LEASE_ACQUIRE, which stand for what the virtual container and the watcher ask outside the license (the
     * test carries out the requests sent before a listing first, see {@link #carryOutAll}).
     */
    synchronized Message now(Message request) {
        return answer(request);
    }

    private CmFailure closedError(String what) {
        return new CmFailure(CmError.NETWORK_FAULT, "the connection to " + backendName() + " " + what);
    }

    synchronized boolean isUp() {
        return up;
    }

    synchronized Set<Long> held() {
        return new HashSet<>(allocations.keySet());
    }

    synchronized long units() {
        return units;
    }

    synchronized List<Ack> acks() {
        return List.copyOf(acks);
    }

    /** A PEER_CRYPT result: any deterministic transform of the data that all copies share. */
    static Bytes transform(long encryptionCode, Bytes data) {
        byte[] out = data.toArray();
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) (out[i] ^ (encryptionCode + i));
        }
        return Bytes.of(out);
    }

    @Override
    public synchronized CompletionStage<Message> request(Message request) {
        if (!up) {
            return CompletableFuture.failedFuture(closedError("is closed"));
        }
        Call call = new Call(request);
        inbox.add(call);
        received.add(request);
        mostOutstanding = Math.max(mostOutstanding, inbox.size() + outbox.size());
        return call.future;
    }

    private Message answer(Message request) {
        if (request instanceof Message.Allocate allocate) {
            certified(allocate.certificate());
            return allocate(allocate.allocation());
        } else if (request instanceof Message.Free free) {
            certified(free.certificate());
            allocations.remove(free.tmrHandleId());
            return new Message.Ok();
        } else if (request instanceof Message.ListAllocations list) {
            List<Allocation> page = new ArrayList<>();
            var next = allocations.tailMap(list.afterHandleId(), false).values().iterator();
            while (next.hasNext() && page.size() < list.maxItems()) {
                page.add(next.next());
            }
            return new Message.AllocationList(page, next.hasNext());
        } else if (request instanceof Message.PeerUnits peerUnits) {
            return units(peerUnits);
        } else if (request instanceof Message.PeerCrypt crypt) {
            certified(crypt.certificate());
            return new Message.CryptOk(transform(crypt.encryptionCode(), crypt.data()));
        } else if (request instanceof Message.LeaseAcquire acquire) {
            return grant(acquire.leaseName(), acquire.holder(), acquire.proposedEpoch(), acquire.ttlMillis());
        } else if (request instanceof Message.LeaseRenew renew) {
            return grant(renew.leaseName(), renew.holder(), renew.epoch(), renew.ttlMillis());
        }
        throw new CmFailure(CmError.INVALID_PARAMETER, "the fake backend does not answer " + request.type());
    }

    /** Like a backend, a write without grants of two backends is refused (the grants are not verified). */
    private static void certified(LeaseCertificate certificate) {
        if (certificate.grants().size() < 2) {
            throw new CmFailure(CmError.TMR_LEASE_REFUSED, "write without a lease certificate");
        }
    }

    private Message allocate(Allocation allocation) {
        if (!allocation.key().equals(key)) {
            throw new CmFailure(CmError.ENTRY_NOT_FOUND, "no TMR copy " + allocation.key());
        }
        if (!allocations.containsKey(allocation.tmrHandleId())) {
            refusal(allocation.accessMode(), allocation.owner().host());
            allocations.put(allocation.tmrHandleId(), allocation);
        }
        return new Message.Ok();
    }

    private void refusal(AccessMode mode, String station) {
        boolean exclusive = allocations.values().stream().anyMatch(a -> a.accessMode() == AccessMode.EXCLUSIVE);
        if (exclusive || mode == AccessMode.EXCLUSIVE && !allocations.isEmpty()) {
            throw new CmFailure(CmError.EXCLUSIVE_CONFLICT, backendName() + ": exclusive conflict");
        }
        long userLimit = allocations.values().stream().filter(a -> a.accessMode() == AccessMode.USERLIMIT).count();
        Set<String> stations = new HashSet<>();
        allocations.values().stream().filter(a -> a.accessMode() == AccessMode.STATIONSHARE)
                .forEach(a -> stations.add(a.owner().host()));
        long inUse = userLimit + stations.size();
        boolean full = switch (mode) {
            case USERLIMIT -> inUse >= quantity;
            case STATIONSHARE -> !stations.contains(station) && inUse >= quantity;
            case EXCLUSIVE -> quantity == 0;
            case NOUSERLIMIT -> false;
        };
        if (full) {
            throw new CmFailure(CmError.NO_MORE_LICENSES, backendName() + ": all " + quantity + " seats in use");
        }
    }

    private Message units(Message.PeerUnits request) {
        switch (request.operation()) {
            case READ -> {
                return new Message.UnitsOk(units);
            }
            case SET -> certified(request.certificate());
            case DECREMENT -> certified(request.certificate());
        }
        Long earlier = unitOperations.get(request.operationId());
        if (earlier != null) {
            return new Message.UnitsOk(earlier);
        }
        switch (request.operation()) {
            case SET -> units = request.value();
            case DECREMENT -> {
                if (request.value() > units) {
                    throw units == 0
                            ? new CmFailure(CmError.UNIT_COUNTER_ZERO, backendName() + ": units zero")
                            : new CmFailure(CmError.UNIT_COUNTER_TOO_SMALL, backendName() + ": " + units + " units");
                }
                units -= request.value();
            }
            case READ -> throw new AssertionError("answered above");
        }
        unitOperations.put(request.operationId(), units);
        return new Message.UnitsOk(units);
    }

    /** The requests sent to this backend over its link from number {@code from} on (0: the first). */
    synchronized List<Message> receivedFrom(int from) {
        return new ArrayList<>(received.subList(Math.min(from, received.size()), received.size()));
    }

    synchronized int receivedCount() {
        return received.size();
    }

    /** The epoch of the lease this backend granted last (0: none yet): what a listing of it is taken under. */
    synchronized long grantedEpoch() {
        return grantedEpoch;
    }

    private Message grant(String lease, String holder, long epoch, long ttlMillis) {
        grantedEpoch = Math.max(1, epoch);
        return new Message.LeaseGranted(new LeaseGrant(lease, holder, Math.max(1, epoch), System.currentTimeMillis(),
                ttlMillis, new Serial(Serial.MASK_SOFTWARE, index + 1), Bytes.of(new byte[64])));
    }

    @Override
    public synchronized CompletionStage<Void> closed() {
        return closed;
    }

    @Override
    public String backendName() {
        return "fake-" + (index + 1);
    }

    @Override
    public void close() {
        down();
    }
}
