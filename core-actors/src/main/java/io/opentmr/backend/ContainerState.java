package io.opentmr.backend;

import io.opentmr.backend.ContainerEvent.AllocationAdded;
import io.opentmr.backend.ContainerEvent.AllocationBorrowed;
import io.opentmr.backend.ContainerEvent.AllocationFreed;
import io.opentmr.backend.ContainerEvent.BorrowEnded;
import io.opentmr.backend.ContainerEvent.BorrowStarted;
import io.opentmr.backend.ContainerEvent.HandleOpened;
import io.opentmr.backend.ContainerEvent.HandleReclaimed;
import io.opentmr.backend.ContainerEvent.HandleReleased;
import io.opentmr.backend.ContainerEvent.HandleResumed;
import io.opentmr.backend.ContainerEvent.LeaseEpochRaised;
import io.opentmr.backend.ContainerEvent.LicenseUpdated;
import io.opentmr.backend.ContainerEvent.PeerUnitsChanged;
import io.opentmr.backend.ContainerEvent.UnitsDecremented;
import io.opentmr.backend.ContainerEvent.UsagePeriodStarted;
import io.opentmr.license.LicenseUpdate;
import io.opentmr.license.ProductItemSpec;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.AllocationDigests;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.GroupKeyStatement;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.UnitsOperation;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The business rules of one container: which access is granted, which refused and with which
 * CodeMeter number. Commands only decide ({@link Decision}); {@link #apply} changes the state, so
 * the same events rebuild it on recovery.
 *
 * <p>Unlike the immutable state records elsewhere, this state is mutable: a backend holds thousands
 * of handles and an immutable copy per event would cost O(handles) per access. It is owned by one
 * actor and never shared.
 */
public final class ContainerState {

    /** Decrement results kept per handle for retries; they go with the handle. */
    public static final int RECENT_OPERATIONS_PER_HANDLE = 64;

    /**
     * An ACCESS request.
     *
     * @param tokenDigest SHA-256 (hex) of the resume token the server generated for the new handle
     * @param tmrPeer     whether the caller is an authenticated TMR node (only those may use TMR copies)
     * @param station     the client's peer address, what STATIONSHARE counts
     */
    public record AccessRequest(long firmCode, long productCode, long featureBits, AccessMode mode,
                                HandleOwner owner, String tokenDigest, boolean tmrPeer, String station,
                                Integer requestId) {

        /** A request without the client's request id: no re-sent copy of it will be recognised. */
        public AccessRequest(long firmCode, long productCode, long featureBits, AccessMode mode, HandleOwner owner,
                             String tokenDigest, boolean tmrPeer, String station) {
            this(firmCode, productCode, featureBits, mode, owner, tokenDigest, tmrPeer, station, null);
        }

        private RequestKey key() {
            return requestId == null ? null : new RequestKey(station, owner.host(), owner.user(), owner.pid(),
                    requestId, firmCode, productCode, featureBits, mode);
        }
    }

    /** How long, and for how many handles, a re-sent ACCESS finds the handle the first one opened. */
    static final Duration GRANT_MEMORY = Duration.ofMinutes(1);
    static final int RECENT_GRANTS = 100_000;

    /** A re-sent ACCESS is the same request from the same station and process: every field must match. */
    private record RequestKey(String station, String host, String user, long pid, int requestId, long firmCode,
                              long productCode, long featureBits, AccessMode mode) {

        static RequestKey of(Handle handle) {
            return handle.requestId() == null ? null : new RequestKey(handle.station(), handle.owner().host(),
                    handle.owner().user(), handle.owner().pid(), handle.requestId(), handle.item().firmCode(),
                    handle.item().productCode(), handle.featureBits(), handle.mode());
        }
    }

    private final Serial serial;
    private final long cmActId;
    private final Map<Long, Long> firmUpdateCounters = new HashMap<>();
    private final Map<LicenseKey, ItemState> items = new LinkedHashMap<>();
    private final Map<Long, Handle> handles = new HashMap<>();
    /**
     * Handles opened lately, by the ACCESS that opened them, oldest first: at most {@link #RECENT_GRANTS}, none
     * older than {@link #GRANT_MEMORY} before the newest. Derived from the handles, so journaled with them and
     * the same after a restart.
     */
    private final LinkedHashMap<RequestKey, Long> recentRequests = new LinkedHashMap<>();
    private final Map<Long, Borrow> borrows = new HashMap<>();
    /** TMR allocations borrowed through a node, by the node's handle id. */
    private final Map<Long, TmrBorrow> tmrBorrows = new HashMap<>();
    /** Highest epoch granted or seen per lease name: grants only go above it. */
    private final Map<String, Long> leaseEpochs = new HashMap<>();
    /** Who holds (or held) the highest epoch per lease name; absent when unknown (older journals). */
    private final Map<String, String> leaseHolders = new HashMap<>();
    /** TMR nodes' allocations by TMR handle id, ordered unsigned as LIST_ALLOCATIONS pages them. */
    private final TreeMap<Long, TmrAllocation> allocations = new TreeMap<>(Long::compareUnsigned);
    /** PEER_UNITS results by TMR copy and operation id: a retried DECREMENT or SET finds its result here. */
    private final PeerUnitMemory peerUnitMemory;
    /** handle id → operation id → units left after it: a retried decrement finds its result here. */
    private final Map<Long, LinkedHashMap<Long, Long>> recentDecrements = new HashMap<>();
    private long nextHandleId = 1;
    private long nextTicketId = 1;

    public ContainerState(Serial serial, long cmActId) {
        this(serial, cmActId, BackendSettings.Units.DEFAULT);
    }

    public ContainerState(Serial serial, long cmActId, BackendSettings.Units units) {
        this.serial = serial;
        this.cmActId = cmActId;
        this.peerUnitMemory = new PeerUnitMemory(units);
    }

    public Serial serial() {
        return serial;
    }

    public long cmActId() {
        return cmActId;
    }

    public Map<Long, Long> firmUpdateCounters() {
        return Map.copyOf(firmUpdateCounters);
    }

    /** One product item as the protocol shows it, or {@code null} if the container has none with that key. */
    public ProductInfo product(LicenseKey key) {
        ItemState item = items.get(key);
        return item == null ? null : item.toProductInfo();
    }

    public List<ProductInfo> products() {
        return items.values().stream().map(ItemState::toProductInfo).toList();
    }

    /** The terms of a product item, or {@code null} if the container has none with that key. */
    public ProductItemSpec spec(LicenseKey key) {
        ItemState item = items.get(key);
        return item == null ? null : item.spec;
    }

    public boolean hasHandle(long handleId) {
        return handles.containsKey(handleId);
    }

    /** The id the next handle opened gets. */
    public long nextHandleId() {
        return nextHandleId;
    }

    /**
     * The open handle that this same ACCESS (station, owner's host, user and pid, request id, product, features,
     * mode) opened within {@link #GRANT_MEMORY}: a re-sent request whose reply was lost; or null.
     */
    public Handle retried(AccessRequest request, Instant now) {
        RequestKey key = request.key();
        Long id = key == null ? null : recentRequests.get(key);
        Handle handle = id == null ? null : handles.get(id);
        return handle != null && handle.openedAt().plus(GRANT_MEMORY).isAfter(now) ? handle : null;
    }

    public Collection<Handle> handles() {
        return List.copyOf(handles.values());
    }

    public int handleCount() {
        return handles.size();
    }

    public int borrowCount() {
        return borrows.size();
    }

    public int productCount() {
        return items.size();
    }

    public int allocationCount() {
        return allocations.size();
    }

    public Collection<Borrow> borrows() {
        return List.copyOf(borrows.values());
    }

    // ---------------------------------------------------------------- licenses

    /** Applies a verified update file if it is for this container and carries the next firm update counter. */
    public Decision<LicenseUpdate> applyUpdate(LicenseUpdate update, Instant now) {
        if (!update.targetSerial().equals(serial)) {
            return Decision.refuse(CmError.BOX_NOT_FOUND,
                    "license update is for container " + update.target() + ", this is " + serial);
        }
        if (update.cmActId() != cmActId) {
            return Decision.refuse(CmError.BOX_NOT_FOUND, "license update is for CmActId " + update.cmActId()
                    + ", container " + serial + " has " + cmActId);
        }
        long expected = firmUpdateCounters.getOrDefault(update.firmCode(), 0L) + 1;
        if (update.firmUpdateCounter() != expected) {
            String why = update.firmUpdateCounter() < expected ? "already applied (replay)" : "out of order";
            return Decision.refuse(CmError.ACCESS_DENIED, "license update for firm " + update.firmCode()
                    + " carries firm update counter " + update.firmUpdateCounter() + ", container " + serial
                    + " expects " + expected + ": " + why);
        }
        return Decision.accept(update, new LicenseUpdated(update, now));
    }

    // ---------------------------------------------------------------- access and release

    public Decision<Handle> access(AccessRequest request, Instant now) {
        List<ItemState> candidates = items.values().stream()
                .filter(i -> i.firmCode == request.firmCode() && i.spec.productCode() == request.productCode())
                .toList();
        if (candidates.isEmpty()) {
            return Decision.refuse(CmError.ENTRY_NOT_FOUND, "no product item " + request.firmCode() + ":"
                    + request.productCode() + " in container " + serial);
        }
        Decision.Refuse<Handle> reported = null;
        for (ItemState item : candidates) {
            Decision.Refuse<Handle> refusal = check(item, request, now);
            if (refusal == null) {
                return grant(item, request, now);
            }
            // A full or conflicting item says more than another copy that is expired or TMR-only.
            if (reported == null || isCapacity(refusal.error()) && !isCapacity(reported.error())) {
                reported = refusal;
            }
        }
        return reported;
    }

    private Decision.Refuse<Handle> check(ItemState item, AccessRequest request, Instant now) {
        ProductItemSpec spec = item.spec;
        String name = item.key().toString();
        if (spec.tmrId() != 0 && !request.tmrPeer()) {
            return new Decision.Refuse<>(CmError.ACCESS_DENIED, "product item " + name
                    + " is a TMR copy, served only to an authenticated TMR node");
        }
        if ((spec.featureMap() & request.featureBits()) != request.featureBits()) {
            return new Decision.Refuse<>(CmError.ENTRY_NOT_FOUND, "product item " + name + " has feature map 0x"
                    + Long.toHexString(spec.featureMap()) + ", without requested bits 0x"
                    + Long.toHexString(request.featureBits() & ~spec.featureMap()));
        }
        if (spec.activatesAt() != null && now.isBefore(spec.activatesAt())) {
            return new Decision.Refuse<>(CmError.NOT_YET_ACTIVATED, "product item " + name + " activates at "
                    + spec.activatesAt());
        }
        if (spec.expiresAt() != null && !now.isBefore(spec.expiresAt())) {
            return new Decision.Refuse<>(CmError.EXPIRED, "product item " + name + " expired at " + spec.expiresAt());
        }
        if (spec.usagePeriod() != null && item.usageStartedAt != null) {
            if (now.isBefore(item.usageStartedAt)) {
                return new Decision.Refuse<>(CmError.USAGE_PERIOD_START_INVALID, "usage period of " + name
                        + " started at " + item.usageStartedAt + ", after the server's time " + now);
            }
            Instant end = item.usageStartedAt.plus(spec.usagePeriod());
            if (!now.isBefore(end)) {
                return new Decision.Refuse<>(CmError.USAGE_PERIOD_ELAPSED, "usage period of " + name
                        + " ended at " + end);
            }
        }
        if (item.exclusive()) {
            return new Decision.Refuse<>(CmError.EXCLUSIVE_CONFLICT, "product item " + name
                    + " is held EXCLUSIVE by " + item.exclusiveHolder());
        }
        switch (request.mode()) {
            case EXCLUSIVE -> {
                if (item.users() > 0) {
                    return new Decision.Refuse<>(CmError.EXCLUSIVE_CONFLICT, "EXCLUSIVE access to " + name
                            + " while " + item.users() + " handle(s) or borrow(s) use it");
                }
                if (spec.quantity() == 0) {
                    return noSeat(item);
                }
            }
            case USERLIMIT -> {
                if (item.seatsInUse() >= spec.quantity()) {
                    return noSeat(item);
                }
            }
            case STATIONSHARE -> {
                if (!item.stationHoldsStationShare(request.station()) && item.seatsInUse() >= spec.quantity()) {
                    return noSeat(item);
                }
            }
            case NOUSERLIMIT -> {
                // takes no seat
            }
        }
        return null;
    }

    private static Decision.Refuse<Handle> noSeat(ItemState item) {
        return new Decision.Refuse<>(CmError.NO_MORE_LICENSES, "all " + item.spec.quantity() + " seat(s) of "
                + item.key() + " are in use");
    }

    private static boolean isCapacity(CmError error) {
        return error == CmError.NO_MORE_LICENSES || error == CmError.EXCLUSIVE_CONFLICT;
    }

    private Decision<Handle> grant(ItemState item, AccessRequest request, Instant now) {
        List<ContainerEvent> events = new ArrayList<>(2);
        if (item.spec.usagePeriod() != null && item.usageStartedAt == null) {
            events.add(new UsagePeriodStarted(item.key(), now));
        }
        HandleOpened opened = new HandleOpened(nextHandleId, item.key(), request.mode(), request.featureBits(),
                request.owner(), request.tokenDigest(), now, request.station(), request.requestId());
        events.add(opened);
        return new Decision.Accept<>(events, new Handle(opened.handleId(), opened.item(), opened.mode(),
                opened.featureBits(), opened.owner(), opened.tokenDigest(), now, opened.station(),
                opened.requestId()));
    }

    /** The handle, if it exists and belongs to {@code sessionId}; otherwise 106. */
    public Decision<Handle> handle(long handleId, long sessionId) {
        Handle handle = handles.get(handleId);
        if (handle == null) {
            return Decision.refuse(CmError.INVALID_HANDLE, "no open handle " + handleId);
        }
        if (handle.owner().sessionId() != sessionId) {
            return Decision.refuse(CmError.INVALID_HANDLE, "handle " + handleId + " belongs to another session");
        }
        return Decision.accept(handle);
    }

    public Decision<Handle> release(long handleId, long sessionId, Instant now) {
        Decision<Handle> owned = handle(handleId, sessionId);
        if (owned instanceof Decision.Accept<Handle> accept) {
            return Decision.accept(accept.reply(), new HandleReleased(handleId, now));
        }
        return owned;
    }

    /** Re-attaches a handle to a new session: the token's digest must match. */
    public Decision<Handle> resume(long handleId, String tokenDigest, long newSessionId, Instant now) {
        Handle handle = handles.get(handleId);
        if (handle == null || !handle.tokenDigest().equals(tokenDigest)) {
            // One answer for both, so a wrong token does not reveal that the handle exists.
            return Decision.refuse(CmError.INVALID_HANDLE, "no open handle " + handleId + " with this resume token");
        }
        return Decision.accept(handle, new HandleResumed(handleId, newSessionId, now));
    }

    /** Takes back a handle whose client went silent for the cleanup timeout. */
    public Decision<Handle> reclaim(long handleId, Instant now) {
        Handle handle = handles.get(handleId);
        if (handle == null) {
            return Decision.refuse(CmError.INVALID_HANDLE, "no open handle " + handleId);
        }
        return Decision.accept(handle, new HandleReclaimed(handleId, now));
    }


    // ---------------------------------------------------------------- units

    /**
     * Subtracts units atomically; never below zero. A retry with the same handle and operation id gets
     * the first result and subtracts nothing. An amount of 0 reads the counter and records nothing.
     */
    public Decision<Long> decrementUnits(long handleId, long sessionId, long operationId, long amount, Instant now) {
        Decision<Handle> owned = handle(handleId, sessionId);
        if (owned instanceof Decision.Refuse<Handle> refuse) {
            return Decision.refuse(refuse.error(), refuse.text());
        }
        Map<Long, Long> ofHandle = recentDecrements.get(handleId);
        Long earlier = ofHandle == null ? null : ofHandle.get(operationId);
        if (earlier != null) {
            return Decision.accept(earlier);
        }
        ItemState item = items.get(((Decision.Accept<Handle>) owned).reply().item());
        if (!item.hasUnitCounter()) {
            return Decision.refuse(CmError.NO_UNIT_COUNTER, "product item " + item.key() + " has no unit counter");
        }
        if (amount == 0) {
            return Decision.accept(item.units);
        }
        if (amount > item.units) {
            if (item.units == 0) {
                return Decision.refuse(CmError.UNIT_COUNTER_ZERO, "the unit counter of " + item.key() + " is zero");
            }
            return Decision.refuse(CmError.UNIT_COUNTER_TOO_SMALL, "the unit counter of " + item.key() + " is "
                    + item.units + ", less than " + amount);
        }
        long remaining = item.units - amount;
        return Decision.accept(remaining, new UnitsDecremented(handleId, item.key(), operationId, amount, remaining,
                now));
    }

    // ---------------------------------------------------------------- borrowing

    /**
     * Turns a handle into a borrow: the handle ends and a seat is held for the client until the
     * borrow expires (never after the license itself) or is returned.
     */
    public Decision<Borrow> borrow(long handleId, long sessionId, Duration duration, String clientId, Instant now) {
        Decision<Handle> owned = handle(handleId, sessionId);
        if (owned instanceof Decision.Refuse<Handle> refuse) {
            return Decision.refuse(refuse.error(), refuse.text());
        }
        Handle handle = ((Decision.Accept<Handle>) owned).reply();
        ItemState item = items.get(handle.item());
        if (item.spec.borrowMax() == null) {
            return Decision.refuse(CmError.ACCESS_DENIED, "product item " + item.key() + " does not allow borrowing");
        }
        if (duration.isZero() || duration.isNegative() || duration.compareTo(item.spec.borrowMax()) > 0) {
            return Decision.refuse(CmError.INVALID_PARAMETER, "borrow of " + duration + " for " + item.key()
                    + "; allowed is up to " + item.spec.borrowMax());
        }
        if (item.seatsInUseWithout(handle) + 1 > item.spec.quantity()) {
            return Decision.refuse(CmError.NO_MORE_LICENSES, "no seat of " + item.key() + " is free to borrow");
        }
        Instant expiresAt = now.plus(duration);
        if (item.spec.expiresAt() != null && item.spec.expiresAt().isBefore(expiresAt)) {
            expiresAt = item.spec.expiresAt();
        }
        Borrow borrow = new Borrow(nextTicketId, item.key(), clientId, expiresAt);
        return Decision.accept(borrow, new BorrowStarted(borrow.ticketId(), handleId, item.key(), clientId,
                expiresAt, now));
    }

    /**
     * Returns a borrow early, for the client it was issued to only: anyone else freeing the seat would leave
     * the borrower with a valid offline ticket and the seat counted twice.
     */
    public Decision<Borrow> returnBorrow(long ticketId, String clientId, Instant now) {
        Borrow borrow = borrows.get(ticketId);
        if (borrow == null || !borrow.clientId().equals(clientId)) {
            // One answer for both, so a guessed ticket id reveals nothing.
            return Decision.refuse(CmError.INVALID_HANDLE, "no borrow with ticket " + ticketId + " for " + clientId);
        }
        return Decision.accept(borrow, new BorrowEnded(ticketId, true, now));
    }

    /** Ends a borrow whatever its client: the server's own decision (an abandoned borrow). */
    public Decision<Borrow> endBorrow(long ticketId, Instant now) {
        Borrow borrow = borrows.get(ticketId);
        if (borrow == null) {
            return Decision.refuse(CmError.INVALID_HANDLE, "no borrow with ticket " + ticketId);
        }
        return Decision.accept(borrow, new BorrowEnded(ticketId, false, now));
    }

    /** Borrows whose time is up, to end now. */
    public List<ContainerEvent> expiredBorrows(Instant now) {
        return borrows.values().stream().filter(b -> !now.isBefore(b.expiresAt()))
                .map(b -> (ContainerEvent) new BorrowEnded(b.ticketId(), false, now)).toList();
    }

    // ---------------------------------------------------------------- TMR peers

    /** The highest epoch granted or seen on {@code leaseName}; 0 when none. */
    public long highestEpoch(String leaseName) {
        return leaseEpochs.getOrDefault(leaseName, 0L);
    }

    /** Who the highest epoch on {@code leaseName} was granted to or seen with; null when none or unknown. */
    public String highestHolder(String leaseName) {
        return leaseHolders.get(leaseName);
    }

    /**
     * The event that records {@code epoch} of {@code holder} (from a valid certificate) on {@code leaseName},
     * or none when it is not above the highest.
     */
    public List<ContainerEvent> epochSeen(String leaseName, long epoch, String holder, Instant now) {
        return epoch > highestEpoch(leaseName) ? List.of(new LeaseEpochRaised(leaseName, epoch, holder, now))
                : List.of();
    }

    /**
     * The group keys (base64 raw Ed25519) of the TMR copy with this key, vendor-attested by its update file;
     * {@code null} when the container holds no TMR copy with this key.
     */
    /**
     * The vendor's group key statement of a TMR copy, or null for a copy issued without one (or no TMR copy).
     */
    public GroupKeyStatement tmrGroupStatement(LicenseKey key) {
        ItemState item = items.get(key);
        return item == null || item.spec.tmrId() == 0 || item.tmrGroupStatement == null ? null
                : GroupKeyStatement.parse(Bytes.of(java.util.Base64.getDecoder().decode(item.tmrGroupStatement)));
    }

    public List<String> tmrGroupKeys(LicenseKey key) {
        ItemState item = items.get(key);
        return item == null || item.spec.tmrId() == 0 ? null : item.tmrGroupKeys;
    }

    private static <T> Decision.Refuse<T> noTmrCopy(LicenseKey key, Serial serial) {
        return new Decision.Refuse<>(CmError.ENTRY_NOT_FOUND, "no TMR copy " + key + " in container " + serial);
    }

    /**
     * Holds a seat for a TMR node's handle, by the rules of {@link #access}; the same handle id again is
     * accepted without a second seat (the reply is the allocation already held).
     */
    public Decision<TmrAllocation> allocate(Allocation allocation, Instant now) {
        TmrAllocation held = allocations.get(allocation.tmrHandleId());
        if (held != null) {
            return Decision.accept(held);
        }
        LicenseKey key = allocation.key();
        ItemState item = items.get(key);
        if (item == null || item.spec.tmrId() == 0) {
            return noTmrCopy(key, serial);
        }
        AccessRequest request = new AccessRequest(key.firmCode(), key.productCode(), allocation.featureBits(),
                allocation.accessMode(), allocation.owner(), allocation.tokenDigest().toHex(), true,
                allocation.owner().host());
        Decision.Refuse<Handle> refusal = check(item, request, now);
        if (refusal != null) {
            return Decision.refuse(refusal.error(), refusal.text());
        }
        List<ContainerEvent> events = new ArrayList<>(2);
        if (item.spec.usagePeriod() != null && item.usageStartedAt == null) {
            events.add(new UsagePeriodStarted(key, now));
        }
        TmrAllocation added = TmrAllocation.of(allocation, now);
        events.add(new AllocationAdded(added));
        return new Decision.Accept<>(events, added);
    }

    /**
     * Moves the start of a TMR copy's usage period to {@code startedAt}, the start the copies agree on; only
     * ever earlier (or from none), so that no node can lengthen a period. The reply says whether it moved.
     *
     * @param latest the latest start taken: this server's clock plus the clock skew
     */
    public Decision<Boolean> usageStart(LicenseKey key, Instant startedAt, Instant latest) {
        ItemState item = items.get(key);
        if (item == null || item.spec.tmrId() == 0) {
            return noTmrCopy(key, serial);
        }
        if (item.spec.usagePeriod() == null) {
            return Decision.refuse(CmError.INVALID_PARAMETER, "product item " + key + " has no usage period");
        }
        if (startedAt.isAfter(latest)) {
            return Decision.refuse(CmError.INVALID_PARAMETER, "usage period start " + startedAt + " of " + key
                    + " is beyond this server's clock and the clock skew (" + latest + ")");
        }
        if (item.usageStartedAt != null && !startedAt.isBefore(item.usageStartedAt)) {
            return new Decision.Accept<>(List.of(), false);
        }
        return Decision.accept(true, new UsagePeriodStarted(key, startedAt));
    }

    /**
     * Turns a TMR node's allocation into a borrow for {@code clientId} until {@code expiresAt}, by the borrowing
     * rules of {@link #borrow}: the item allows borrowing, the borrow ends in the future, within the item's
     * longest borrow (plus {@code skew}, the node's clock may differ) and not after the item expires. Asked again
     * for the same ticket and client, the borrow already held is the answer, or takes the new expiry.
     */
    public Decision<TmrBorrow> borrowAllocation(long tmrHandleId, long ticketId, String clientId, Instant expiresAt,
                                                Instant now, Duration skew) {
        TmrAllocation held = allocations.get(tmrHandleId);
        if (held == null) {
            return Decision.refuse(CmError.INVALID_HANDLE, "no allocation of TMR handle "
                    + Long.toUnsignedString(tmrHandleId) + " in container " + serial);
        }
        TmrBorrow borrowed = tmrBorrows.get(tmrHandleId);
        if (borrowed != null && (borrowed.ticketId() != ticketId || !borrowed.clientId().equals(clientId))) {
            return Decision.refuse(CmError.INVALID_PARAMETER, "TMR handle " + Long.toUnsignedString(tmrHandleId)
                    + " is borrowed already under ticket " + Long.toUnsignedString(borrowed.ticketId()));
        }
        if (borrowed != null && borrowed.expiresAt().equals(expiresAt)) {
            return Decision.accept(borrowed);
        }
        // Otherwise new, or the same ticket asked again with another expiry: a node that crashed before it
        // journaled the borrow asks again when its client does, and this copy must end with the others.
        ProductItemSpec spec = items.get(held.item()).spec;
        if (spec.borrowMax() == null) {
            return Decision.refuse(CmError.ACCESS_DENIED, "product item " + held.item() + " does not allow borrowing");
        }
        if (!expiresAt.isAfter(now) || expiresAt.isAfter(now.plus(spec.borrowMax()).plus(skew))) {
            return Decision.refuse(CmError.INVALID_PARAMETER, "borrow of " + held.item() + " until " + expiresAt
                    + "; allowed is up to " + spec.borrowMax() + " from " + now);
        }
        if (spec.expiresAt() != null && expiresAt.isAfter(spec.expiresAt())) {
            return Decision.refuse(CmError.INVALID_PARAMETER, "borrow of " + held.item() + " until " + expiresAt
                    + " outlasts the item, which expires at " + spec.expiresAt());
        }
        TmrBorrow borrow = new TmrBorrow(tmrHandleId, ticketId, clientId, expiresAt);
        return Decision.accept(borrow, new AllocationBorrowed(borrow, now));
    }

    /** The TMR borrows held now. */
    public Collection<TmrBorrow> tmrBorrows() {
        return List.copyOf(tmrBorrows.values());
    }

    /** TMR borrows whose time is up: their allocations are freed now, also with no node connected. */
    public List<ContainerEvent> expiredTmrBorrows(Instant now) {
        return tmrBorrows.values().stream().filter(b -> !now.isBefore(b.expiresAt()))
                .map(b -> (ContainerEvent) new AllocationFreed(b.tmrHandleId(), now)).toList();
    }

    /** The allocation of a TMR handle, or {@code null}. */
    public TmrAllocation allocation(long tmrHandleId) {
        return allocations.get(tmrHandleId);
    }

    /** Frees a TMR handle's allocation; an unknown handle is accepted with a {@code null} reply and no event. */
    public Decision<TmrAllocation> free(long tmrHandleId, Instant now) {
        TmrAllocation held = allocations.get(tmrHandleId);
        return held == null ? new Decision.Accept<>(List.of(), null)
                : Decision.accept(held, new AllocationFreed(tmrHandleId, now));
    }

    /** One page of allocations. */
    public record AllocationPage(List<TmrAllocation> allocations, boolean more) {
    }

    /** Allocations with handle ids above {@code afterHandleId} (unsigned), ascending, at most {@code maxItems}. */
    public AllocationPage allocations(long afterHandleId, int maxItems) {
        return allocations(afterHandleId, maxItems, Long.MAX_VALUE);
    }

    /**
     * As {@link #allocations(long, int)}, and ending the page before its encoded allocations pass
     * {@code maxBytes} (owner names may be long), so it fits a frame; a page holds at least one.
     */
    public AllocationPage allocations(long afterHandleId, int maxItems, long maxBytes) {
        List<TmrAllocation> page = new ArrayList<>(Math.min(maxItems, 64));
        long bytes = 0;
        var next = allocations.tailMap(afterHandleId, false).values().iterator();
        while (next.hasNext() && page.size() < maxItems) {
            TmrAllocation allocation = next.next();
            bytes += encodedSize(allocation);
            if (bytes > maxBytes && !page.isEmpty()) {
                return new AllocationPage(page, true);
            }
            page.add(allocation);
        }
        return new AllocationPage(page, next.hasNext());
    }

    /** The count and digest of the allocations in each of {@code ranges} ranges of the handle id space. */
    public AllocationDigests digests(int ranges) {
        AllocationDigests digests = new AllocationDigests(ranges);
        for (TmrAllocation allocation : allocations.values()) {
            digests.add(allocation.tmrHandleId(), allocation.item());
        }
        return digests;
    }

    /** The allocation's size on the wire with its request (docs/protocol.md: Allocation, ALLOCATION_LIST). */
    private static long encodedSize(TmrAllocation a) {
        long request = a.request() == null ? 0 : 8 + 2 + utf8Length(a.request().host()) + 8;
        return 8 + 12 + 2 + 4 + 2 + utf8Length(a.owner().host()) + 2 + utf8Length(a.owner().user()) + 4 + 8
                + 4 + a.tokenDigest().length() / 2 + 8 + request;
    }

    private static long utf8Length(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) >= 0x80) {
                return s.getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
            }
        }
        return s.length(); // ASCII, as names mostly are: no copy per name of a page
    }

    public Collection<TmrAllocation> allocations() {
        return List.copyOf(allocations.values());
    }

    /**
     * PEER_UNITS on a TMR copy: READ, DECREMENT by {@code value} (refused as DECREMENT_UNITS is) or SET to
     * {@code value}. A DECREMENT or SET repeated with the same operation id while it is remembered (the
     * retry memory, {@link PeerUnitMemory}) gets the first result and changes nothing; a SET forgets the
     * item's earlier operations, so a decrement retried after it is charged. When the memory is full, a new
     * DECREMENT or SET is refused with 309.
     */
    public Decision<Long> peerUnits(LicenseKey key, long operationId, UnitsOperation operation, long value,
                                    Instant now) {
        ItemState item = items.get(key);
        if (item == null || item.spec.tmrId() == 0) {
            return Decision.refuse(CmError.ENTRY_NOT_FOUND, "no TMR copy " + key + " in container " + serial);
        }
        if (!item.hasUnitCounter()) {
            return Decision.refuse(CmError.NO_UNIT_COUNTER, "product item " + key + " has no unit counter");
        }
        if (operation == UnitsOperation.READ) {
            return Decision.accept(item.units);
        }
        Long earlier = peerUnitMemory.recall(key, operationId, now);
        if (earlier != null) {
            return Decision.accept(earlier);
        }
        if (peerUnitMemory.full(key, operation == UnitsOperation.SET, now)) {
            return Decision.refuse(CmError.REQUEST_OVERLOAD, "this backend remembers " + peerUnitMemory.max()
                    + " unit operations of the last " + peerUnitMemory.window().toSeconds()
                    + " s for retries (opentmr.backend.units.max-remembered); try again later");
        }
        long remaining;
        if (operation == UnitsOperation.SET) {
            remaining = value;
        } else {
            if (value > item.units) {
                if (item.units == 0) {
                    return Decision.refuse(CmError.UNIT_COUNTER_ZERO, "the unit counter of " + key + " is zero");
                }
                return Decision.refuse(CmError.UNIT_COUNTER_TOO_SMALL, "the unit counter of " + key + " is "
                        + item.units + ", less than " + value);
            }
            remaining = item.units - value;
        }
        return Decision.accept(remaining, new PeerUnitsChanged(key, operationId, operation, remaining, now));
    }

    // ---------------------------------------------------------------- snapshots

    /** An immutable copy; call it on the owning actor's thread. */
    public ContainerSnapshot toSnapshot() {
        List<ContainerSnapshot.Item> itemCopies = items.values().stream()
                .map(i -> new ContainerSnapshot.Item(i.firmCode, i.spec, i.tmrGroupKeys, i.units, i.usageStartedAt,
                        i.tmrGroupStatement))
                .toList();
        List<ContainerSnapshot.Decrement> decrements = recentDecrements.entrySet().stream()
                .flatMap(h -> h.getValue().entrySet().stream()
                        .map(op -> new ContainerSnapshot.Decrement(h.getKey(), op.getKey(), op.getValue())))
                .toList();
        List<ContainerSnapshot.PeerOperation> peerOperations = peerUnitMemory.toSnapshot();
        return new ContainerSnapshot(serial.toString(), cmActId, Map.copyOf(firmUpdateCounters), itemCopies,
                List.copyOf(handles.values()), List.copyOf(borrows.values()), decrements, nextHandleId, nextTicketId,
                Map.copyOf(leaseEpochs), List.copyOf(allocations.values()), peerOperations, Map.copyOf(leaseHolders),
                List.copyOf(tmrBorrows.values()));
    }

    /** The state a snapshot describes, with the default retry memory. */
    public static ContainerState fromSnapshot(ContainerSnapshot snapshot) {
        return fromSnapshot(snapshot, BackendSettings.Units.DEFAULT);
    }

    /** The state a snapshot describes; seat usage is rebuilt from its handles and borrows. */
    public static ContainerState fromSnapshot(ContainerSnapshot snapshot, BackendSettings.Units units) {
        ContainerState state = new ContainerState(Serial.parse(snapshot.serial()), snapshot.cmActId(), units);
        state.firmUpdateCounters.putAll(snapshot.firmUpdateCounters());
        for (ContainerSnapshot.Item item : snapshot.items()) {
            ItemState restored = new ItemState(item.firmCode(), item.spec(), item.tmrGroupKeys(),
                    item.tmrGroupStatement());
            restored.units = item.units();
            restored.usageStartedAt = item.usageStartedAt();
            state.items.put(restored.key(), restored);
        }
        for (Handle handle : snapshot.handles()) {
            state.handles.put(handle.id(), handle);
            state.items.get(handle.item()).add(handle);
        }
        snapshot.handles().stream().filter(h -> h.requestId() != null)
                .sorted(java.util.Comparator.comparing(Handle::openedAt).thenComparingLong(Handle::id))
                .forEach(state::rememberRequest);
        for (Borrow borrow : snapshot.borrows()) {
            state.borrows.put(borrow.ticketId(), borrow);
            state.items.get(borrow.item()).borrowStarted();
        }
        for (ContainerSnapshot.Decrement d : snapshot.recentDecrements()) {
            state.rememberDecrement(d.handleId(), d.operationId(), d.remaining());
        }
        state.nextHandleId = snapshot.nextHandleId();
        state.nextTicketId = snapshot.nextTicketId();
        // Snapshots taken before the peer side existed lack these.
        if (snapshot.leaseEpochs() != null) {
            state.leaseEpochs.putAll(snapshot.leaseEpochs());
        }
        // Snapshots taken before TMR borrows existed lack them.
        if (snapshot.tmrBorrows() != null) {
            snapshot.tmrBorrows().forEach(b -> state.tmrBorrows.put(b.tmrHandleId(), b));
        }
        // Snapshots taken before holders were kept lack them: every holder counts as another one.
        if (snapshot.leaseHolders() != null) {
            state.leaseHolders.putAll(snapshot.leaseHolders());
        }
        if (snapshot.allocations() != null) {
            snapshot.allocations().forEach(state::addAllocation);
        }
        if (snapshot.peerOperations() != null) {
            state.peerUnitMemory.restore(snapshot.peerOperations());
        }
        return state;
    }

    // ---------------------------------------------------------------- events

    /** The retry memory of PEER_UNITS, for tests. */
    PeerUnitMemory peerUnitMemory() {
        return peerUnitMemory;
    }

    public ContainerState apply(ContainerEvent event) {
        if (event instanceof LicenseUpdated e) {
            applyLicense(e.update());
        } else if (event instanceof HandleOpened e) {
            Handle handle = new Handle(e.handleId(), e.item(), e.mode(), e.featureBits(), e.owner(), e.tokenDigest(),
                    e.at(), e.station(), e.requestId());
            handles.put(handle.id(), handle);
            items.get(handle.item()).add(handle);
            rememberRequest(handle);
            nextHandleId = Math.max(nextHandleId, e.handleId() + 1);
        } else if (event instanceof HandleResumed e) {
            handles.computeIfPresent(e.handleId(), (id, h) -> h.withSession(e.sessionId()));
        } else if (event instanceof HandleReleased e) {
            removeHandle(e.handleId());
        } else if (event instanceof HandleReclaimed e) {
            removeHandle(e.handleId());
        } else if (event instanceof UsagePeriodStarted e) {
            items.get(e.item()).usageStartedAt = e.at();
        } else if (event instanceof UnitsDecremented e) {
            items.get(e.item()).units = e.remaining();
            rememberDecrement(e.handleId(), e.operationId(), e.remaining());
        } else if (event instanceof BorrowStarted e) {
            removeHandle(e.handleId());
            borrows.put(e.ticketId(), new Borrow(e.ticketId(), e.item(), e.clientId(), e.expiresAt()));
            items.get(e.item()).borrowStarted();
            nextTicketId = Math.max(nextTicketId, e.ticketId() + 1);
        } else if (event instanceof BorrowEnded e) {
            Borrow borrow = borrows.remove(e.ticketId());
            if (borrow != null) {
                items.get(borrow.item()).borrowEnded();
            }
        } else if (event instanceof LeaseEpochRaised e) {
            if (e.epoch() >= highestEpoch(e.leaseName())) {
                leaseEpochs.put(e.leaseName(), e.epoch());
                if (e.holder() == null) {
                    leaseHolders.remove(e.leaseName());
                } else {
                    leaseHolders.put(e.leaseName(), e.holder());
                }
            }
        } else if (event instanceof AllocationAdded e) {
            addAllocation(e.allocation());
        } else if (event instanceof AllocationBorrowed e) {
            tmrBorrows.put(e.borrow().tmrHandleId(), e.borrow());
        } else if (event instanceof AllocationFreed e) {
            tmrBorrows.remove(e.tmrHandleId());
            TmrAllocation freed = allocations.remove(e.tmrHandleId());
            if (freed != null) {
                items.get(freed.item()).remove(freed);
            }
        } else if (event instanceof PeerUnitsChanged e) {
            items.get(e.item()).units = e.remaining();
            peerUnitMemory.remember(e.item(), e.operationId(), e.remaining(), e.operation() == UnitsOperation.SET,
                    e.at());
        } else {
            throw new IllegalArgumentException("unknown container event " + event.getClass().getName());
        }
        return this;
    }

    private void applyLicense(LicenseUpdate update) {
        firmUpdateCounters.put(update.firmCode(), update.firmUpdateCounter());
        for (ProductItemSpec spec : update.items()) {
            LicenseKey key = new LicenseKey(update.firmCode(), spec.productCode(), spec.tmrId());
            ItemState existing = items.get(key);
            if (existing == null) {
                items.put(key, new ItemState(update.firmCode(), spec, update.tmrGroupKeys(),
                        update.tmrGroupStatement()));
            } else {
                // A new issue of the same item: new terms, same holders; its counter is what the vendor set.
                existing.spec = spec;
                existing.tmrGroupKeys = update.tmrGroupKeys();
                existing.tmrGroupStatement = update.tmrGroupStatement();
                existing.units = spec.unitCounter() == null ? 0 : spec.unitCounter();
            }
        }
    }

    private void addAllocation(TmrAllocation allocation) {
        allocations.put(allocation.tmrHandleId(), allocation);
        items.get(allocation.item()).add(allocation);
    }

    private void rememberDecrement(long handleId, long operationId, long remaining) {
        LinkedHashMap<Long, Long> ofHandle = recentDecrements.computeIfAbsent(handleId, id -> new LinkedHashMap<>());
        ofHandle.put(operationId, remaining);
        if (ofHandle.size() > RECENT_OPERATIONS_PER_HANDLE) {
            ofHandle.remove(ofHandle.keySet().iterator().next());
        }
    }

    private void removeHandle(long handleId) {
        recentDecrements.remove(handleId);
        Handle handle = handles.remove(handleId);
        if (handle != null) {
            items.get(handle.item()).remove(handle);
            RequestKey key = RequestKey.of(handle);
            if (key != null) {
                recentRequests.remove(key, handleId);
            }
        }
    }

    /**
     * Remembers the ACCESS that opened {@code handle} and forgets those that fell out of the memory. Times are
     * the handles' own, never a clock: replaying the journal rebuilds the same memory.
     */
    private void rememberRequest(Handle handle) {
        RequestKey key = RequestKey.of(handle);
        if (key == null) {
            return;
        }
        recentRequests.remove(key);
        recentRequests.put(key, handle.id());
        Instant forgetBefore = handle.openedAt().minus(GRANT_MEMORY);
        var oldest = recentRequests.entrySet().iterator();
        while (oldest.hasNext()) {
            Handle next = handles.get(oldest.next().getValue());
            if (recentRequests.size() <= RECENT_GRANTS && next != null && next.openedAt().isAfter(forgetBefore)) {
                break;
            }
            oldest.remove();
        }
    }

    /** Re-sent ACCESS requests remembered now; for tests. */
    int rememberedRequests() {
        return recentRequests.size();
    }
}
