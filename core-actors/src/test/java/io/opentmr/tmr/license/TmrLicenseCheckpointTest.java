package io.opentmr.tmr.license;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.tmr.backend.PeerGroup;
import java.nio.ByteBuffer;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.persistence.testkit.javadsl.PersistenceTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A twin's license deletes events only where the journal still holds a {@link TmrLicenseEvent.Checkpoint} above
 * them: the standby has no snapshot and replays the journal as it is when the deletion reaches it. Checked at each
 * deletion the journal receives, in the journal's own order (a deletion reaches the standby with the records
 * written before it, never with those written after it).
 */
@Timeout(60)
class TmrLicenseCheckpointTest {

    private static final Duration REPLY = Duration.ofSeconds(20);
    private static final long SESSION = 1;
    private static ActorTestKit kit;
    private static PersistenceTestKit journal;

    @BeforeAll
    static void startKit() {
        kit = TmrLicenseRestartTest.persistenceTestKit("tmr-license-checkpoint");
        journal = PersistenceTestKit.create(kit.system());
    }

    @AfterAll
    static void stopKit() {
        kit.shutdownTestKit();
    }

    @Test
    void aFlushLargerThanThreeSnapshotsKeepsACheckpointAboveEveryDeletion() throws Exception {
        LicenseKey key = new LicenseKey(6_000_010, 42, 951);
        long quantity = 40;
        ProductInfo product = new ProductInfo(key.firmCode(), key.productCode(), 0xFF, "checkpoint", quantity, 0,
                key.tmrId(), false, 0, 0, 0, 0, 0, 0);
        PeerGroup peers = new PeerGroup(3, Clock.systemUTC(), Duration.ofSeconds(30));
        FakeBackend[] fakes = TmrLicenseRestartTest.fakes(key, peers, quantity, quantity, quantity);
        String persistenceId = TmrLicense.persistenceId(key).id();
        StandbyReplay standby = new StandbyReplay();
        StandbyReplay.Held held = standby.watchHoldingFirstWrite(persistenceId);
        journal.withPolicy(standby);
        try {
            TmrLicenseRestartTest.Parent parent = new TmrLicenseRestartTest.Parent();
            // A snapshot every 4 events (a checkpoint due every 2, deletions 12 events behind a snapshot).
            ActorRef<TmrLicense.Command> license = kit.spawn(TmrLicense.create(key, peers, parent,
                    Clock.systemUTC(), new Random(5), id -> ByteBuffer.allocate(16).putLong(id).array(),
                    new TmrLicense.Settings(Duration.ofHours(1), 4, true)));
            BitSet all = new BitSet();
            all.set(0, 3);
            TmrLicenseRestartTest.awaitRecoveries(parent, 1);
            TmrLicenseRestartTest.syncAll(license, fakes, parent, all, product, key);

            // The first grant's write is held; fifteen accesses wait meanwhile and are journaled in the next flush.
            TestProbe<TmrLicense.Reply> replies = kit.createTestProbe();
            license.tell(access(0, replies));
            assertTrue(held.written().await(REPLY.toSeconds(), TimeUnit.SECONDS), "the first grant was not written");
            int accesses = 16;
            for (int i = 1; i < accesses; i++) {
                license.tell(access(i, replies));
            }
            held.release().countDown();
            List<Long> granted = new ArrayList<>();
            for (int i = 0; i < accesses; i++) {
                granted.add(assertInstanceOf(TmrLicense.Granted.class,
                        TmrLicenseRestartTest.pumpUntilAnswer(fakes, replies)).handleId());
            }
            // A deletion follows the snapshot; the next write goes behind it in the journal.
            license.tell(access(accesses, replies));
            assertInstanceOf(TmrLicense.Granted.class, TmrLicenseRestartTest.pumpUntilAnswer(fakes, replies));

            assertTrue(standby.deletions(persistenceId) > 0, "the flush took a snapshot and deleted events behind it");
            assertEquals(List.of(), standby.lost(persistenceId), "every deletion left a checkpoint above it");
            kit.stop(license, REPLY);
        } finally {
            journal.resetPolicy();
        }
    }

    /**
     * A big table's checkpoints come about every as many events as it has handles (at most twice snapshot-every), not
     * every half snapshot-every whatever the table: otherwise opening n handles journals and replicates n² /
     * snapshot-every seats, and a standby replays up to eight whole tables. Every deletion still leaves one above it.
     */
    @Test
    void aGrowingTablesCheckpointsComeLessOftenAndStillStayAboveEveryDeletion() throws Exception {
        LicenseKey key = new LicenseKey(6_000_010, 43, 952);
        long quantity = 40;
        ProductInfo product = new ProductInfo(key.firmCode(), key.productCode(), 0xFF, "checkpoint", quantity, 0,
                key.tmrId(), false, 0, 0, 0, 0, 0, 0);
        PeerGroup peers = new PeerGroup(3, Clock.systemUTC(), Duration.ofSeconds(30));
        FakeBackend[] fakes = TmrLicenseRestartTest.fakes(key, peers, quantity, quantity, quantity);
        String persistenceId = TmrLicense.persistenceId(key).id();
        StandbyReplay standby = new StandbyReplay();
        standby.watch(persistenceId);
        journal.withPolicy(standby);
        try {
            TmrLicenseRestartTest.Parent parent = new TmrLicenseRestartTest.Parent();
            // A snapshot every 4 events, deletions 12 events behind it; a checkpoint was due every 2 events.
            ActorRef<TmrLicense.Command> license = kit.spawn(TmrLicense.create(key, peers, parent,
                    Clock.systemUTC(), new Random(6), id -> ByteBuffer.allocate(16).putLong(id).array(),
                    new TmrLicense.Settings(Duration.ofHours(1), 4, true)));
            BitSet all = new BitSet();
            all.set(0, 3);
            TmrLicenseRestartTest.awaitRecoveries(parent, 1);
            TmrLicenseRestartTest.syncAll(license, fakes, parent, all, product, key);

            // One access at a time: each grant is a write of its own.
            TestProbe<TmrLicense.Reply> replies = kit.createTestProbe();
            int accesses = 32;
            for (int i = 0; i < accesses; i++) {
                license.tell(access(i, replies));
                assertInstanceOf(TmrLicense.Granted.class, TmrLicenseRestartTest.pumpUntilAnswer(fakes, replies));
            }

            List<Integer> sizes = standby.checkpointSizes(persistenceId);
            long seatsWritten = sizes.stream().mapToLong(Integer::longValue).sum();
            // Every 2 events: 16 checkpoints of 272 seats in all. Now after grants 2, 10, 18 and 26: 4 of 56 seats.
            assertTrue(sizes.size() <= 7, "checkpoints of " + sizes + " seats for " + accesses + " grants");
            assertTrue(seatsWritten <= 3L * accesses, seatsWritten + " seats in checkpoints " + sizes + " for "
                    + accesses + " grants");
            assertTrue(standby.deletions(persistenceId) > 0, "snapshots deleted events behind them");
            assertEquals(List.of(), standby.lost(persistenceId), "every deletion left a checkpoint above it");
            kit.stop(license, REPLY);
        } finally {
            journal.resetPolicy();
        }
    }

    private static TmrLicense.Access access(int i, TestProbe<TmrLicense.Reply> replies) {
        return new TmrLicense.Access(0, AccessMode.USERLIMIT, new TmrLicense.Client("station-" + i, "host", "user",
                i, SESSION), i + 1, replies.getRef());
    }
}
