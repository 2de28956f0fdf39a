package io.opentmr.tmr.license;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.AccessMode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The standby's fold of a license's records must be the table a replay of the same journal makes: from the first
 * event, or from a checkpoint on, and never a table that missed an event.
 */
class StandbyTablesTest {

    private static final String PID = "tmr-license|6000010-101-1";
    private static final String CHECKPOINT = "io.opentmr.tmr.license.TmrLicenseEvent$Checkpoint";
    private static final String OTHER = "io.opentmr.tmr.license.TmrLicenseEvent$SeatGranted";

    private static Seat seat(long id, AccessMode mode) {
        return new Seat(id, mode, 0, "station-" + (id % 3), "user", 1, 1, Seat.digestOf(new byte[16]), 1, 0, "host",
                id);
    }

    /** A journal of grants, releases and (every {@code checkpointEvery} events) checkpoints of the table then. */
    private static List<TmrLicenseEvent> journal(long seed, int events, int checkpointEvery) {
        Random random = new Random(seed);
        List<TmrLicenseEvent> journal = new ArrayList<>();
        SeatTable table = new SeatTable();
        List<Long> held = new ArrayList<>();
        long next = 1;
        for (int i = 0; i < events; i++) {
            TmrLicenseEvent event;
            if (i > 0 && i % checkpointEvery == 0) {
                event = new TmrLicenseEvent.Checkpoint(table.toSnapshot(), i);
            } else if (held.isEmpty() || random.nextInt(3) > 0) {
                AccessMode mode = random.nextBoolean() ? AccessMode.NOUSERLIMIT : AccessMode.USERLIMIT;
                held.add(next);
                event = new TmrLicenseEvent.SeatGranted(seat(next++, mode), i);
            } else {
                long id = held.remove(random.nextInt(held.size()));
                event = new TmrLicenseEvent.SeatReleased(id, "released", i);
            }
            table = SeatTable.apply(table, event);
            journal.add(event);
        }
        return journal;
    }

    private static SeatTable replay(List<TmrLicenseEvent> journal) {
        SeatTable table = SeatTable.empty();
        for (TmrLicenseEvent event : journal) {
            table = SeatTable.apply(table, event);
        }
        return table;
    }

    private static void feed(StandbyTables tables, List<TmrLicenseEvent> journal, int fromIndex, int toIndex) {
        for (int i = fromIndex; i < toIndex; i++) {
            TmrLicenseEvent event = journal.get(i);
            tables.event(PID, i + 1, event instanceof TmrLicenseEvent.Checkpoint ? CHECKPOINT : OTHER, () -> event);
        }
    }

    private static List<Long> handles(SeatTable table) {
        return table.all().stream().map(Seat::handleId).sorted().toList();
    }

    @Test
    void aTableFoldedFromTheFirstEventIsTheReplaysAfterEveryEvent() {
        for (long seed = 1; seed <= 20; seed++) {
            List<TmrLicenseEvent> journal = journal(seed, 300, 37);
            StandbyTables tables = new StandbyTables();
            for (int i = 0; i < journal.size(); i++) {
                feed(tables, journal, i, i + 1);
                SeatTable replayed = replay(journal.subList(0, i + 1));
                assertEquals(handles(replayed), tables.handles(PID), "seed " + seed + " after event " + (i + 1));
            }
            Map<String, StandbyTables.Warm> handed = tables.handOver();
            TmrLicense.WarmTable warm = handed.get(PID).table();
            SeatTable replayed = replay(journal);
            assertEquals(journal.size(), handed.get(PID).sequenceNr());
            assertEquals(handles(replayed), handles(warm.table()));
            assertEquals(replayed.seatsInUse(10), warm.table().seatsInUse(10), "seed " + seed);
            assertEquals(replayed.released(), warm.table().released(), "releases remembered, seed " + seed);
            assertEquals((journal.size() - 1) % 37, warm.sinceCheckpoint(), "events since the newest checkpoint");
            assertTrue(warm.sinceCheckpointEvents().stream().noneMatch(e -> e instanceof TmrLicenseEvent.Checkpoint));
            assertEquals(0, tables.licensesSeen(), "handed over: the fold keeps nothing");
        }
    }

    @Test
    void aLogWhoseFirstEventsAreDeletedCountsOnlyFromItsNextCheckpoint() {
        List<TmrLicenseEvent> journal = journal(7, 200, 50);
        StandbyTables tables = new StandbyTables();
        // Events 1..60 deleted: the fold starts at 61, with no checkpoint before 101 (index 100).
        feed(tables, journal, 60, 100);
        assertEquals(List.of(), tables.handles(PID));
        assertTrue(tables.handOver().isEmpty(), "no table without its checkpoint: the licenses replay instead");
        tables = new StandbyTables();
        feed(tables, journal, 60, 130);
        assertEquals(handles(replay(journal.subList(0, 130))), tables.handles(PID));
        assertEquals(1, tables.tablesReady());
    }

    @Test
    void anEventNotSeenDropsTheTableUntilTheNextCheckpoint() {
        List<TmrLicenseEvent> journal = journal(11, 200, 50);
        StandbyTables tables = new StandbyTables();
        feed(tables, journal, 0, 70);
        assertEquals(1, tables.tablesReady());
        // Event 71 is missed.
        feed(tables, journal, 71, 90);
        assertEquals(0, tables.tablesReady(), "a table that missed an event is not handed over");
        assertFalse(tables.handOver().containsKey(PID));
        tables = new StandbyTables();
        feed(tables, journal, 0, 70);
        feed(tables, journal, 71, 120);
        assertEquals(handles(replay(journal.subList(0, 120))), tables.handles(PID), "counts again from event 101");
    }

    @Test
    void eventsPassedOverBeforeACheckpointLeaveTheTableTheReplaysFromThatCheckpointOn() {
        List<TmrLicenseEvent> journal = journal(5, 160, 50);
        StandbyTables tables = new StandbyTables();
        feed(tables, journal, 0, 20);
        for (int i = 20; i < 100; i++) {
            tables.skip(PID, i + 1);
        }
        assertEquals(0, tables.tablesReady(), "no table until the checkpoint after the events passed over");
        feed(tables, journal, 100, 160);
        assertEquals(handles(replay(journal)), tables.handles(PID));
        assertEquals(1, tables.tablesReady());
    }

    @Test
    void aRecordSeenAgainChangesNothing() {
        List<TmrLicenseEvent> journal = journal(3, 60, 25);
        StandbyTables tables = new StandbyTables();
        feed(tables, journal, 0, 40);
        feed(tables, journal, 30, 40);
        assertEquals(handles(replay(journal.subList(0, 40))), tables.handles(PID));
        assertEquals(1, tables.tablesReady());
    }
}
