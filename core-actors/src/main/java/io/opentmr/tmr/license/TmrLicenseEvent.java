package io.opentmr.tmr.license;

import io.opentmr.CborSerializable;
import java.util.List;

/**
 * What happened to a TMR license's seat table: its journal's events. Versioned through
 * {@link NodeEventVersions} (the version is part of each record's manifest).
 */
public sealed interface TmrLicenseEvent extends CborSerializable {

    /** Two or more backends acknowledged the allocation; the handle holds the seat. */
    record SeatGranted(Seat seat, long atMillis) implements TmrLicenseEvent {
    }

    record SeatReleased(long handleId, String reason, long atMillis) implements TmrLicenseEvent {
    }

    /**
     * Two or more backends borrowed the handle's seat and signed its ticket: the handle ends for its session and
     * the seat stays taken until the ticket's expiry or a RETURN (a {@link SeatReleased} ends it).
     */
    record SeatBorrowed(Borrowed borrow, long atMillis) implements TmrLicenseEvent {
    }

    /**
     * A borrowed seat: its handle id is the ticket id.
     *
     * @param issuer    the virtual container's serial, as the ticket names it
     * @param signature the ticket's signature: the backends' signatures and the vendor's statement of the group's
     *                  keys ({@code BorrowTicket.GroupSignature}; without the statement in borrows journaled before
     *                  it was carried)
     */
    record Borrowed(long handleId, String clientId, long expiresAtMillis, String issuer, byte[] signature) {
    }

    /**
     * The whole seat table, journaled by a twin's active node (version 3): its snapshots are its own, and the events
     * they stand for are deleted on both nodes, so the standby, which has no snapshot, replays from the newest
     * checkpoint on. Whatever the events before it made, the table is this one after it. Written when a twin
     * recovered from a snapshot with no checkpoint after it (a single node's data), and at least every half
     * {@code snapshot-every} events.
     */
    record Checkpoint(Snapshot table, long atMillis) implements TmrLicenseEvent {
    }

    /** A handle released lately, as a snapshot remembers it. */
    record Released(long handleId, long atMillis) {
    }

    /**
     * The seat table as a snapshot stores it: decided seats only (seats still being allocated are not in
     * it), the releases it remembers (null in snapshots of version 1) and the borrowed seats among the seats (null
     * before version 3).
     */
    record Snapshot(List<Seat> seats, List<Released> released, List<Borrowed> borrowed) implements CborSerializable {
        /** A snapshot without borrows (as of version 1 and 2). */
        public Snapshot(List<Seat> seats, List<Released> released) {
            this(seats, released, null);
        }
    }
}
