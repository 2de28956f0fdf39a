package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.typesafe.config.ConfigFactory;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.testing.Await;
import io.opentmr.testing.MutableClock;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.backend.BackendWatcher;
import java.nio.file.Path;
import java.time.Clock;
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
 * Steps of a node's wall clock, its backends on the real clock. A step back does not keep the node's grants beyond
 * their TTL on its monotonic clock. A node holding a single backend's grant (a minority) gives it back after two to
 * four lease TTLs, so that a rival can hold two; that time too is measured on the monotonic clock: a step of the
 * node's wall clock is not time held.
 */
@Timeout(60)
@ExtendWith(NoLeaks.class)
class NodeClockStepTest {

    private static final String GIVEN_BACK = "without a certificate";
    private static final String GRANTED = "granted the node the lease";
    private static final Duration HEARTBEAT = ConfigFactory.load().getDuration("opentmr.node.heartbeat-interval");
    private static final Duration TTL = ConfigFactory.load().getDuration("opentmr.node.lease-ttl");

    @TempDir
    Path dir;

    private final MutableClock clock = new MutableClock(Instant.now().truncatedTo(ChronoUnit.SECONDS));
    private final Logger log = (Logger) LoggerFactory.getLogger(BackendWatcher.class);
    private final ListAppender<ILoggingEvent> lines = new ListAppender<>();
    private TmrTestGroup group;
    /** The end of backend 1's name in its watcher's log lines: its port. */
    private String backendOne;

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
    void aStepForwardOfTheNodesClockIsNotTimeHeldInAMinority() throws Exception {
        holdBackendOneAlone();
        // The node's clock steps ten minutes forward, far beyond the two to four TTLs of a minority.
        clock.advance(Duration.ofMinutes(10));
        Thread.sleep(6 * HEARTBEAT.toMillis());
        assertEquals(List.of(), matching(GIVEN_BACK), "a step of the clock is not time held in a minority");
        // Time that does pass still counts, while the node's clock stands still from here.
        Await.until("backend 1's grant given back", () -> !matching(GIVEN_BACK).isEmpty());
    }

    @Test
    void aStepBackOfTheNodesClockDoesNotHoldOffTheGiveBack() throws Exception {
        holdBackendOneAlone();
        clock.advance(Duration.ofMinutes(-10));
        Await.until("backend 1's grant given back", () -> !matching(GIVEN_BACK).isEmpty());
    }

    @Test
    void aStepBackOfTheNodesClockDoesNotKeepGrantsTheBackendsMayHaveLetRunOut() throws Exception {
        // The node's clock runs here (the grants would never run out on a clock standing still), ten minutes back.
        SteppedClock nodeClock = new SteppedClock();
        group = new TmrTestGroup(dir, nodeClock, Map.of(), i -> Map.of(), i -> Clock.systemUTC());
        group.startNode(Map.of());
        Await.until("the node serves", () -> group.node().serving());
        // No answer of the backends comes back (a partition on the way back): the node cannot know that a grant was
        // renewed, and must count each as run out a TTL after the last renewal it sent.
        for (int b = 0; b < 3; b++) {
            group.link(b).freeze();
        }
        nodeClock.step(Duration.ofMinutes(-10));
        // On the wall clock alone the node held them ten minutes longer: it served on grants the backends may have
        // let go. A TTL after the last renewal it sent, at most a heartbeat before the freeze. (The condition is
        // worked out from the clocks when asked: a poll held up on a slow machine still sees it.)
        Await.equal("the node stops serving once its grants ran out", false, () -> group.node().serving(),
                TTL.plus(HEARTBEAT.multipliedBy(2)));
    }

    /** The real clock, stepped by the test. */
    private static final class SteppedClock extends Clock {

        private volatile Duration offset = Duration.ZERO;

        void step(Duration by) {
            offset = offset.plus(by);
        }

        @Override
        public java.time.ZoneId getZone() {
            return java.time.ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(java.time.ZoneId zone) {
            return this;
        }

        @Override
        public Instant instant() {
            return Instant.now().plus(offset);
        }
    }

    /**
     * Backends 2 and 3 are down: the node holds backend 1's grant alone, a minority, and the heartbeat checks have
     * seen it. The backends run on the real clock, the node on the test's, which stands still unless moved.
     */
    private void holdBackendOneAlone() throws Exception {
        group = new TmrTestGroup(dir, clock, Map.of(), i -> Map.of(), i -> Clock.systemUTC());
        group.kill(1);
        group.kill(2);
        group.startNode(Map.of());
        backendOne = ":" + group.backendAddress(0).getPort() + ")";
        Await.until("backend 1's grant", () -> !matching(GRANTED).isEmpty());
        Thread.sleep(4 * HEARTBEAT.toMillis());
        assertEquals(List.of(), matching(GIVEN_BACK), "nothing given back within a TTL");
    }

    private List<String> matching(String text) {
        synchronized (lines) {
            return lines.list.stream().map(ILoggingEvent::getFormattedMessage).filter(line -> line.contains(text))
                    .filter(line -> line.startsWith("backend 1 (") && line.contains(backendOne)).toList();
        }
    }
}
