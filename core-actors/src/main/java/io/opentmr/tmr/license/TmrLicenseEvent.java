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
     * The seat table as a single node's snapshot and the events after it made it, written once when that node's
     * data became a twin's (version 3): a twin keeps no snapshots, and its standby, which never had them, replays
     * from this event on. Whatever the events before it made, the table is this one after it.
     */
    record Adopted(Snapshot table, long atMillis) implements TmrLicenseEvent {
    }

    /** A handle released lately, as a snapshot remembers it. */
    record Released(long handleId, long atMillis) {
    }

    /**
     * The seat table as a snapshot stores it: decided seats only (seats still being allocated are not in
     * it), and the releases it remembers (null in snapshots of version 1).
     */
    record Snapshot(List<Seat> seats, List<Released> released) implements CborSerializable {
    }
}
