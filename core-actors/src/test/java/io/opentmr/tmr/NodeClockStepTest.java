package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.testing.Await;
import io.opentmr.testing.MutableClock;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.backend.BackendWatcher;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * A node holding a single backend's grant (a minority) gives it back after two to four lease TTLs, so that a rival
 * can hold two. That time is measured on the node's clock, which can step: a step is not time held.
 */
@Timeout(60)
@ExtendWith(NoLeaks.class)
class NodeClockStepTest {

    private static final String GIVEN_BACK = "without a certificate";
    private static final String GRANTED = "granted the node the lease";

    @TempDir
    Path dir;

    private final MutableClock clock = new MutableClock(Instant.now().truncatedTo(ChronoUnit.SECONDS));
    private final Logger log = (Logger) LoggerFactory.getLogger(BackendWatcher.class);
    private final ListAppender<ILoggingEvent> lines = new ListAppender<>();
    private TmrTestGroup group;

    @BeforeEach
    void listen() {
        lines.start();
        log.addAppender(lines);
    }

    @AfterEach
    void stop() {
        log.detachAppender(lines);
        if (group != null) {
            group.close();
        }
    }

    @Test
    void aClockStepForwardIsNotTakenForTimeHeldInAMinority() throws Exception {
        group = new TmrTestGroup(dir, clock, Map.of());
        // Backends 2 and 3 are down: the node holds backend 1's grant alone, a minority.
        group.kill(1);
        group.kill(2);
        group.startNode(Map.of());
        Await.until("backend 1's grant", () -> !matching(GRANTED).isEmpty());
        // Heartbeat checks see the minority and note its start; the test's clock does not move meanwhile.
        Thread.sleep(4 * heartbeat().toMillis());
        assertEquals(List.of(), matching(GIVEN_BACK), "nothing given back while the clock stands");

        // The clock steps ten minutes forward, far beyond the two to four TTLs of a minority.
        clock.advance(Duration.ofMinutes(10));
        Thread.sleep(6 * heartbeat().toMillis());
        assertEquals(List.of(), matching(GIVEN_BACK), "a step of the clock is not time held in a minority");

        // Time that does pass in a minority still counts: the clock moves a heartbeat per heartbeat from here.
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (matching(GIVEN_BACK).isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(heartbeat().toMillis());
            clock.advance(heartbeat());
        }
        assertTrue(!matching(GIVEN_BACK).isEmpty(), "a minority held for four TTLs of the node's clock is given back");
    }

    private Duration heartbeat() {
        return group.nodeConfig("node", "127.0.2.1", "node", Map.of()).getDuration("opentmr.node.heartbeat-interval");
    }

    private List<String> matching(String text) {
        synchronized (lines) {
            return lines.list.stream().map(ILoggingEvent::getFormattedMessage).filter(line -> line.contains(text))
                    .toList();
        }
    }
}
