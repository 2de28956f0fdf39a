package io.opentmr.tmr.license;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.persistence.query.PersistenceQuery;
import org.apache.pekko.persistence.testkit.PersistenceTestKitPlugin;
import org.apache.pekko.persistence.testkit.PersistenceTestKitSnapshotPlugin;
import org.apache.pekko.persistence.testkit.query.javadsl.PersistenceTestKitReadJournal;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A standby's rehearsal of the take-over's journal path: it writes and recovers its seat tables through Pekko's
 * event sourcing and the node's serializer, on its own journal, and ends.
 */
class StandbyRehearsalTest {

    /** The node's journal and snapshot store here are Pekko's test kit's, so the test can look into them. */
    private final ActorTestKit kit = ActorTestKit.create("rehearsal", PersistenceTestKitPlugin.getInstance().config()
            .withFallback(PersistenceTestKitSnapshotPlugin.getInstance().config()).withFallback(ConfigFactory.load()));

    @AfterEach
    void close() {
        kit.shutdownTestKit();
    }

    @Test
    void everyCycleRecoversTheTableItWroteAndNothingReachesTheNodesJournal() {
        TestProbe<StandbyRehearsal.Done> done = kit.createTestProbe();
        kit.spawn(StandbyRehearsal.create(done.getRef()), "rehearsal");
        StandbyRehearsal.Done result = done.expectMessageClass(StandbyRehearsal.Done.class, Duration.ofSeconds(60));
        // 100 events a cycle: 25 seats granted and released again, 25 times two seats granted and kept.
        assertEquals(new StandbyRehearsal.Done(StandbyRehearsal.CYCLES, 50), result);
        PersistenceTestKitReadJournal nodeJournal = PersistenceQuery.get(kit.system())
                .getReadJournalFor(PersistenceTestKitReadJournal.class, PersistenceTestKitReadJournal.Identifier());
        for (int cycle = 0; cycle < StandbyRehearsal.CYCLES; cycle++) {
            String id = StandbyRehearsal.idOf(cycle).id();
            assertEquals(0, nodeJournal.currentEventsByPersistenceId(id, 0, Long.MAX_VALUE)
                    .runFold(0, (n, e) -> n + 1, kit.system()).toCompletableFuture().join(),
                    "the node's journal plugin got no event of the rehearsal");
        }
    }
}
