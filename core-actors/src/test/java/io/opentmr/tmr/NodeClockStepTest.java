package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
 * Steps of a node's wall clock, its backends on the real clock. The node's grants run for their TTL on its monotonic
 * clock: a step forward does not end them, a step back does not keep them. A node holding a single backend's grant
 * (a minority) gives it back after two to four lease TTLs, so that a rival can hold two; that time too is measured
 * on the monotonic clock: a step of the node's wall clock is not time held.
 */
@Timeout(60)
@ExtendWith(NoLeaks.class)
class NodeClockStepTest {

    private static final String GIVEN_BACK = "without a certificate";
    private static final String GRANTED = "granted the node the lease";
    private static final Duration HEARTBEAT = ConfigFactory.load().getDuration("opentmr.node.heartbeat-interval");

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
    void aStepForwardOfTheNodesClockDoesNotEndItsGrants() throws Exception {
        serveOnThreeBackends();
        clock.advance(Duration.ofMinutes(10));
        // Watched for four heartbeats: on the wall clock every grant ran out at the step, and the node served no
        // client until its renewals came back.
        long end = System.nanoTime() + 4 * HEARTBEAT.toNanos();
        int looks = 0;
        while (System.nanoTime() < end) {
            assertTrue(group.node().serving(), "the node still serves after " + looks + " looks");
            looks++;
            Thread.sleep(5);
        }
    }

    @Test
    void aStepBackOfTheNodesClockDoesNotKeepGrantsTheBackendsLetRunOut() throws Exception {
        serveOnThreeBackends();
        // No answer of the backends comes back (a partition on the way back): the node cannot know that a grant was
        // renewed, and must count each as run out a TTL after the last renewal it heard of.
        for (int b = 0; b < 3; b++) {
            group.link(b).freeze();
        }
        clock.advance(Duration.ofMinutes(-10));
        // On the wall clock the node held them ten minutes longer: served on grants the backends may have let go.
        Await.until("the node stops serving once its grants ran out", () -> !group.node().serving());
    }

    private void serveOnThreeBackends() throws Exception {
        group = new TmrTestGroup(dir, clock, Map.of(), i -> Map.of(), i -> Clock.systemUTC());
        group.startNode(Map.of());
        Await.until("the node serves", () -> group.node().serving());
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
