package io.opentmr.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.journal.EventCodec;
import io.opentmr.persistence.log.LogOptions;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.SegmentedLog;
import io.opentmr.persistence.snapshot.WarmStates;
import io.opentmr.protocol.AccessMode;
import io.opentmr.tmr.license.Seat;
import io.opentmr.tmr.license.TmrLicense;
import io.opentmr.tmr.license.TmrLicenseEvent;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.persistence.PersistentRepr;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The standby's reader of its log, over a real log: what it offers at a take-over is the table of the log as it is
 * then, also when records came after its last read, and when the log was cut back under what it had read.
 */
class StandbyTailTest {

    private static final String PID = "tmr-license|6000010-101-1";

    @TempDir
    Path dir;

    private ActorTestKit kit;
    private SegmentedLog log;
    private EventCodec codec;
    private final AtomicLong epoch = new AtomicLong(1);

    @BeforeEach
    void open() throws Exception {
        kit = ActorTestKit.create();
        log = SegmentedLog.open(LogOptions.defaults(dir).withEpoch(epoch::get));
        codec = new EventCodec((org.apache.pekko.actor.ExtendedActorSystem) Adapter.toClassic(kit.system()));
    }

    @AfterEach
    void close() throws Exception {
        kit.shutdownTestKit();
        log.close();
    }

    private static Seat seat(long id) {
        return new Seat(id, AccessMode.USERLIMIT, 0, "station", "user", 1, 1, Seat.digestOf(new byte[16]), 1, 0,
                "host", id);
    }

    private void write(long sequenceNr, TmrLicenseEvent event) throws Exception {
        LogRecord record = codec.toRecord(PersistentRepr.apply(event, sequenceNr, PID, "", false, null, "writer"), 0);
        log.append(List.of(log.encode(List.of(record)))).get(10, TimeUnit.SECONDS);
    }

    private static TmrLicenseEvent granted(long id) {
        return new TmrLicenseEvent.SeatGranted(seat(id), 0);
    }

    private long read(ActorRef<StandbyTail.Command> tail) throws Exception {
        CompletableFuture<Long> done = new CompletableFuture<>();
        tail.tell(new StandbyTail.Read(done));
        return done.get(10, TimeUnit.SECONDS);
    }

    private WarmStates.Offer finish(ActorRef<StandbyTail.Command> tail, WarmStates warm) throws Exception {
        CompletableFuture<Integer> done = new CompletableFuture<>();
        tail.tell(new StandbyTail.Finish(done));
        assertEquals(1, done.get(10, TimeUnit.SECONDS), "one table offered");
        return warm.take(PID).orElseThrow();
    }

    private static List<Long> handles(WarmStates.Offer offer) {
        TmrLicense.WarmTable table = (TmrLicense.WarmTable) offer.state();
        return table.table().all().stream().map(Seat::handleId).sorted().toList();
    }

    @Test
    void recordsWrittenAfterTheLastReadAreFoldedBeforeTheTablesAreOffered() throws Exception {
        WarmStates warm = new WarmStates();
        ActorRef<StandbyTail.Command> tail = kit.spawn(StandbyTail.create(log, warm));
        write(1, granted(1));
        write(2, granted(2));
        assertEquals(2, read(tail));
        // The last records the twin sent before it died: not read yet when the node leads.
        write(3, new TmrLicenseEvent.SeatReleased(1, "released", 0));
        write(4, granted(4));
        WarmStates.Offer offer = finish(tail, warm);
        assertEquals(4, offer.sequenceNr());
        assertEquals(List.of(2L, 4L), handles(offer));
        assertFalse(warm.take(PID).isPresent(), "an offer is taken once");
    }

    @Test
    void aLogCutBackUnderWhatWasReadIsReadAgainAndOnlyItsRecordsCount() throws Exception {
        WarmStates warm = new WarmStates();
        ActorRef<StandbyTail.Command> tail = kit.spawn(StandbyTail.create(log, warm));
        write(1, granted(1));
        write(2, granted(2));
        write(3, granted(3));
        assertEquals(3, read(tail));
        // The grant of handle 3 (epoch 1) never reached the new leader: the follower cuts it, and the leader's own
        // records (epoch 2) follow at the same positions and sequence numbers.
        assertEquals(2, log.truncateFrom(2).get(10, TimeUnit.SECONDS));
        epoch.set(2);
        write(3, new TmrLicenseEvent.SeatReleased(1, "released", 0));
        write(4, granted(4));
        WarmStates.Offer offer = finish(tail, warm);
        assertEquals(4, offer.sequenceNr());
        assertEquals(List.of(2L, 4L), handles(offer), "handle 3 was cut back; handle 1 released by the new leader");
        assertTrue(((TmrLicense.WarmTable) offer.state()).table().releasedLately(1));
    }
}
