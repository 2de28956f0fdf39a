package io.opentmr.tmr.license;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The seats of one TMR license: who holds which, by the same rules a backend applies to a product item
 * (one seat per USERLIMIT handle, one per STATIONSHARE station, none for NOUSERLIMIT, all for EXCLUSIVE,
 * which shuts everyone else out). The license keeps two: the journaled table of decided seats, and one of
 * seats still being allocated, which {@link #admit} counts as taken so that two accesses in flight can
 * never both get the last seat. The decided table also remembers the requests that opened its seats (a
 * re-sent ACCESS gets its handle again) and the handles released lately (a repeated RELEASE is answered
 * OK). Mutable, owned by its actor; a plain class that tests call without one.
 */
public final class SeatTable {

    /** Released handles remembered, so that a RELEASE repeated after a lost answer is still OK. */
    static final int RELEASED_MEMORY = 4096;

    /** The table of no seats that recoveries start from; never changed (see TmrLicense#emptyState). */
    static final SeatTable EMPTY = new SeatTable();

    /**
     * The license's event handler: the table after {@code event}. Pekko keeps the empty state and starts every
     * recovery from it, also the one after a restart; the table is mutable, so the empty one is never changed: the
     * first event makes a table of its own. {@code tmr journal replay} rebuilds a license's seats with it too.
     */
    public static SeatTable apply(SeatTable state, TmrLicenseEvent event) {
        SeatTable table = writable(state);
        if (event instanceof TmrLicenseEvent.SeatGranted granted) {
            table.add(granted.seat());
        } else if (event instanceof TmrLicenseEvent.SeatReleased released) {
            table.remove(released.handleId(), released.atMillis());
        } else if (event instanceof TmrLicenseEvent.SeatBorrowed borrowed) {
            if (table.seats.containsKey(borrowed.borrow().handleId())) {
                table.borrowed.put(borrowed.borrow().handleId(), borrowed.borrow());
            }
        } else if (event instanceof TmrLicenseEvent.Checkpoint checkpoint) {
            // Whatever the events before it made: the table is what the checkpoint holds.
            table.clear();
            table.load(checkpoint.table());
        } else {
            throw new IllegalArgumentException("not an event of a TMR license: " + event);
        }
        return table;
    }

    /** The table recoveries start from, before any event or snapshot. */
    public static SeatTable empty() {
        return EMPTY;
    }

    /** {@code state}, or a new table of its own if it is the shared empty one. */
    static SeatTable writable(SeatTable state) {
        return state == EMPTY ? new SeatTable() : state;
    }

    /** The table as a snapshot stores it (the license's snapshot adapter). */
    public TmrLicenseEvent.Snapshot toSnapshot() {
        List<TmrLicenseEvent.Released> lately = new ArrayList<>(released.size());
        released.forEach((id, at) -> lately.add(new TmrLicenseEvent.Released(id, at)));
        return new TmrLicenseEvent.Snapshot(List.copyOf(seats.values()), lately, List.copyOf(borrowed.values()));
    }

    /** The table a snapshot stored (of any version: one of version 1 remembers no releases). */
    public static SeatTable fromSnapshot(TmrLicenseEvent.Snapshot snapshot) {
        SeatTable table = new SeatTable();
        table.load(snapshot);
        return table;
    }

    /** The borrow of a seat, or null when the seat is a handle's (or there is none). */
    public TmrLicenseEvent.Borrowed borrowed(long handleId) {
        return borrowed.get(handleId);
    }

    /** The borrowed seats. */
    public Collection<TmrLicenseEvent.Borrowed> borrows() {
        return java.util.Collections.unmodifiableCollection(borrowed.values());
    }

    /** Why an access is refused, before any backend is asked. */
    public record Refusal(CmError error, String text) {
    }

    private final Map<Long, Seat> seats = new HashMap<>();
    /** Seats added or removed so far: the same count on the same table is the same set of seats. */
    private long changes;
    /** The seats among {@link #seats} that are borrowed: no handle uses them, their ticket does. */
    private final Map<Long, TmrLicenseEvent.Borrowed> borrowed = new LinkedHashMap<>();
    private final Map<Seat.RequestKey, Long> byRequest = new HashMap<>();
    private final Map<String, Integer> stationShareByStation = new HashMap<>();
    private final LinkedHashMap<Long, Long> released = new LinkedHashMap<>();
    private int userLimit;
    private int noUserLimit;
    private long exclusive;

    /** Whether an access in {@code mode} from {@code station} may be tried, given this table and {@code pending}. */
    public Optional<Refusal> admit(AccessMode mode, String station, long quantity, String name, SeatTable pending) {
        long exclusiveHolder = exclusive != 0 ? exclusive : pending.exclusive;
        if (exclusiveHolder != 0) {
            return Optional.of(new Refusal(CmError.EXCLUSIVE_CONFLICT, name + " is held EXCLUSIVE by handle "
                    + Long.toUnsignedString(exclusiveHolder)));
        }
        long inUse = seatsInUse(quantity) + pending.seatsInUse(quantity)
                - sharedStations(pending);
        switch (mode) {
            case EXCLUSIVE -> {
                int handles = seats.size() + pending.seats.size();
                if (handles > 0) {
                    return Optional.of(new Refusal(CmError.EXCLUSIVE_CONFLICT, "EXCLUSIVE access to " + name
                            + " while " + handles + " handle(s) use it"));
                }
                if (quantity == 0) {
                    return noSeat(quantity, name);
                }
            }
            case USERLIMIT -> {
                if (inUse >= quantity) {
                    return noSeat(quantity, name);
                }
            }
            case STATIONSHARE -> {
                boolean stationHolds = stationShareByStation.containsKey(station)
                        || pending.stationShareByStation.containsKey(station);
                if (!stationHolds && inUse >= quantity) {
                    return noSeat(quantity, name);
                }
            }
            case NOUSERLIMIT -> {
                // takes no seat
            }
        }
        return Optional.empty();
    }

    /** Stations holding STATIONSHARE seats in both tables: one seat, not two. */
    private long sharedStations(SeatTable pending) {
        return pending.stationShareByStation.keySet().stream().filter(stationShareByStation::containsKey).count();
    }

    private static Optional<Refusal> noSeat(long quantity, String name) {
        return Optional.of(new Refusal(CmError.NO_MORE_LICENSES, "all " + quantity + " seat(s) of " + name
                + " are in use"));
    }

    public long seatsInUse(long quantity) {
        if (exclusive != 0) {
            return quantity;
        }
        return (long) userLimit + stationShareByStation.size();
    }

    public void add(Seat seat) {
        if (seats.putIfAbsent(seat.handleId(), seat) != null) {
            return;
        }
        changes++;
        Seat.RequestKey request = seat.requestKey();
        if (request != null) {
            byRequest.put(request, seat.handleId());
        }
        released.remove(seat.handleId());
        switch (seat.mode()) {
            case USERLIMIT -> userLimit++;
            case NOUSERLIMIT -> noUserLimit++;
            case STATIONSHARE -> stationShareByStation.merge(seat.station(), 1, Integer::sum);
            case EXCLUSIVE -> exclusive = seat.handleId();
        }
    }

    /** Removes a seat; when {@code atMillis} is not negative the handle is remembered as released then. */
    public Optional<Seat> remove(long handleId, long atMillis) {
        Seat seat = seats.remove(handleId);
        if (seat == null) {
            return Optional.empty();
        }
        changes++;
        borrowed.remove(handleId);
        Seat.RequestKey request = seat.requestKey();
        if (request != null) {
            byRequest.remove(request, handleId);
        }
        if (atMillis >= 0) {
            remember(handleId, atMillis);
        }
        switch (seat.mode()) {
            case USERLIMIT -> userLimit--;
            case NOUSERLIMIT -> noUserLimit--;
            case STATIONSHARE -> stationShareByStation.computeIfPresent(seat.station(),
                    (station, count) -> count == 1 ? null : count - 1);
            case EXCLUSIVE -> exclusive = 0;
        }
        return Optional.of(seat);
    }

    private void remember(long handleId, long atMillis) {
        released.put(handleId, atMillis);
        if (released.size() > RELEASED_MEMORY) {
            released.remove(released.keySet().iterator().next());
        }
    }

    /** Empties the table, counts and memories included. */
    public void clear() {
        changes++;
        seats.clear();
        borrowed.clear();
        byRequest.clear();
        stationShareByStation.clear();
        released.clear();
        userLimit = 0;
        noUserLimit = 0;
        exclusive = 0;
    }

    public Optional<Seat> get(long handleId) {
        return Optional.ofNullable(seats.get(handleId));
    }

    /** Whether the handle holds a seat (as {@code get(handleId).isPresent()}, for the loops over a whole listing). */
    public boolean holds(long handleId) {
        return seats.containsKey(handleId);
    }

    /** The seat opened by this request, if it still holds. */
    public Optional<Seat> byRequest(Seat.RequestKey request) {
        Long handleId = byRequest.get(request);
        return handleId == null ? Optional.empty() : get(handleId);
    }

    /** Whether this handle was released lately (remembered for the last {@value #RELEASED_MEMORY} releases). */
    public boolean releasedLately(long handleId) {
        return released.containsKey(handleId);
    }

    public Collection<Seat> all() {
        return seats.values();
    }

    /** How many times a seat was added or removed (or all cleared): unchanged, the table holds the same seats. */
    public long changes() {
        return changes;
    }

    public int handles() {
        return seats.size();
    }

    /** The handle holding the license EXCLUSIVE (then every seat is in use), or 0. */
    public long exclusiveHandle() {
        return exclusive;
    }

    /** Released handles remembered, oldest first, with when they were released (for snapshots). */
    public Map<Long, Long> released() {
        return java.util.Collections.unmodifiableMap(released);
    }

    /** A table from a snapshot: its seats and the releases it remembered. */
    public static SeatTable of(List<Seat> seats, Map<Long, Long> releasedLately) {
        SeatTable table = new SeatTable();
        seats.forEach(table::add);
        if (releasedLately != null) {
            releasedLately.forEach(table::remember);
        }
        return table;
    }

    /** Adds a snapshot's seats and the releases it remembered (of any version). */
    private void load(TmrLicenseEvent.Snapshot snapshot) {
        snapshot.seats().forEach(this::add);
        if (snapshot.released() != null) {
            snapshot.released().forEach(r -> remember(r.handleId(), r.atMillis()));
        }
        if (snapshot.borrowed() != null) {
            snapshot.borrowed().forEach(b -> borrowed.put(b.handleId(), b));
        }
    }

    /** Handles that take no seat; kept for the invariant checks of the property test. */
    int noUserLimitHandles() {
        return noUserLimit;
    }
}
