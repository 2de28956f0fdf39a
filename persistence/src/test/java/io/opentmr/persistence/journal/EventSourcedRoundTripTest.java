package io.opentmr.persistence.journal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Counter;
import io.opentmr.persistence.Fixtures;
import io.opentmr.persistence.TestConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.pattern.StatusReply;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** A real EventSourcedBehavior through our journal and snapshot store, across an actor system restart. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class EventSourcedRoundTripTest {

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
    void aSecondActorSystemOnALockedDirectoryFailsRecoveryAtOnce() {
        ActorTestKit owner = ActorTestKit.create("owner", TestConfig.forDir(dir));
        ActorTestKit intruder = ActorTestKit.create("intruder", TestConfig.forDir(dir));
        try {
            ActorRef<Counter.Command> mine = owner.spawn(Counter.create("counter-1"));
            assertEquals(1, add(owner, mine, 1));
            ActorRef<Counter.Command> theirs = intruder.spawn(Counter.create("counter-1"));
            TestProbe<Object> watcher = intruder.createTestProbe();
            // Stopped by the recovery failure (the lock error), well before the 30 s recovery timeout.
            watcher.expectTerminated(theirs, WAIT);
            assertEquals(1, get(owner, mine));
        } finally {
            intruder.shutdownTestKit();
            owner.shutdownTestKit();
        }
    }

    @Test
    void stateIsRecoveredInANewActorSystemOnTheSameDirectory() throws Exception {
        ActorTestKit first = ActorTestKit.create("round-trip-1", TestConfig.forDir(dir));
        try {
            ActorRef<Counter.Command> counter = first.spawn(Counter.create("counter-1"));
            long total = 0;
            for (long i = 1; i <= 12; i++) {
                total = add(first, counter, i);
            }
            assertEquals(78, total);
        } finally {
            first.shutdownTestKit();
        }
        try (Stream<Path> snaps = Files.list(dir.resolve("snapshots"))) {
            assertTrue(snaps.findAny().isPresent(), "snapshots were written every 5 events");
        }

        ActorTestKit second = ActorTestKit.create("round-trip-2", TestConfig.forDir(dir));
        try {
            ActorRef<Counter.Command> counter = second.spawn(Counter.create("counter-1"));
            assertEquals(78, get(second, counter));
            assertEquals(178, add(second, counter, 100));
            ActorRef<Counter.Command> fresh = second.spawn(Counter.create("counter-2"));
            assertEquals(0, get(second, fresh));
        } finally {
            second.shutdownTestKit();
        }
    }

    /**
     * A journal written by the plugin in format version 1 ({@code journal-v1/plugin}: counter-1 added 1..12,
     * snapshots at 5 and 10, snapshot files of version 1) recovers, takes new (version 2) records and recovers again.
     */
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
