package io.opentmr.tmr.license;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Admission against decided and pending seats; the request and release memories. */
class SeatTableTest {

    private static Seat seat(long id, AccessMode mode, String station, long requestId) {
        return new Seat(id, mode, 0, station, "user", 1, 1, Seat.digestOf(new byte[16]), 1, 0, "host", requestId);
    }

    @Test
    void aBorrowedSeatStaysCountedSurvivesASnapshotAndEndsWithItsRelease() {
        SeatTable table = SeatTable.apply(SeatTable.empty(), new TmrLicenseEvent.SeatGranted(
                seat(1, AccessMode.USERLIMIT, "a", 1), 0));
        TmrLicenseEvent.Borrowed borrow = new TmrLicenseEvent.Borrowed(1, "ws/anna", 5_000, "131-7", new byte[65]);
        table = SeatTable.apply(table, new TmrLicenseEvent.SeatBorrowed(borrow, 10));
        // A borrow of a seat the table does not hold (released meanwhile) is not taken up.
        table = SeatTable.apply(table, new TmrLicenseEvent.SeatBorrowed(
                new TmrLicenseEvent.Borrowed(2, "ws/bert", 5_000, "131-7", new byte[65]), 10));
        assertEquals(borrow, table.borrowed(1));
        assertEquals(1, table.borrows().size());
        assertEquals(1, table.seatsInUse(2));

        SeatTable restored = SeatTable.fromSnapshot(table.toSnapshot());
        assertEquals(borrow, restored.borrowed(1));
        assertEquals(1, restored.seatsInUse(2));
        // A snapshot of version 2 has no borrows.
        TmrLicenseEvent.Snapshot older = new TmrLicenseEvent.Snapshot(table.toSnapshot().seats(),
                table.toSnapshot().released());
        assertEquals(null, SeatTable.fromSnapshot(older).borrowed(1));

        table = SeatTable.apply(table, new TmrLicenseEvent.SeatReleased(1, "borrow returned", 20));
        assertEquals(null, table.borrowed(1));
        assertEquals(0, table.seatsInUse(2));
    }

    @Test
    void pendingSeatsCountAsTakenButStayOutOfTheDecidedTable() {
        SeatTable decided = new SeatTable();
        SeatTable pending = new SeatTable();
        decided.add(seat(1, AccessMode.USERLIMIT, "a", 1));
        pending.add(seat(2, AccessMode.USERLIMIT, "b", 2));
        assertEquals(CmError.NO_MORE_LICENSES, decided.admit(AccessMode.USERLIMIT, "c", 2, "x", pending)
                .orElseThrow().error());
        assertEquals(1, decided.handles(), "a pending seat is not in the table snapshots are made of");
        pending.remove(2, -1);
        assertTrue(decided.admit(AccessMode.USERLIMIT, "c", 2, "x", pending).isEmpty());
    }

    @Test
    void stationShareCountsAStationOnceAcrossBothTables() {
        SeatTable decided = new SeatTable();
        SeatTable pending = new SeatTable();
        decided.add(seat(1, AccessMode.STATIONSHARE, "a", 1));
        pending.add(seat(2, AccessMode.STATIONSHARE, "a", 2));
        assertTrue(decided.admit(AccessMode.USERLIMIT, "b", 2, "x", pending).isEmpty(), "station a takes one seat");
        assertTrue(decided.admit(AccessMode.STATIONSHARE, "a", 1, "x", pending).isEmpty());
        assertFalse(decided.admit(AccessMode.STATIONSHARE, "b", 1, "x", pending).isEmpty());
    }

    @Test
    void anExclusivePendingSeatShutsEveryoneOut() {
        SeatTable decided = new SeatTable();
        SeatTable pending = new SeatTable();
        pending.add(seat(9, AccessMode.EXCLUSIVE, "a", 1));
        assertEquals(CmError.EXCLUSIVE_CONFLICT, decided.admit(AccessMode.NOUSERLIMIT, "b", 5, "x", pending)
                .orElseThrow().error());
    }

    @Test
    void aSeatIsFoundByItsRequestAndAReleasedHandleIsRemembered() {
        SeatTable table = new SeatTable();
        Seat seat = seat(5, AccessMode.USERLIMIT, "a", 77);
        table.add(seat);
        assertEquals(seat, table.byRequest(seat.requestKey()).orElseThrow());
        table.remove(5, 1000);
        assertTrue(table.byRequest(seat.requestKey()).isEmpty());
        assertTrue(table.releasedLately(5));
        SeatTable restored = SeatTable.of(List.copyOf(table.all()), table.released());
        assertTrue(restored.releasedLately(5), "the release memory survives a snapshot");
    }

    @Test
    void theReleaseMemoryIsBounded() {
        SeatTable table = new SeatTable();
        for (long id = 1; id <= SeatTable.RELEASED_MEMORY + 10; id++) {
            table.add(seat(id, AccessMode.NOUSERLIMIT, "a", id));
            table.remove(id, id);
        }
        assertEquals(SeatTable.RELEASED_MEMORY, table.released().size());
        assertFalse(table.releasedLately(1));
        assertTrue(table.releasedLately(SeatTable.RELEASED_MEMORY + 10));
    }

    @Test
    void aSeatOfAnOlderJournalWithoutItsRequestIsNotIndexed() {
        SeatTable table = new SeatTable();
        Seat old = new Seat(3, AccessMode.USERLIMIT, 0, "a", "user", 1, 1, Seat.digestOf(new byte[16]), 1, 0, null, 0);
        table.add(old);
        assertEquals(1, table.handles());
        assertTrue(table.byRequest(new Seat.RequestKey("a", null, "user", 1, 0)).isEmpty());
    }

    @Test
    void aCheckpointIsTheTableAfterItWhateverTheEventsBeforeItMade() {
        // What a standby replays: events after the deleted ones, applied without the snapshot they follow, then a checkpoint.
        SeatTable replayed = SeatTable.apply(SeatTable.empty(), new TmrLicenseEvent.SeatReleased(1, "release", 10));
        replayed = SeatTable.apply(replayed, new TmrLicenseEvent.SeatGranted(seat(4, AccessMode.EXCLUSIVE, "x", 4), 11));
        SeatTable adopted = new SeatTable();
        adopted.add(seat(2, AccessMode.USERLIMIT, "a", 2));
        adopted.add(seat(3, AccessMode.STATIONSHARE, "b", 3));
        adopted.add(seat(1, AccessMode.USERLIMIT, "c", 1));
        adopted.remove(1, 10);
        replayed = SeatTable.apply(replayed, new TmrLicenseEvent.Checkpoint(adopted.toSnapshot(), 12));

        assertEquals(java.util.Set.copyOf(adopted.all()), java.util.Set.copyOf(replayed.all()));
        assertEquals(adopted.released(), replayed.released());
        assertEquals(0, replayed.exclusiveHandle(), "the exclusive seat granted before the checkpoint is gone");
        assertEquals(2, replayed.seatsInUse(10));
        assertTrue(replayed.releasedLately(1));
        assertTrue(replayed.byRequest(seat(2, AccessMode.USERLIMIT, "a", 2).requestKey()).isPresent());
        // And it goes on from there.
        replayed = SeatTable.apply(replayed, new TmrLicenseEvent.SeatReleased(2, "release", 13));
        assertEquals(1, replayed.seatsInUse(10));
    }
}
