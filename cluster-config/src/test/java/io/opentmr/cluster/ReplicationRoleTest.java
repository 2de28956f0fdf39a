package io.opentmr.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.persistence.OpenTmrPersistence;
import io.opentmr.persistence.log.LogOptions;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.SegmentedLog;
import io.opentmr.persistence.replication.ReplicationProtocol;
import io.opentmr.persistence.replication.ReplicationSettings;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The journal's side of a take-over, on one actor system and its log: the standby's follower stops and the node leads.
 * The log the virtual container recovers from must not change under it once the lead is granted, and a node must
 * never stamp records with an epoch older than the log's newest one.
 */
class ReplicationRoleTest {

    @TempDir
    Path dir;
    @TempDir
    Path sourceDir;

    private ActorSystem<Void> system;
    private final CountDownLatch writerFree = new CountDownLatch(1);

    @AfterEach
    void stop() throws Exception {
        writerFree.countDown();
        if (system != null) {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }

    private Config config() {
        return ConfigFactory.parseMap(Map.of(
                "pekko.actor.provider", "local",
                "opentmr.persistence.dir", dir.resolve("journal").toString(),
                "opentmr.persistence.fsync", "never"))
                .withFallback(ConfigFactory.load()).resolve();
    }

    private static LogRecord event(String pid, long seq) {
        return LogRecord.event(pid, seq, 1_700_000_000_000L + seq, "w", 4, "m", "", List.of(),
                (pid + ":" + seq).getBytes(StandardCharsets.UTF_8));
    }

    private ActorRef<ReplicationRole.Command> role(Config config) {
        return system.systemActorOf(ReplicationRole.create(ReplicationSettings.fromConfig(config), "node-b",
                TwinReplication.get(system)), ReplicationRole.NAME, Props.empty());
    }

    /**
     * The twin's leader, as far as this test needs it: it welcomes the follower at its position and sends it one
     * record (in two pieces), then a piece of the next; the follower answers that last piece at once, which tells the
     * test that the whole record before it is queued on the log's writer.
     */
    private static Behavior<ReplicationProtocol.ToLeader> leader(byte[] record, CompletableFuture<Void> queued) {
        AtomicBoolean welcomed = new AtomicBoolean();
        return Behaviors.setup(context -> Behaviors.receiveMessage(message -> {
            if (message instanceof ReplicationProtocol.Hello hello && welcomed.compareAndSet(false, true)) {
                long at = hello.next();
                int half = record.length / 2;
                hello.follower().tell(new ReplicationProtocol.Welcome(context.getSelf(), 1, 1, at));
                hello.follower().tell(new ReplicationProtocol.Append(1, 0, at, false,
                        Arrays.copyOfRange(record, 0, half)));
                hello.follower().tell(new ReplicationProtocol.Append(1, 1, at, true,
                        Arrays.copyOfRange(record, half, record.length)));
                hello.follower().tell(new ReplicationProtocol.Append(1, 2, at + 1, false, new byte[] {1}));
            } else if (message instanceof ReplicationProtocol.Appended appended && appended.seq() == 2) {
                queued.complete(null);
            }
            return Behaviors.same();
        }));
    }

    @Test
    void theLeadIsGrantedOnlyOnceWhatTheFollowerQueuedIsInTheLog() throws Exception {
        // The record the twin's leader sends: position 1 of a log of its own, epoch 1.
        byte[] record;
        try (SegmentedLog source = SegmentedLog.open(LogOptions.defaults(sourceDir).withEpoch(() -> 1L))) {
            source.append(List.of(source.encode(List.of(event("p", 1))))).get(10, TimeUnit.SECONDS);
            source.append(List.of(source.encode(List.of(event("p", 2))))).get(10, TimeUnit.SECONDS);
            record = source.readChunk(1, 1 << 20).bytes();
        }

        Config config = config();
        system = ActorSystem.create(Behaviors.empty(), "replication-role-test", config);
        SegmentedLog log = OpenTmrPersistence.get(system).log();
        // A slow disk: the writer stays busy with a first write (position 0, already in the index) until the test
        // lets it go, so what is queued behind it waits.
        log.setCommitGate((first, next) -> {
            try {
                writerFree.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return CompletableFuture.completedFuture(null);
        });
        log.append(List.of(log.encode(List.of(event("p", 1)))));
        while (log.nextPosition() < 1) {
            Thread.sleep(5);
        }
        log.setCommitGate(null);

        CompletableFuture<Void> queued = new CompletableFuture<>();
        ActorRef<ReplicationProtocol.ToLeader> leader = system.systemActorOf(leader(record, queued), "twin-leader",
                Props.empty());
        ActorRef<ReplicationRole.Command> role = role(config);
        role.tell(new ReplicationRole.Follow(leader.path().toString(), following -> { }));
        queued.get(10, TimeUnit.SECONDS);

        CompletableFuture<Void> done = new CompletableFuture<>();
        // What the virtual container would find, read the moment it may start.
        CompletableFuture<Long> seen = done.handle((ok, failure) -> log.nextPosition());
        role.tell(new ReplicationRole.Lead(1, done));
        try {
            seen.get(2, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            // Granted only after the writer is done with what the follower queued: let it go.
        }
        writerFree.countDown();
        done.get(10, TimeUnit.SECONDS);
        assertEquals(2, seen.get(), "the lead was granted while the follower's append of position 1 was still "
                + "queued: the container would recover from a log that then changes under it");
        assertEquals(2, log.nextPosition());
    }

    @Test
    void aNodeDoesNotLeadUnderAnEpochOlderThanItsLogsNewestRecord() throws Exception {
        Config config = config();
        system = ActorSystem.create(Behaviors.empty(), "replication-role-test", config);
        writerFree.countDown();
        OpenTmrPersistence persistence = OpenTmrPersistence.get(system);
        persistence.setEpochSupplier(() -> 5L);
        SegmentedLog log = persistence.log();
        log.append(List.of(log.encode(List.of(event("p", 1))))).get(10, TimeUnit.SECONDS);
        assertEquals(5, log.lastEpoch());

        // A lease of epoch 3 (backends that lost their data grant low epochs again): records of epoch 3 after
        // records of epoch 5 break the replication's rule that a leader's epoch is the newest.
        CompletableFuture<Void> done = new CompletableFuture<>();
        role(config).tell(new ReplicationRole.Lead(3, done));
        ExecutionException refused = assertThrows(ExecutionException.class, () -> done.get(10, TimeUnit.SECONDS));
        String why = refused.getCause().getMessage();
        assertTrue(why.contains("epoch 3") && why.contains("epoch 5"), why);
        assertEquals(5, log.currentEpoch(), "the journal's epoch was not moved back");
    }

    @Test
    void aNodeLeadsUnderTheEpochOfItsLogsNewestRecord() throws Exception {
        // The same node regains the lease after a restart: the backends give a holder its epoch again.
        Config config = config();
        system = ActorSystem.create(Behaviors.empty(), "replication-role-test", config);
        writerFree.countDown();
        OpenTmrPersistence persistence = OpenTmrPersistence.get(system);
        persistence.setEpochSupplier(() -> 5L);
        SegmentedLog log = persistence.log();
        log.append(List.of(log.encode(List.of(event("p", 1))))).get(10, TimeUnit.SECONDS);

        CompletableFuture<Void> done = new CompletableFuture<>();
        role(config).tell(new ReplicationRole.Lead(5, done));
        done.get(10, TimeUnit.SECONDS);
        log.append(List.of(log.encode(List.of(event("p", 2))))).get(10, TimeUnit.SECONDS);
        assertEquals(5, log.lastEpoch());
    }
}
