package io.opentmr.persistence.replication;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Await;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.SegmentedLog;
import io.opentmr.persistence.replication.ReplicationLeader.Status;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two actor systems on loopback, each with its own log: the follower's log ends up identical to the leader's; a lost
 * follower degrades the leader, which goes on and later brings the follower up to date; a former leader's suffix of a
 * dead epoch is truncated when it comes back as follower; and nothing acknowledged in sync is lost when the leader
 * dies.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ReplicationTest {

    @TempDir
    Path dirA;
    @TempDir
    Path dirB;

    private final List<TwinNode> running = new ArrayList<>();

    @AfterEach
    void stopAll() throws Exception {
        for (TwinNode n : running) {
            if (!n.system.whenTerminated().isCompleted()) {
                n.kill();
            }
        }
    }

    /**
     * Timeouts for a test that counts degradations or sessions: TwinNode's (2 s) are short enough for the tests that
     * wait for a timeout, and a stall of a loaded machine can still reach them.
     */
    private static final String STEADY = """
            opentmr.persistence.replication.ack-timeout = 10s
            opentmr.persistence.replication.session-timeout = 10s
            """;

    private TwinNode start(String name, Path dir, long epoch) throws Exception {
        return start(name, dir, epoch, "");
    }

    private TwinNode start(String name, Path dir, long epoch, String overrides) throws Exception {
        TwinNode n = TwinNode.start(name, dir, epoch, overrides);
        running.add(n);
        return n;
    }

    private static void awaitAssert(TwinNode on, Runnable check) {
        TestProbe<Object> probe = TestProbe.create(on.system);
        probe.awaitAssert(TwinNode.WAIT, Duration.ofMillis(20), () -> {
            check.run();
            return null;
        });
    }

    private static void awaitIdentical(TwinNode leader, TwinNode follower) {
        awaitAssert(leader, () -> {
            assertEquals(Status.IN_SYNC, leader.monitor.status());
            assertEquals(leader.log.nextPosition(), follower.log.nextPosition());
        });
        assertEquals(TwinNode.records(leader.log), TwinNode.records(follower.log));
    }

    /** Writes {@code count} events of each pid, the next of a pid only once the previous is acknowledged (Pekko's way). */
    private static void writeConcurrently(TwinNode leader, List<String> pids, long from, long count) {
        List<CompletableFuture<Void>> chains = new ArrayList<>();
        for (String pid : pids) {
            CompletableFuture<Void> chain = CompletableFuture.completedFuture(null);
            for (long s = from; s < from + count; s++) {
                long seq = s;
                chain = chain.thenCompose(x -> leader.write(pid, seq)).thenApply(a -> null);
            }
            chains.add(chain);
        }
        Await.done(CompletableFuture.allOf(chains.toArray(CompletableFuture[]::new)));
    }

    @Test
    void theFollowersLogIsTheLeadersRecordForRecordWithOneFsyncPerBatch() throws Exception {
        // Timeouts no stall of a loaded test machine reaches: "never degraded" speaks of the protocol, not the load.
        TwinNode a = start("node-a", dirA, 1, STEADY).lead();
        TwinNode b = start("node-b", dirB, 0, STEADY).follow(a);
        awaitAssert(a, () -> assertEquals(Status.IN_SYNC, a.monitor.status()));
        List<String> pids = List.of("p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8");
        writeConcurrently(a, pids, 1, 150);
        // Every write was held for the follower: its log has them all the moment the last one is acknowledged.
        assertEquals(a.log.nextPosition(), b.log.nextPosition());
        assertEquals(0, a.monitor.statusChanges() - 1, "never degraded");
        assertEquals(TwinNode.records(a.log), TwinNode.records(b.log));
        assertEquals(1200, b.log.nextPosition());
        assertEquals(150, b.log.highestSequenceNr("p3"));
        // Group commit on both sides: the follower fsyncs no more often than the leader.
        assertTrue(b.log.stats().fsyncs() <= a.log.stats().fsyncs(),
                b.log.stats() + " on the follower, " + a.log.stats() + " on the leader");
        assertTrue(a.log.stats().fsyncs() < 1200, "batched: " + a.log.stats());
    }

    @Test
    void aLostFollowerDegradesTheLeaderWhichGoesOnAndLaterBringsItUpToDate() throws Exception {
        TwinNode a = start("node-a", dirA, 1).lead();
        TwinNode b = start("node-b", dirB, 0).follow(a);
        awaitAssert(a, () -> assertEquals(Status.IN_SYNC, a.monitor.status()));
        writeConcurrently(a, List.of("p1", "p2"), 1, 100);
        awaitAssert(a, () -> {
            assertEquals(0, a.monitor.lagRecords());
            assertEquals(0.0, a.monitor.lagSeconds());
        });
        assertEquals(a.log.nextPosition(), a.monitor.replicatedPosition());
        assertEquals("node-b", a.monitor.follower());
        assertTrue(b.followerMonitor.following());
        assertEquals(1, b.followerMonitor.leaderEpoch());
        // Nothing written for several session timeouts: the follower's answers to heartbeats keep it connected.
        TestProbe.create(a.system).expectNoMessage(a.settings.sessionTimeout().multipliedBy(3));
        assertTrue(a.monitor.followerConnected(), "a quiet standby is still there");

        b.kill();
        awaitAssert(a, () -> assertTrue(!a.monitor.followerConnected(), "the leader sees its standby gone"));
        // The writes go on: the first waits at most ack-timeout, then the leader runs alone.
        writeConcurrently(a, List.of("p1", "p2", "p3"), 101, 300);
        assertEquals(Status.DEGRADED, a.monitor.status());
        assertTrue(a.monitor.reason().contains("did not acknowledge"), a.monitor.reason());
        assertTrue(a.log.nextPosition() > b.log.nextPosition());
        assertEquals(1, a.monitor.degradations());
        assertEquals(a.log.nextPosition() - a.monitor.replicatedPosition(), a.monitor.lagRecords());
        assertTrue(a.monitor.lagRecords() >= 600, "lag " + a.monitor.lagRecords());
        assertTrue(a.monitor.lagSeconds() > 0, "the records the standby lacks have an age");
        long catchUps = a.monitor.catchUps();

        TwinNode b2 = start("node-b", dirB, 0).follow(a);
        writeConcurrently(a, List.of("p4"), 1, 50);
        awaitIdentical(a, b2);
        writeConcurrently(a, List.of("p4"), 51, 20);
        assertEquals(TwinNode.records(a.log), TwinNode.records(b2.log));
        assertTrue(a.monitor.catchUps() > catchUps, "the returning standby caught up from its position");
        awaitAssert(a, () -> {
            assertEquals(0, a.monitor.lagRecords());
            assertEquals(0.0, a.monitor.lagSeconds());
            assertTrue(a.monitor.followerConnected());
        });
    }

    @Test
    void aFormerLeadersSuffixOfADeadEpochIsTruncatedWhenItFollows() throws Exception {
        TwinNode a = start("node-a", dirA, 1).lead();
        TwinNode b = start("node-b", dirB, 0).follow(a);
        awaitAssert(a, () -> assertEquals(Status.IN_SYNC, a.monitor.status()));
        writeConcurrently(a, List.of("p1", "p2"), 1, 50);
        long replicated = b.log.nextPosition();
        b.kill();
        writeConcurrently(a, List.of("p1", "p2"), 51, 40);     // epoch 1, never reaches b
        long aEnd = a.log.nextPosition();
        a.kill();

        // b takes over in epoch 2 and writes other records at the same positions.
        TwinNode b2 = start("node-b", dirB, 2, STEADY).lead();
        writeConcurrently(b2, List.of("q"), 1, 30);
        assertTrue(aEnd > replicated);

        TwinNode a2 = start("node-a", dirA, 0, STEADY).follow(b2);
        awaitIdentical(b2, a2);
        assertEquals(1, a2.followerMonitor.truncations(), "the dead suffix was cut once");
        assertEquals(aEnd - replicated, a2.followerMonitor.truncatedRecords());
        assertEquals(1, b2.monitor.divergences());
        assertEquals(2, a2.followerMonitor.leaderEpoch());
        assertEquals(List.of(aEnd), a2.cutsAnnounced, "the cut is announced once, before it is made (the node sets "
                + "its snapshots aside then)");
        assertEquals(List.of(), b.cutsAnnounced, "a follower whose log is a prefix of the leader's cuts nothing");
        for (LogRecord r : a2.log.readFrom(replicated, Integer.MAX_VALUE)) {
            assertEquals(2, r.epoch(), "nothing of epoch 1 above " + replicated + ": " + TwinNode.line(r));
        }
        assertEquals(50, a2.log.highestSequenceNr("p1"), "the dead suffix's events are gone from the index too");
    }

    /**
     * A follower says Hello every hello-interval until it hears back, so a slow answer meets several: the leader
     * answers each, and counts (and logs) the divergence once.
     */
    @Test
    void aRepeatedHelloOfADivergedFollowerCountsOneDivergence() throws Exception {
        TwinNode a = start("node-a", dirA, 2).lead();
        writeConcurrently(a, List.of("p1"), 1, 5);
        TestProbe<ReplicationProtocol.ToFollower> follower = TestProbe.create(a.system);
        org.apache.pekko.actor.ActorRef classic = org.apache.pekko.actor.typed.javadsl.Adapter.toClassic(a.system)
                .actorSelection("/user/" + TwinNode.LEADER_NAME).resolveOne(Duration.ofSeconds(10))
                .toCompletableFuture().get(15, TimeUnit.SECONDS);
        ActorRef<ReplicationProtocol.ToLeader> leader = org.apache.pekko.actor.typed.javadsl.Adapter.toTyped(classic);
        // Ten records of epoch 1 where the leader has five of epoch 2: diverged from the start.
        ReplicationProtocol.Hello hello = new ReplicationProtocol.Hello(follower.ref(), "node-c", 10, 1);
        for (int i = 0; i < 3; i++) {
            leader.tell(hello);
            follower.expectMessageClass(ReplicationProtocol.Diverged.class, TwinNode.WAIT);
        }
        assertEquals(1, a.monitor.divergences(), "one divergence, three Hellos");
        // A follower elsewhere is another divergence.
        leader.tell(new ReplicationProtocol.Hello(follower.ref(), "node-c", 7, 1));
        follower.expectMessageClass(ReplicationProtocol.Diverged.class, TwinNode.WAIT);
        assertEquals(2, a.monitor.divergences());
    }

    @Test
    void nothingAcknowledgedInSyncIsLostWhenTheLeaderDiesAndBothLogsConvergeAfterRestarts() throws Exception {
        TwinNode a = start("node-a", dirA, 1, STEADY).lead();
        TwinNode b = start("node-b", dirB, 0, STEADY).follow(a);
        awaitAssert(a, () -> assertEquals(Status.IN_SYNC, a.monitor.status()));

        AtomicBoolean killed = new AtomicBoolean();
        Map<Long, Boolean> acknowledged = new ConcurrentHashMap<>();
        for (int p = 0; p < 4; p++) {
            String pid = "p" + p;
            CompletableFuture<Void> chain = CompletableFuture.completedFuture(null);
            for (long s = 1; s <= 400; s++) {
                long seq = s;
                chain = chain.thenCompose(x -> killed.get() ? CompletableFuture.failedFuture(
                        new IllegalStateException("killed")) : a.write(pid, seq))
                        .thenAccept(appended -> {
                            if (!killed.get()) {
                                acknowledged.put(appended.firstPosition(), a.monitor.status() == Status.IN_SYNC);
                            }
                        });
            }
        }
        awaitAssert(a, () -> assertTrue(acknowledged.size() >= 300));
        killed.set(true);
        a.kill();
        assertEquals(1, a.monitor.statusChanges(), "in sync all along, until the kill");
        // Writes in flight at the kill may never be answered (the leader is gone, as after kill -9): not waited for.
        // Only what was acknowledged before the kill counts, and `killed` was set before it.

        long followerEnd = b.log.nextPosition();
        for (Map.Entry<Long, Boolean> e : acknowledged.entrySet()) {
            assertTrue(e.getValue(), "acknowledged in sync");
            assertTrue(e.getKey() < followerEnd, "acknowledged position " + e.getKey() + " reached the follower ("
                    + followerEnd + ")");
        }
        List<String> onB = TwinNode.records(b.log);
        b.kill();

        // Both restart: b leads in a new epoch, a follows; the logs converge, b's records unchanged.
        TwinNode b2 = start("node-b", dirB, 2).lead();
        TwinNode a2 = start("node-a", dirA, 0).follow(b2);
        Await.done(b2.write("after", 1));
        awaitIdentical(b2, a2);
        assertEquals(onB, TwinNode.records(b2.log).subList(0, onB.size()));
    }
}
