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
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One backend's copy of a TMR license, in memory, behind the {@link PeerLink} the node's actors call. It
 * applies the seat rules of a backend to ALLOCATE (its own small implementation, so that it shares no bug
 * with {@link SeatTable}), is idempotent by handle id and by units operation id, and writes down every
 * acknowledged ALLOCATE with a sequence number shared by the three fakes, so a test can tell what was
 * acknowledged before the node decided. Answers at once, on the caller's thread; "down", it fails every
 * request at once the way a closed peer connection does (ERROR 100).
 */
final class FakeBackend implements PeerLink {

    /** An acknowledged ALLOCATE. */
    record Ack(long sequence, int backend, long handleId) {
    }

    private final int index;
    private final LicenseKey key;
    private final long quantity;
    private final AtomicLong sequence;
    private final TreeMap<Long, Allocation> allocations = new TreeMap<>();
    private final Map<Long, Long> unitOperations = new HashMap<>();
    private final List<Ack> acks = new ArrayList<>();
    private long units;
    private boolean up = true;
    private boolean slow;
    private final List<CompletableFuture<Message>> held = new ArrayList<>();
    private final List<Message> heldAnswers = new ArrayList<>();
    private CompletableFuture<Void> closed = new CompletableFuture<>();

    FakeBackend(int index, LicenseKey key, long quantity, long units, AtomicLong sequence) {
        this.index = index;
        this.key = key;
        this.quantity = quantity;
        this.units = units;
        this.sequence = sequence;
    }

    /** Connection lost: every request fails at once, and so do the answers still on their way. */
    void down() {
        List<CompletableFuture<Message>> lost;
        CompletableFuture<Void> gone;
        synchronized (this) {
            up = false;
            slow = false;
            lost = new ArrayList<>(held);
            held.clear();
            gone = closed;
        }
        lost.forEach(answer -> answer.completeExceptionally(closedError("closed before the answer")));
        gone.complete(null);
    }

    /** Connected again; {@code slow}: requests are carried out but answered only at {@link #open()}. */
    synchronized void up(boolean slowly) {
        up = true;
        slow = slowly;
        closed = new CompletableFuture<>();
    }

    /** Delivers the answers held back, in order, and answers at once from now on. */
    void open() {
        List<CompletableFuture<Message>> delivered;
        List<Message> answers;
        synchronized (this) {
            slow = false;
            delivered = new ArrayList<>(held);
            answers = new ArrayList<>(heldAnswers);
            held.clear();
            heldAnswers.clear();
        }
        for (int i = 0; i < delivered.size(); i++) {
            Message answer = answers.get(i);
            if (answer instanceof Message.Error error) {
                delivered.get(i).completeExceptionally(new CmFailure(error.code(), error.text()));
            } else {
                delivered.get(i).complete(answer);
            }
        }
    }

    /**
     * A request answered at once even while slow: the test's own LIST_ALLOCATIONS and LEASE_ACQUIRE, which
     * stand for what the virtual container and the watcher ask outside the license under test.
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
        Message answer;
        try {
            answer = answer(request);
        } catch (CmFailure refused) {
            answer = new Message.Error(refused.code(), refused.text());
        }
        if (slow) {
            CompletableFuture<Message> later = new CompletableFuture<>();
            held.add(later);
            heldAnswers.add(answer);
            return later;
        }
        return answer instanceof Message.Error error
                ? CompletableFuture.failedFuture(new CmFailure(error.code(), error.text()))
                : CompletableFuture.completedFuture(answer);
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
        acks.add(new Ack(sequence.incrementAndGet(), index, allocation.tmrHandleId()));
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

    private Message grant(String lease, String holder, long epoch, long ttlMillis) {
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
