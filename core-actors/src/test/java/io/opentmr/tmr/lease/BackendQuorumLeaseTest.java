package io.opentmr.tmr.lease;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.TmrNode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.Join;
import org.apache.pekko.cluster.typed.SingletonActor;
import org.apache.pekko.coordination.lease.LeaseException;
import org.apache.pekko.coordination.lease.LeaseTimeoutException;
import org.apache.pekko.coordination.lease.javadsl.Lease;
import org.apache.pekko.coordination.lease.javadsl.LeaseProvider;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The backends' active lease as a Pekko lease, on two nodes over three real backends: node A is the group's own
 * node (its links under the test's {@code LinkControl}), node B another one reaching the backends directly. Both
 * ask for the lease only while their Pekko lease acquires it ({@code lease-on-request}).
 */
@Timeout(60)
@ExtendWith(NoLeaks.class)
class BackendQuorumLeaseTest {

    private static final String CONFIG_PATH = "opentmr.backend-quorum-lease";
    /**
     * The reference value: on a loaded two-core machine a backend's first LEASE_ACQUIRE (its epoch journaled) was
     * seen to take 2 s, so a shorter bound made the first acquire fail there.
     */
    private static final Duration OPERATION_TIMEOUT = Duration.ofSeconds(3);
    private static final Map<String, Object> ON_REQUEST = Map.of(
            "opentmr.node.lease-on-request", true,
            CONFIG_PATH + ".lease-operation-timeout", OPERATION_TIMEOUT.toMillis() + "ms");

    @TempDir
    Path dir;

    private TmrTestGroup group;

    @BeforeEach
    void start() throws Exception {
        group = new TmrTestGroup(dir);
    }

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    private static Lease lease(TmrNode node) {
        return LeaseProvider.get(node.actorSystem()).getLease("opentmr-node-singleton-test", CONFIG_PATH,
                node.actorSystem().address().toString());
    }

    private static <T> T within(java.util.concurrent.CompletionStage<T> stage, Duration bound) throws Exception {
        return stage.toCompletableFuture().get(bound.toMillis(), TimeUnit.MILLISECONDS);
    }

    /**
     * Starts the group's own node with these settings, once it is connected to every backend: an acquire bounds
     * its wait, and on a loaded machine connecting alone can take longer than that.
     */
    private TmrNode linkedNode(Map<String, Object> settings) throws Exception {
        TmrNode node = group.startNode(settings);
        Await.until("the node is connected to its three backends", () -> node.backendsLinked() == 3);
        return node;
    }

    /** Starts the group's own node (A) and acquires its lease. */
    private TmrNode holder() throws Exception {
        TmrNode a = linkedNode(ON_REQUEST);
        assertTrue(within(lease(a).acquire(), OPERATION_TIMEOUT.plusSeconds(1)), "the first node acquires");
        return a;
    }

    private static long epoch(TmrNode node) {
        return NodeLeases.get(node.actorSystem()).activeEpoch();
    }

    @Test
    void aNodeAcquiresTheLeaseNoOneHoldsAndHoldsTheCertificate() throws Exception {
        TmrNode a = linkedNode(ON_REQUEST);
        Lease lease = lease(a);
        assertInstanceOf(BackendQuorumLease.class, lease);
        assertFalse(lease.checkLease(), "not held before it is acquired");

        assertTrue(within(lease.acquire(), OPERATION_TIMEOUT.plusSeconds(1)));
        assertTrue(lease.checkLease());
        assertTrue(a.grantsHeld() >= 2, "two or more backends granted it: " + a.grantsHeld());
        assertTrue(epoch(a) > 0, "the epoch is visible through NodeLeases: " + epoch(a));
        assertTrue(within(lease.acquire(), Duration.ofMillis(500)), "acquiring a held lease again: true at once");
    }

    @Test
    void aRivalHoldingTheLeaseIsNeverDisplacedAndTheLoserGivesBackWhatItGot() throws Exception {
        TmrNode a = holder();
        Lease held = lease(a);
        long epochA = epoch(a);
        // The holder loses backend 3 (its connection closes, so backend 3 frees its grant) and keeps two.
        group.link(2).cut();
        Await.equal("the holder's grants without backend 3", 2, a::grantsHeld);
        TmrNode b = group.startOtherNode("node-b", "127.0.2.2", ON_REQUEST);
        Lease rival = lease(b);

        long started = System.nanoTime();
        CompletableFuture<Boolean> acquired = rival.acquire().toCompletableFuture();
        boolean rivalHeldOne = false;
        while (!acquired.isDone()) {
            rivalHeldOne |= b.grantsHeld() == 1;
            assertTrue(held.checkLease(), "the holder lost the lease while a rival asked for it");
            assertEquals(epochA, epoch(a), "the holder's epoch changed");
            assertFalse(rival.checkLease(), "the rival holds the lease beside the holder");
            assertTrue(System.nanoTime() - started < OPERATION_TIMEOUT.plusSeconds(1).toNanos(),
                    "acquire did not complete within its bound");
            Thread.sleep(20);
        }
        long tookMillis = (System.nanoTime() - started) / 1_000_000;
        assertFalse(acquired.get(), "the rival acquired a lease another node holds");
        assertTrue(tookMillis >= OPERATION_TIMEOUT.toMillis() - 50, "false only after the bound: " + tookMillis);
        assertTrue(rivalHeldOne, "the rival never held backend 3's grant, the case this test is about");
        // Not wanted any more: the grant goes back to backend 3 at once, long before its 2 s TTL would free it.
        Await.equal("grants the rival holds after giving up", 0, b::grantsHeld, Duration.ofSeconds(5));
        try (TmrTestGroup.Peer probe = group.peer("probe", 2)) {
            Await.equal("backend 3's lease is free for another holder", true, () -> Await.unchecked(() ->
                    probe.acquire(LeaseGrant.ACTIVE_LEASE, 0, 1_000) instanceof Message.LeaseGranted),
                    Duration.ofSeconds(1));
        }
        assertTrue(held.checkLease());
        assertEquals(epochA, epoch(a));
    }

    @Test
    void whenTheHolderDiesItsClosedConnectionsLetTheOtherNodeAcquireAtOnceWithAHigherEpoch() throws Exception {
        TmrNode a = holder();
        long epochA = epoch(a);
        TmrNode b = group.startOtherNode("node-b", "127.0.2.2", Map.of("opentmr.node.lease-on-request", true));
        Lease next = lease(b);

        // As kill -9 does: the holder's process ends and the kernel closes its connections.
        group.stopNode();
        long started = System.nanoTime();
        assertTrue(within(next.acquire(), Duration.ofSeconds(4)));
        long tookMillis = (System.nanoTime() - started) / 1_000_000;
        // Well inside the 2 s grant TTL: the closed connections freed the lease, not its running out.
        assertTrue(tookMillis < 1_500, "acquired only after " + tookMillis + " ms");
        assertTrue(next.checkLease());
        assertTrue(epoch(b) > epochA, "epoch " + epoch(b) + " after the holder's " + epochA);
    }

    @Test
    void aReleasedLeaseIsGivenBackToTheBackendsAndTheOtherNodeAcquiresIt() throws Exception {
        TmrNode a = holder();
        Lease first = lease(a);
        long epochA = epoch(a);
        TmrNode b = group.startOtherNode("node-b", "127.0.2.2", Map.of("opentmr.node.lease-on-request", true));
        Lease second = lease(b);
        CompletableFuture<Boolean> waiting = second.acquire().toCompletableFuture();

        assertTrue(within(first.release(), OPERATION_TIMEOUT.plusSeconds(1)));
        assertFalse(first.checkLease(), "still held after release");
        assertEquals(0, a.grantsHeld(), "grants kept after release");
        assertTrue(within(waiting, Duration.ofSeconds(4)), "the other node did not get the released lease");
        assertTrue(epoch(b) > epochA, "epoch " + epoch(b) + " after the releaser's " + epochA);
        // The node that released asks no more: the lease stays with the other one.
        Thread.sleep(600);
        assertTrue(second.checkLease());
        assertEquals(0, a.grantsHeld());
    }

    /**
     * A backend that stops answering for longer than the missed heartbeats but less than the lease TTL (a starved
     * machine): the node keeps its connection, so the backend does not free its grant and a rival asking at every
     * heartbeat (a twin's standby) does not take it; when the backend answers again the node holds all three grants at
     * its epoch. Closing the connection at the third missed heartbeat gave the rival that backend's grant at a higher
     * epoch, which fenced the holder's certificate there and ended its role.
     */
    @Test
    void aBackendSilentForLessThanTheLeaseTtlKeepsItsGrantWithTheHolderAndNoRivalTakesIt() throws Exception {
        TmrNode a = linkedNode(Map.of());
        Await.until("the node holds all three grants", () -> a.peerGroup().grantsHeld() == 3);
        long epochA = a.peerGroup().epoch();
        TmrNode b = group.startOtherNode("node-b", "127.0.2.2", Map.of());
        Await.until("the rival is connected to the three backends", () -> b.backendsLinked() == 3);

        group.link(0).freeze();
        // Silent for 1.2 s: past 3 missed heartbeats of 250 ms, within the 2 s TTL. A fault's length, not a wait.
        long until = System.nanoTime() + Duration.ofMillis(1_200).toNanos();
        int rivalGrants = 0;
        while (System.nanoTime() < until) {
            rivalGrants = Math.max(rivalGrants, b.peerGroup().grantsHeld());
            Thread.sleep(20);
        }
        group.link(0).thaw();
        Await.until("the node holds all three grants again", () -> a.peerGroup().grantsHeld() == 3);
        for (int i = 0; i < 10; i++) {
            rivalGrants = Math.max(rivalGrants, b.peerGroup().grantsHeld());
            Thread.sleep(50);
        }
        assertEquals(0, rivalGrants, "grants the rival held");
        assertEquals(epochA, a.peerGroup().epoch(), "the holder's epoch");
        assertTrue(a.peerGroup().holdsLease());
    }

    @Test
    void aReleaseABackendNeverAnswersEndsInALeaseTimeoutAndCompletesOnceItAnswers() throws Exception {
        // The frozen backend's connection is kept (no heartbeats counted missed), so nothing frees its grant.
        TmrNode a = linkedNode(Map.of("opentmr.node.lease-on-request", true,
                "opentmr.node.missed-heartbeats", 1_000,
                CONFIG_PATH + ".lease-operation-timeout", OPERATION_TIMEOUT.toMillis() + "ms"));
        Lease lease = lease(a);
        assertTrue(within(lease.acquire(), OPERATION_TIMEOUT.plusSeconds(1)));
        group.link(0).freeze();

        long started = System.nanoTime();
        ExecutionException failed = assertThrows(ExecutionException.class,
                () -> within(lease.release(), OPERATION_TIMEOUT.plusSeconds(1)));
        long tookMillis = (System.nanoTime() - started) / 1_000_000;
        assertInstanceOf(LeaseTimeoutException.class, failed.getCause());
        assertTrue(tookMillis >= OPERATION_TIMEOUT.toMillis() - 50, "failed before the bound: " + tookMillis);
        assertFalse(lease.checkLease(), "a lease being released is not held");

        group.link(0).thaw();
        within(NodeLeases.get(a.actorSystem()).lease(LeaseGrant.ACTIVE_LEASE).whenReleased(), Duration.ofSeconds(3));
    }

    @Test
    void theLostCallbackFiresWhenTwoBackendsAreCutOffAndTheNodeTakesTheLeaseBackWhenTheyReturn()
            throws Exception {
        TmrNode a = linkedNode(ON_REQUEST);
        Lease lease = lease(a);
        CompletableFuture<Optional<Throwable>> lost = new CompletableFuture<>();
        assertTrue(within(lease.acquire(lost::complete), OPERATION_TIMEOUT.plusSeconds(1)));
        assertFalse(lost.isDone(), "lost before anything happened");

        group.link(0).cut();
        group.link(1).cut();
        Optional<Throwable> reason = within(lost, Duration.ofSeconds(3));
        assertInstanceOf(LeaseException.class, reason.orElseThrow());
        assertFalse(lease.checkLease());

        // Still wanted (Pekko's singleton acquires again after a loss): back with the backends.
        group.link(0).restore();
        group.link(1).restore();
        Await.until("the certificate again once the backends are back", lease::checkLease);
    }

    @Test
    void theSingleNodeHoldsTheLeaseWithoutBeingAskedAndAPekkoLeaseCannotSwitchItOff() throws Exception {
        TmrNode node = group.startNode(Map.of());
        Lease lease = lease(node);
        Await.until("the single node holds the certificate", lease::checkLease);
        ExecutionException refused = assertThrows(ExecutionException.class,
                () -> within(lease.release(), Duration.ofSeconds(2)));
        assertTrue(refused.getCause().getMessage().contains("lease-on-request"), refused.getCause().getMessage());
        assertThrows(ExecutionException.class, () -> within(lease.acquire(), Duration.ofSeconds(2)));
        assertTrue(lease.checkLease(), "still held: a single node always wants the lease");
    }

    /** A node's lease as the test sets it: held or not, under an epoch it chooses. */
    private static final class SetLease implements io.opentmr.tmr.backend.QuorumLease {
        volatile boolean held = true;
        volatile long epoch = 4;

        @Override
        public String name() {
            return io.opentmr.protocol.LeaseGrant.ACTIVE_LEASE;
        }

        @Override
        public void want(boolean wanted) {
        }

        @Override
        public boolean wanted() {
            return true;
        }

        @Override
        public boolean onRequest() {
            return true;
        }

        @Override
        public boolean held() {
            return held;
        }

        @Override
        public long epoch() {
            return held ? epoch : 0;
        }

        @Override
        public java.util.concurrent.CompletionStage<Void> whenHeld() {
            return CompletableFuture.completedFuture(null);
        }

        @Override
        public java.util.concurrent.CompletionStage<Void> whenReleased() {
            return CompletableFuture.completedFuture(null);
        }
    }

    @Test
    void aLeaseHeldAgainUnderANewEpochBetweenTwoChecksCountsAsLost() throws Exception {
        ActorSystem<Void> bare = ActorSystem.create(Behaviors.empty(), "epoch-moved", ConfigFactory.load());
        try {
            SetLease node = new SetLease();
            NodeLeases.get(bare).register(node);
            Lease lease = LeaseProvider.get(bare).getLease("epoch-moved-singleton", CONFIG_PATH, "owner");
            CompletableFuture<Optional<Throwable>> lost = new CompletableFuture<>();
            assertTrue(within(lease.acquire(lost::complete), Duration.ofSeconds(2)));
            // Lost and regained between two checks: another node held it meanwhile, so the backends moved the epoch.
            node.epoch = 6;
            Optional<Throwable> reason = within(lost, Duration.ofSeconds(3));
            assertTrue(reason.orElseThrow().getMessage().contains("epoch 6 after 4"), reason.get().getMessage());
        } finally {
            bare.terminate();
            bare.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void outsideATmrNodeTheLeaseFailsNamingWhy() throws Exception {
        ActorSystem<Void> bare = ActorSystem.create(Behaviors.empty(), "no-node", ConfigFactory.load());
        try {
            Lease lease = LeaseProvider.get(bare).getLease("no-node-singleton", CONFIG_PATH, "owner");
            assertFalse(lease.checkLease());
            ExecutionException failed = assertThrows(ExecutionException.class,
                    () -> within(lease.acquire(), Duration.ofSeconds(2)));
            assertInstanceOf(LeaseException.class, failed.getCause());
            assertTrue(failed.getCause().getMessage().contains("no TMR node runs in actor system no-node"),
                    failed.getCause().getMessage());
        } finally {
            bare.terminate();
            bare.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }

    /**
     * Pekko's own cluster singleton with {@code use-lease} on this lease, on a node that is a cluster of one: what
     * the twin builds on (the product does not run its actors as a singleton yet).
     */
    @Test
    void pekkosSingletonStartsOnlyOnceTheBackendsGrantTheNodeTheLeaseAndSeesItsEpoch() throws Exception {
        TmrNode rival = group.startOtherNode("node-b", "127.0.2.2", Map.of("opentmr.node.lease-on-request", true));
        Lease rivalLease = lease(rival);
        assertTrue(within(rivalLease.acquire(), Duration.ofSeconds(5)));
        long rivalEpoch = epoch(rival);

        TmrNode node = group.startNode(Map.of(
                "opentmr.node.lease-on-request", true,
                "pekko.actor.provider", "cluster",
                "pekko.remote.artery.canonical.hostname", "127.0.2.1",
                "pekko.remote.artery.canonical.port", 0,
                "pekko.cluster.jmx.enabled", false,
                "pekko.cluster.singleton.use-lease", CONFIG_PATH,
                "pekko.cluster.singleton.lease-retry-interval", "200ms",
                CONFIG_PATH + ".lease-operation-timeout", "1s"));
        ActorSystem<Void> system = node.actorSystem();
        Cluster cluster = Cluster.get(system);
        cluster.manager().tell(Join.create(cluster.selfMember().address()));
        Await.until("the node is Up in its cluster of one", () -> cluster.selfMember().status() == MemberStatus.up());
        CompletableFuture<Long> started = new CompletableFuture<>();
        ClusterSingleton.get(system).init(SingletonActor.of(Behaviors.setup(context -> {
            started.complete(NodeLeases.get(context.getSystem()).activeEpoch());
            return Behaviors.empty();
        }), "lease-probe"));

        // Two acquire rounds (1 s each, 200 ms apart) while the rival holds the lease: no singleton.
        assertThrows(TimeoutException.class, () -> started.get(2_500, TimeUnit.MILLISECONDS));
        assertFalse(node.grantsHeld() >= 2, "the node holds the lease the rival holds");

        assertTrue(within(rivalLease.release(), Duration.ofSeconds(5)));
        long epoch = started.get(10, TimeUnit.SECONDS);
        assertTrue(epoch > rivalEpoch, "the singleton started at epoch " + epoch + ", the rival held " + rivalEpoch);
    }
}
