package io.opentmr.persistence.journal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.opentmr.persistence.RefHolder;
import io.opentmr.persistence.TestConfig;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Events and snapshots holding typed ActorRefs go through our plugins as through Pekko's own: serialized with the
 * actor system's transport information, and resolved to live refs again on replay and snapshot load.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ActorRefPayloadTest {

    private static final Duration WAIT = Duration.ofSeconds(10);

    @TempDir
    Path dir;

    @Test
    void eventsAndSnapshotsHoldingActorRefsArePersistedAndRecovered() {
        ActorTestKit kit = ActorTestKit.create("refs", TestConfig.forDir(dir));
        try {
            TestProbe<String> reports = kit.createTestProbe();
            TestProbe<String> first = kit.createTestProbe();
            TestProbe<String> second = kit.createTestProbe();
            TestProbe<RefHolder.Refs> replies = kit.createTestProbe();
            ActorRef<RefHolder.Remember> holder = kit.spawn(RefHolder.create("holder-1", reports.getRef()));
            reports.expectMessage(WAIT, "recovered 0");
            holder.tell(new RefHolder.Remember(first.getRef(), replies.getRef()));
            replies.receiveMessage(WAIT);
            // The snapshot after the first event holds first's ref.
            reports.expectMessage(WAIT, "snapshot 1");
            holder.tell(new RefHolder.Remember(second.getRef(), replies.getRef()));
            replies.receiveMessage(WAIT);
            kit.stop(holder);

            // Recovery loads the snapshot (first) and replays the second event (second).
            ActorRef<RefHolder.Remember> again = kit.spawn(RefHolder.create("holder-1", reports.getRef()));
            reports.expectMessage(WAIT, "recovered 2");
            TestProbe<String> third = kit.createTestProbe();
            again.tell(new RefHolder.Remember(third.getRef(), replies.getRef()));
            RefHolder.Refs refs = replies.receiveMessage(WAIT);
            assertEquals(3, refs.refs().size());
            refs.refs().get(0).tell("to first");
            refs.refs().get(1).tell("to second");
            first.expectMessage(WAIT, "to first");
            second.expectMessage(WAIT, "to second");
        } finally {
            kit.shutdownTestKit();
        }
    }
}
