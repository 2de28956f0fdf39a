package io.opentmr.persistence;

import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.persistence.log.JournalLockedException;
import io.opentmr.persistence.log.LogOptions;
import io.opentmr.persistence.log.SegmentedLog;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.testkit.javadsl.TestKit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(value = 60, unit = TimeUnit.SECONDS)
class OpenTmrPersistenceTest {

    @TempDir
    Path dir;

    @Test
    void aFailedOpenIsRememberedNotRetriedOnEveryCall() throws Exception {
        ActorSystem system = ActorSystem.create("sticky", TestConfig.forDir(dir));
        try {
            OpenTmrPersistence ext = OpenTmrPersistence.get(system);
            SegmentedLog owner = SegmentedLog.open(LogOptions.defaults(dir));
            try {
                assertThrows(JournalLockedException.class, ext::log);
            } finally {
                owner.close();
            }
            // The directory would open now; the extension still reports the first failure instead of opening the
            // journal behind the back of the plugins that already failed their requests with it.
            IOException again = assertThrows(IOException.class, ext::log);
            assertTrue(again.getMessage().contains("failed to open") && again.getMessage().contains(dir.toString()),
                    again.getMessage());
            assertTrue(again.getCause() instanceof JournalLockedException, String.valueOf(again.getCause()));
            assertSame(again.getCause(), assertThrows(IOException.class, ext::log).getCause());
        } finally {
            TestKit.shutdownActorSystem(system, scala.concurrent.duration.Duration.create(20, TimeUnit.SECONDS),
                    true);
        }
    }

    @Test
    void aSnapshotDirectoryIsLockedWhereverItLives() throws Exception {
        Path snapshots = dir.resolve("shared-snapshots");
        ActorSystem first = ActorSystem.create("first", withSnapshots(dir.resolve("journal-a"), snapshots));
        ActorSystem second = ActorSystem.create("second", withSnapshots(dir.resolve("journal-b"), snapshots));
        try {
            OpenTmrPersistence.get(first).log();
            JournalLockedException refused = assertThrows(JournalLockedException.class,
                    () -> OpenTmrPersistence.get(second).log());
            assertTrue(refused.getMessage().contains("shared-snapshots"), refused.getMessage());
        } finally {
            for (ActorSystem s : new ActorSystem[] {second, first}) {
                TestKit.shutdownActorSystem(s, scala.concurrent.duration.Duration.create(20, TimeUnit.SECONDS), true);
            }
        }
        // The refused open left nothing locked: the second journal directory opens once the first system is gone.
        ActorSystem third = ActorSystem.create("third", withSnapshots(dir.resolve("journal-b"), snapshots));
        try {
            OpenTmrPersistence.get(third).log();
        } finally {
            TestKit.shutdownActorSystem(third, scala.concurrent.duration.Duration.create(20, TimeUnit.SECONDS), true);
        }
    }

    @Test
    void aSnapshotDirectoryThatIsTheJournalDirectoryIsLockedOnce() throws Exception {
        ActorSystem system = ActorSystem.create("same", withSnapshots(dir, dir));
        try {
            OpenTmrPersistence.get(system).log();
        } finally {
            TestKit.shutdownActorSystem(system, scala.concurrent.duration.Duration.create(20, TimeUnit.SECONDS), true);
        }
    }

    private static Config withSnapshots(Path journal, Path snapshots) {
        return ConfigFactory.parseMap(Map.of("opentmr.persistence.snapshot-dir", snapshots.toString()))
                .withFallback(TestConfig.forDir(journal));
    }
}
