package io.opentmr.persistence.journal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.opentmr.persistence.Counter;
import io.opentmr.persistence.Fixtures;
import io.opentmr.persistence.TestConfig;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.pattern.StatusReply;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A journal written by the plugin in format version 1 ({@code journal-v1/plugin}: counter-1 added 1..12, snapshots
 * at 5 and 10) recovers through today's plugin, takes new (version 2) records and recovers again.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class OldFormatJournalTest {

    private static final Duration WAIT = Duration.ofSeconds(10);

    @TempDir
    Path dir;

    private static long add(ActorTestKit kit, ActorRef<Counter.Command> counter, long amount) {
        TestProbe<StatusReply<Long>> probe = kit.createTestProbe();
        counter.tell(new Counter.Add(amount, probe.getRef()));
        return probe.receiveMessage(WAIT).getValue();
    }

    private static long get(ActorTestKit kit, ActorRef<Counter.Command> counter) {
        TestProbe<Long> probe = kit.createTestProbe();
        counter.tell(new Counter.Get(probe.getRef()));
        return probe.receiveMessage(WAIT);
    }

    @Test
    void aVersion1JournalRecoversAndTakesNewRecords() throws Exception {
        Path journal = Fixtures.copy("journal-v1/plugin", dir.resolve("journal"));
        ActorTestKit first = ActorTestKit.create("old-format-1", TestConfig.forDir(journal));
        try {
            ActorRef<Counter.Command> counter = first.spawn(Counter.create("counter-1"));
            assertEquals(78, get(first, counter));
            assertEquals(178, add(first, counter, 100));
        } finally {
            first.shutdownTestKit();
        }
        ActorTestKit second = ActorTestKit.create("old-format-2", TestConfig.forDir(journal));
        try {
            assertEquals(178, get(second, second.spawn(Counter.create("counter-1"))));
        } finally {
            second.shutdownTestKit();
        }
    }
}
