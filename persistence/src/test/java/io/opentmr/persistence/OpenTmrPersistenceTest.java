package io.opentmr.persistence;

import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.log.JournalLockedException;
import io.opentmr.persistence.log.LogOptions;
import io.opentmr.persistence.log.SegmentedLog;
import java.io.IOException;
import java.nio.file.Path;
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
}
