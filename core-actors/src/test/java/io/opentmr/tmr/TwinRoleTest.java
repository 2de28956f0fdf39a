package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.TmrTestGroup;
import java.net.SocketTimeoutException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/** A twin node's role over a real group of three backends, with an activation of the test's own. */
class TwinRoleTest {

    @TempDir
    Path dir;

    private TmrTestGroup group;
    private TmrNode node;

    @BeforeEach
    void group() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(5, 2));
    }

    @AfterEach
    void close() {
        if (node != null) {
            node.close();
        }
        group.close();
    }

    @Test
    void anActivationThatNeverCompletesEndsTheRoleSoTheLeaseIsNotHeldForever() throws Exception {
        // The journal never becomes ready (a writer stuck on a hung disk, a follower that never stops): holding the
        // lease without serving would keep the twin from taking over for good.
        CompletableFuture<Long> asked = new CompletableFuture<>();
        CompletableFuture<String> ended = new CompletableFuture<>();
        TmrNode.Activation activation = activation(asked, new CompletableFuture<>(), ended);
        node = TmrNode.start(group.nodeConfig("node-a", "127.0.2.1", "node-a", Map.of()), Clock.systemUTC(),
                group.connector("node-a"), activation);
        asked.get(30, TimeUnit.SECONDS);
        String reason = ended.get(60, TimeUnit.SECONDS);
        assertTrue(reason.contains("activation"), reason);
        assertFalse(node.serving(), "a node whose activation did not complete never served");
    }

    @Test
    void aHelloWhileTheNodeTakesOverWaitsAndIsWelcomedOnceItServes() throws Exception {
        // The node holds the lease, its journal is not ready yet: a client's HELLO is not sent away with NOT_ACTIVE
        // (it would come back only after its backoff) but answered when the node serves.
        CompletableFuture<Long> asked = new CompletableFuture<>();
        CompletableFuture<Void> journalReady = new CompletableFuture<>();
        TmrNode.Activation activation = activation(asked, journalReady, new CompletableFuture<>());
        node = TmrNode.start(group.nodeConfig("node-a", "127.0.2.1", "node-a",
                        Map.of("opentmr.node.hello-wait", "60s")), Clock.systemUTC(), group.connector("node-a"),
                activation);
        asked.get(30, TimeUnit.SECONDS);
        assertTrue(node.holdsLease(), "taking over: the lease is held");
        assertFalse(node.serving(), "the journal is not ready: the node does not serve yet");
        try (RawConnection raw = new RawConnection(node.address())) {
            raw.send(1, new Message.Hello("raw-test", "ws-raw", "tester", 1));
            journalReady.complete(null);
            Frame answer = null;
            // Bounded: 12 reads of the socket's 5 s timeout; nothing of the answer is read before it comes.
            for (int attempt = 0; attempt < 12 && answer == null; attempt++) {
                try {
                    answer = raw.read();
                } catch (SocketTimeoutException e) {
                    // not answered yet: the node is still reconciling
                }
            }
            assertNotNull(answer, "the HELLO was answered within 60 s");
            assertInstanceOf(Message.HelloOk.class, answer.message(), "welcomed once the node served, not sent away");
        }
        assertTrue(node.serving());
    }

    @Test
    void aStandbyAsksEveryBackendForItsDigestsAgainAndAgainUntilItTakesOver() throws Exception {
        // The take-over asks every backend for the digests of its allocations; the standby runs that code before, so
        // that it is compiled.
        Logger log = (Logger) LoggerFactory.getLogger(TwinRole.class);
        ListAppender<ILoggingEvent> lines = new ListAppender<>();
        Level level = log.getLevel();
        log.setLevel(Level.DEBUG);
        lines.start();
        log.addAppender(lines);
        List<TmrTestGroup.Peer> rival = new ArrayList<>();
        try {
            // node-b holds the lease on every backend: node-a stays the standby.
            for (int b = 0; b < 3; b++) {
                rival.add(group.peer("node-b", b));
                rival.get(b).grant(0, 30_000);
            }
            CompletableFuture<Long> asked = new CompletableFuture<>();
            node = TmrNode.start(group.nodeConfig("node-a", "127.0.2.1", "node-a",
                            Map.of("opentmr.node.standby-listing-interval", "1s")), Clock.systemUTC(),
                    group.connector("node-a"), activation(asked, new CompletableFuture<>(), new CompletableFuture<>()));
            await("every backend asked twice by the standby", () -> listedBackends(lines, 2).size() == 3);
            assertFalse(asked.isDone(), "still the standby");

            for (TmrTestGroup.Peer peer : rival) {
                peer.request(new io.opentmr.protocol.Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, "node-b", 1));
            }
            asked.get(30, TimeUnit.SECONDS);
            int listed = rehearsals(lines).size();
            // An observation window of three intervals: no listing round starts after the take-over.
            Thread.sleep(3_000);
            assertEquals(listed, rehearsals(lines).size(), "no rehearsal after the take-over: " + rehearsals(lines));
        } finally {
            log.detachAppender(lines);
            log.setLevel(level);
            for (TmrTestGroup.Peer peer : rival) {
                peer.close();
            }
        }
    }

    /** How a rehearsal of a backend that answers digests is logged, up to the backend's number. */
    private static final String REHEARSED = "Standby: took the digests of backend ";

    private static List<String> rehearsals(ListAppender<ILoggingEvent> lines) {
        synchronized (lines) {
            return lines.list.stream().map(ILoggingEvent::getFormattedMessage)
                    .filter(line -> line.startsWith(REHEARSED)).toList();
        }
    }

    /** The backends (1..3) the standby asked for digests at least {@code times} times. */
    private static Set<String> listedBackends(ListAppender<ILoggingEvent> lines, int times) {
        return rehearsals(lines).stream().map(line -> line.substring(REHEARSED.length(), REHEARSED.length() + 1))
                .collect(Collectors.groupingBy(b -> b, Collectors.counting())).entrySet().stream()
                .filter(e -> e.getValue() >= times).map(Map.Entry::getKey).collect(Collectors.toSet());
    }

    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, what + " within 30 s");
            Thread.sleep(100);
        }
    }

    /**
     * The test's activation: {@code asked} completes with the epoch when the node takes over, whose journal is ready
     * when {@code journalReady} completes; {@code ended} with the reason the role ended.
     */
    private static TmrNode.Activation activation(CompletableFuture<Long> asked, CompletableFuture<Void> journalReady,
                                                 CompletableFuture<String> ended) {
        return new TmrNode.Activation() {
            @Override
            public CompletionStage<Void> activate(ActorSystem<Void> system, long epoch) {
                asked.complete(epoch);
                return journalReady;
            }

            @Override
            public void deactivated(String reason) {
                ended.complete(reason);
            }
        };
    }
}
