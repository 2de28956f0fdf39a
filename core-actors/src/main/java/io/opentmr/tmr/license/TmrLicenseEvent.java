package io.opentmr.tmr.license;

import io.opentmr.CborSerializable;
import java.util.List;

/** What happened to a TMR license's seat table: its journal's events. */
public sealed interface TmrLicenseEvent extends CborSerializable {

    /** Two or more backends acknowledged the allocation; the handle holds the seat. */
    record SeatGranted(Seat seat, long atMillis) implements TmrLicenseEvent {
    }

    record SeatReleased(long handleId, String reason, long atMillis) implements TmrLicenseEvent {
    }

    /** The seat table as a snapshot stores it. */
    record Snapshot(List<Seat> seats) implements CborSerializable {
    }
}
