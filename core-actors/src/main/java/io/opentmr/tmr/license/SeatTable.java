package io.opentmr.tmr.license;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The seats of one TMR license: who holds which, by the same rules a backend applies to a product item
 * (one seat per USERLIMIT handle, one per STATIONSHARE station, none for NOUSERLIMIT, all for EXCLUSIVE,
 * which shuts everyone else out). Seats still being allocated on the backends count as taken, so two
 * accesses in flight can never both get the last seat. Mutable, owned by its actor; a plain class so
 * that tests and the property test call it without one.
 */
public final class SeatTable {

    /** Why an access is refused, before any backend is asked. */
    public record Refusal(CmError error, String text) {
    }

    private final Map<Long, Seat> seats = new HashMap<>();
    private final Map<String, Integer> stationShareByStation = new HashMap<>();
    private int userLimit;
    private int noUserLimit;
    private long exclusive;

    public Optional<Refusal> admit(AccessMode mode, String station, long quantity, String name) {
        if (exclusive != 0) {
            return Optional.of(new Refusal(CmError.EXCLUSIVE_CONFLICT, name + " is held EXCLUSIVE by handle "
                    + Long.toUnsignedString(exclusive)));
        }
        switch (mode) {
            case EXCLUSIVE -> {
                if (!seats.isEmpty()) {
                    return Optional.of(new Refusal(CmError.EXCLUSIVE_CONFLICT, "EXCLUSIVE access to " + name
                            + " while " + seats.size() + " handle(s) use it"));
                }
                if (quantity == 0) {
                    return noSeat(quantity, name);
                }
            }
            case USERLIMIT -> {
                if (seatsInUse(quantity) >= quantity) {
                    return noSeat(quantity, name);
                }
            }
            case STATIONSHARE -> {
                if (!stationShareByStation.containsKey(station) && seatsInUse(quantity) >= quantity) {
                    return noSeat(quantity, name);
                }
            }
            case NOUSERLIMIT -> {
                // takes no seat
            }
        }
        return Optional.empty();
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
        switch (seat.mode()) {
            case USERLIMIT -> userLimit++;
            case NOUSERLIMIT -> noUserLimit++;
            case STATIONSHARE -> stationShareByStation.merge(seat.station(), 1, Integer::sum);
            case EXCLUSIVE -> exclusive = seat.handleId();
        }
    }

    public Optional<Seat> remove(long handleId) {
        Seat seat = seats.remove(handleId);
        if (seat == null) {
            return Optional.empty();
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

    public Optional<Seat> get(long handleId) {
        return Optional.ofNullable(seats.get(handleId));
    }

    public Collection<Seat> all() {
        return seats.values();
    }

    public int handles() {
        return seats.size();
    }

    /** Handles that take no seat; kept for the invariant checks of the property test. */
    int noUserLimitHandles() {
        return noUserLimit;
    }
}
