package io.opentmr.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import io.opentmr.client.AdminClient;
import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.persistence.replication.ReplicationLeader;
import io.opentmr.protocol.CmError;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.TmrNode;
import io.opentmr.tmr.backend.BackendWatcher;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two twin nodes in this JVM over three real backends: their own journals (replicated), their own cluster keys,
 * mutual TLS on loopback addresses of this test's own. A node is stopped the way a crash looks to the backends
 * (its connections close) and the other must take over with every handle.
 */
class TwinNodeTest {

    private static final long PRODUCT = 77;
    /** Four seats, for the test that needs more than two. */
    private static final long SEATS_PRODUCT = 78;

    @TempDir
    static Path keys;
    @TempDir
    Path dir;

    private TmrTestGroup group;
    private TwinFixture twin;
    private final List<TwinNode> nodes = new ArrayList<>();

    @BeforeAll
    static void keys() throws Exception {
        TwinFixture.keys(keys);
    }

    @BeforeEach
    void group() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(PRODUCT, 2));
        group.issueTmr(TmrTestGroup.seats(SEATS_PRODUCT, 4));
        twin = new TwinFixture(keys, group, dir);
    }

    @AfterEach
    void close() {
        nodes.forEach(TwinNode::close);
        group.close();
    }

    private String host(String name) {
        return twin.host(name);
    }

    private TwinNode start(String name) {
        return start(name, host(name), name);
    }

    /**
     * {@code name} with its cluster on {@code clusterHost} and its data in {@code dataDir}: a node that comes back
     * in this JVM uses its own, as Pekko 1.2's Artery over TLS may keep the stopped node's actor system (its
     * cluster port, its journal's lock) alive while its twin runs ({@link TwinNode#STOP_BOUND}).
     */
    private TwinNode start(String name, String clusterHost, String dataDir) {
        return start(name, clusterHost, dataDir, Map.of());
    }

    private TwinNode start(String name, String clusterHost, String dataDir, Map<String, Object> extra) {
        TwinNode node = twin.start(name, clusterHost, dataDir, extra);
        nodes.add(node);
        return node;
    }

    /** node-a, serving, with {@code extra} settings. */
    private TwinNode startActive(Map<String, Object> extra) throws InterruptedException {
        TwinNode a = start("node-a", host("node-a"), "node-a", extra);
        await("node-a serves", Duration.ofSeconds(30), a::serving);
        return a;
    }

    /** node-b, once it follows {@code active}'s journal in sync. */
    private TwinNode startStandbyInSync(TwinNode active, Map<String, Object> extra) throws InterruptedException {
        TwinNode b = start("node-b", host("node-b"), "node-b", extra);
        await("in sync", Duration.ofSeconds(30),
                () -> active.replication().status() == ReplicationLeader.Status.IN_SYNC);
        return b;
    }

    private TmrClient client() {
        return TmrClient.connect(TmrClientOptions.builder()
                .addresses(new InetSocketAddress(host("node-a"), 22350), new InetSocketAddress(host("node-b"), 22350))
                .requestTimeout(Duration.ofSeconds(20))
                .build());
    }

    private static void await(String what, Duration bound, BooleanSupplier condition) throws InterruptedException {
        TwinFixture.await(what, bound, condition);
    }

    /**
     * A single node's data directory, with snapshots and the events before them deleted, becomes the twin's first
     * member: it recovers from its snapshots and journals each license's table as one event, which its standby
     * replicates; the standby then takes over with every handle the single node had granted.
     */
    @Test
    void aSingleNodesDataWithSnapshotsBecomesTheTwinsFirstMemberWithEveryHandle() throws Exception {
        Map<String, Object> single = twin.persistence("node-a");
        single.put("opentmr.node.port", 22350);
        single.put("opentmr.node.snapshot-every", 2);
        TmrNode alone = TmrNode.start(group.nodeConfig("node-a", host("node-a"), "node-a", single), Clock.systemUTC(),
                group.connector("node-a"));
        List<LicenseHandle> held = new ArrayList<>();
        Path snapshots = dir.resolve("node-a").resolve("journal").resolve("snapshots");
        String serial;
        try (TmrClient client = client()) {
            for (int i = 0; i < 3; i++) {
                held.add(client.access(TmrTestGroup.FIRM, SEATS_PRODUCT));
            }
            for (int i = 0; i < 4; i++) {
                client.access(TmrTestGroup.FIRM, SEATS_PRODUCT).close();
            }
            await("the single node took snapshots", Duration.ofSeconds(10), () -> snapshotFiles(snapshots) >= 1);
            serial = alone.virtualSerial().toString();
            alone.close();

            Map<String, Object> twin = new HashMap<>();
            twin.put("opentmr.node.virtual-serial", serial);
            TwinNode a = start("node-a", host("node-a"), "node-a", twin);
            await("node-a serves on the single node's data", Duration.ofSeconds(30), a::serving);
            TwinNode b = start("node-b", host("node-b"), "node-b", twin);
            await("node-b follows node-a's journal in sync", Duration.ofSeconds(30),
                    () -> a.replication().status() == ReplicationLeader.Status.IN_SYNC);
            for (LicenseHandle handle : held) {
                assertEquals(SEATS_PRODUCT, handle.info().product().productCode(), "held on node-a");
            }
            assertTrue(snapshotFiles(snapshots) >= 1, "the leader keeps the single node's snapshots");

            nodes.remove(a);
            a.close();
            await("node-b serves", Duration.ofSeconds(20), b::serving);
            // node-b has no snapshot: it has the three handles from node-a's journal alone, and they take three of
            // the four seats.
            assertEquals(0, snapshotFiles(dir.resolve("node-b").resolve("journal").resolve("snapshots")));
            assertHeldOnNodeBWithOneSeatLeft(client, held);
        }
    }

    /**
     * The active node takes snapshots and deletes the events they stand for on both nodes; the standby, which has no
     * snapshot, takes over from the checkpoints in the journal with every handle, and no seat is counted twice.
     */
    @Test
    void theStandbyTakesOverFromCheckpointsWhenTheActiveDeletedEventsBehindItsSnapshots() throws Exception {
        Map<String, Object> often = Map.of("opentmr.node.snapshot-every", 4);
        TwinNode a = startActive(often);
        TwinNode b = startStandbyInSync(a, often);
        try (TmrClient client = client()) {
            List<LicenseHandle> held = new ArrayList<>();
            held.add(client.access(TmrTestGroup.FIRM, SEATS_PRODUCT));
            for (int i = 0; i < 15; i++) {
                client.access(TmrTestGroup.FIRM, SEATS_PRODUCT).close();
                if (i == 5 || i == 10) {
                    held.add(client.access(TmrTestGroup.FIRM, SEATS_PRODUCT));
                }
            }
            // Saved after the events they follow, on the snapshot store's own thread.
            await("the active node took snapshots (and deleted events behind them)", Duration.ofSeconds(10),
                    () -> snapshotFiles(dir.resolve("node-a").resolve("journal").resolve("snapshots")) >= 1);
            assertEquals(0, snapshotFiles(dir.resolve("node-b").resolve("journal").resolve("snapshots")),
                    "the standby has none");

            nodes.remove(a);
            a.close();
            await("node-b serves", Duration.ofSeconds(20), b::serving);
            assertHeldOnNodeBWithOneSeatLeft(client, held);
        }
    }

    /**
     * A node that was active keeps its own snapshots when it comes back as the standby without its log being cut (it
     * was in sync): when it takes over again, it recovers from its old snapshot, but the events after it that its
     * twin deleted meanwhile are gone from its journal too. The checkpoint above them gives it the table: a handle
     * its snapshot held and its twin released is no seat any more, a handle its twin granted is held.
     */
    @Test
    void aFormerActiveThatComesBackUncutTakesOverAgainFromItsOldSnapshotAndTheCheckpointsAfterIt() throws Exception {
        Map<String, Object> often = Map.of("opentmr.node.snapshot-every", 4);
        TwinNode a = startActive(often);
        TwinNode b = startStandbyInSync(a, often);
        Path snapshotsA = dir.resolve("node-a").resolve("journal").resolve("snapshots");
        try (TmrClient client = client()) {
            LicenseHandle releasedOnB = client.access(TmrTestGroup.FIRM, SEATS_PRODUCT);
            for (int i = 0; i < 8; i++) {
                client.access(TmrTestGroup.FIRM, SEATS_PRODUCT).close();
            }
            await("node-a took snapshots holding the first handle", Duration.ofSeconds(10),
                    () -> snapshotFiles(snapshotsA) >= 1);
            nodes.remove(a);
            a.close();
            await("node-b serves", Duration.ofSeconds(20), b::serving);
            releasedOnB.close();
            // Enough events on node-b for its deletions (12 events behind its snapshots) to pass node-a's snapshots.
            for (int i = 0; i < 16; i++) {
                client.access(TmrTestGroup.FIRM, SEATS_PRODUCT).close();
            }
            LicenseHandle grantedOnB = client.access(TmrTestGroup.FIRM, SEATS_PRODUCT);
            await("node-b took snapshots", Duration.ofSeconds(10), () -> snapshotFiles(dir.resolve("node-b")
                    .resolve("journal").resolve("snapshots")) >= 1);

            // node-a comes back on its own data: its log is a prefix of node-b's, so nothing is cut or set aside. In
            // this JVM the stopped node-a's actor system may still hold its journal (Pekko 1.2's Artery over TLS can
            // keep it until the twin closes its connections; tmr node exits for systemd then), so node-a comes back
            // on a copy of its data directory, every file of which it wrote and synced before it stopped serving.
            copyTree(dir.resolve("node-a"), dir.resolve("node-a-again"));
            Path snapshotsAgain = dir.resolve("node-a-again").resolve("journal").resolve("snapshots");
            TwinNode again = start("node-a", twin.host(3), "node-a-again", often);
            await("node-a follows node-b's journal in sync", Duration.ofSeconds(30),
                    () -> b.replication().status() == ReplicationLeader.Status.IN_SYNC);
            assertTrue(snapshotFiles(snapshotsAgain) >= 1, "node-a's own snapshots are still in use");
            try (java.util.stream.Stream<Path> files = java.nio.file.Files.list(snapshotsAgain)) {
                assertEquals(List.of(), files.filter(f -> f.getFileName().toString().startsWith("set-aside-"))
                        .toList(), "nothing set aside: the log was not cut");
            }

            nodes.remove(b);
            b.close();
            await("node-a serves again", Duration.ofSeconds(20), again::serving);
            assertEquals(SEATS_PRODUCT, grantedOnB.info().product().productCode(), "held on node-a");
            // Four seats: the one node-b granted and three more; the handle node-b released takes none.
            List<LicenseHandle> more = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                more.add(client.access(TmrTestGroup.FIRM, SEATS_PRODUCT));
            }
            CmException full = assertThrows(CmException.class, () -> client.access(TmrTestGroup.FIRM,
                    SEATS_PRODUCT));
            assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.getMessage());
            for (LicenseHandle handle : more) {
                handle.close();
            }
            grantedOnB.close();
        }
    }

    /**
     * Node-b answers for each of the three {@code held} handles, which take three of the four seats: one more access
     * is granted, the next refused. Then all are released.
     */
    private static void assertHeldOnNodeBWithOneSeatLeft(TmrClient client, List<LicenseHandle> held) {
        for (LicenseHandle handle : held) {
            assertEquals(SEATS_PRODUCT, handle.info().product().productCode(), "held on node-b");
        }
        try (LicenseHandle fourth = client.access(TmrTestGroup.FIRM, SEATS_PRODUCT)) {
            CmException full = assertThrows(CmException.class, () -> client.access(TmrTestGroup.FIRM, SEATS_PRODUCT));
            assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.getMessage());
            assertTrue(fourth.isOpen());
        }
        for (LicenseHandle handle : held) {
            handle.close();
        }
    }

    /** Copies {@code from} with everything under it to {@code to}. */
    private static void copyTree(Path from, Path to) throws java.io.IOException {
        try (java.util.stream.Stream<Path> paths = java.nio.file.Files.walk(from)) {
            for (Path path : (Iterable<Path>) paths::iterator) {
                Path target = to.resolve(from.relativize(path).toString());
                if (java.nio.file.Files.isDirectory(path)) {
                    java.nio.file.Files.createDirectories(target);
                } else {
                    java.nio.file.Files.copy(path, target, java.nio.file.StandardCopyOption.COPY_ATTRIBUTES);
                }
            }
        }
    }

    private static long snapshotFiles(Path snapshots) {
        if (!java.nio.file.Files.isDirectory(snapshots)) {
            return 0;
        }
        try (java.util.stream.Stream<Path> files = java.nio.file.Files.list(snapshots)) {
            return files.filter(f -> f.getFileName().toString().endsWith(".snap")).count();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void theStandbyTakesOverWhenTheActiveIsGoneAndEveryHandleStaysHeld() throws Exception {
        TwinNode a = start("node-a");
        await("node-a serves", Duration.ofSeconds(30), a::serving);
        TwinNode b = start("node-b");
        await("node-b follows node-a's journal in sync", Duration.ofSeconds(30),
                () -> a.replication().status() == ReplicationLeader.Status.IN_SYNC);
        assertFalse(b.serving(), "a standby serves no client");
        await("node-b names node-a as the active node", Duration.ofSeconds(10),
                () -> b.node().activeAddress().equals(host("node-a") + ":22350"));

        try (TmrClient client = client()) {
            LicenseHandle held = client.access(TmrTestGroup.FIRM, PRODUCT);
            assertEquals(new InetSocketAddress(host("node-a"), 22350), client.connectedAddress());
            assertEquals(a.node().virtualSerial(), b.node().virtualSerial(), "one virtual container");
            assertEquals(a.node().virtualSerial(), held.container());

            // node-a goes away as a crash looks to the backends: its connections close.
            nodes.remove(a);
            long gone = System.nanoTime();
            a.close();
            await("node-b serves", Duration.ofSeconds(20), b::serving);
            long tookMillis = (System.nanoTime() - gone) / 1_000_000;

            // The handle from node-a is held on node-b: it answers for it and it still takes one of the two seats.
            assertEquals(PRODUCT, held.info().product().productCode());
            assertEquals(b.node().virtualSerial(), held.info().container());
            assertEquals(new InetSocketAddress(host("node-b"), 22350), client.connectedAddress());
            try (LicenseHandle second = client.access(TmrTestGroup.FIRM, PRODUCT)) {
                CmException full = assertThrows(CmException.class, () -> client.access(TmrTestGroup.FIRM, PRODUCT));
                assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.getMessage());
                assertTrue(second.isOpen());
            }
            held.close();
            System.out.printf("take-over: node-b served %d ms after node-a stopped%n", tookMillis);
        }
    }

    /**
     * The standby folds the licenses' records into their seat tables as its log copies them, and the take-over hands
     * those tables to the licenses instead of replaying them: the handles held (one granted right before the kill,
     * whose records the fold may not have read yet) are all there, a released one is not, no seat is counted twice
     * or lost, and every backend ends with exactly the handles held.
     */
    @Test
    void theStandbyTakesOverWithTheTablesItFoldedAndLosesNoHandleNorCountsASeatTwice() throws Exception {
        TwinNode a = startActive(Map.of());
        TwinNode b = startStandbyInSync(a, Map.of());
        try (TmrClient client = client()) {
            LicenseHandle first = client.access(TmrTestGroup.FIRM, SEATS_PRODUCT);
            LicenseHandle released = client.access(TmrTestGroup.FIRM, SEATS_PRODUCT);
            LicenseHandle third = client.access(TmrTestGroup.FIRM, SEATS_PRODUCT);
            released.close();
            await("in sync", Duration.ofSeconds(30),
                    () -> a.replication().status() == ReplicationLeader.Status.IN_SYNC);
            // Granted (and acknowledged by the standby's log) right before the kill.
            LicenseHandle last = client.access(TmrTestGroup.FIRM, SEATS_PRODUCT);
            nodes.remove(a);
            a.close();
            await("node-b serves", Duration.ofSeconds(20), b::serving);
            io.opentmr.persistence.snapshot.WarmStates warm = io.opentmr.persistence.OpenTmrPersistence
                    .get(b.node().actorSystem()).warmStates();
            assertTrue(warm.usedCount() >= 1, "node-b's licenses recovered from the tables its standby folded");

            for (LicenseHandle held : List.of(first, third, last)) {
                assertEquals(SEATS_PRODUCT, held.info().product().productCode(), "handle " + held.handleId());
            }
            // Three held of four: one more seat, then none (a lost handle would leave two, a revived one none).
            LicenseHandle fourth = client.access(TmrTestGroup.FIRM, SEATS_PRODUCT);
            CmException full = assertThrows(CmException.class, () -> client.access(TmrTestGroup.FIRM, SEATS_PRODUCT));
            assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.getMessage());
            backendsHoldExactly(Set.of(first.handleId(), third.handleId(), last.handleId(), fourth.handleId()));
            // The handle granted last is released on node-b, and its seat is free again on every backend.
            last.close();
            backendsHoldExactly(Set.of(first.handleId(), third.handleId(), fourth.handleId()));
            client.access(TmrTestGroup.FIRM, SEATS_PRODUCT).close();
            first.close();
            third.close();
            fourth.close();
            backendsHoldExactly(Set.of());
        }
    }

    @Test
    void aNodeThatComesBackStaysStandbyAndCatchesUpWithTheActive() throws Exception {
        TwinNode a = start("node-a");
        await("node-a serves", Duration.ofSeconds(30), a::serving);
        TwinNode b = start("node-b");
        await("in sync", Duration.ofSeconds(30), () -> a.replication().status() == ReplicationLeader.Status.IN_SYNC);
        try (TmrClient client = client()) {
            LicenseHandle first = client.access(TmrTestGroup.FIRM, PRODUCT);
            nodes.remove(a);
            a.close();
            await("node-b serves", Duration.ofSeconds(20), b::serving);
            LicenseHandle second = client.access(TmrTestGroup.FIRM, PRODUCT);

            TwinNode again = start("node-a", twin.host(3), "node-a-again");
            await("node-a follows node-b's journal in sync", Duration.ofSeconds(30),
                    () -> b.replication().status() == ReplicationLeader.Status.IN_SYNC);
            assertFalse(again.serving(), "no pre-emption: the node that came back is the standby");

            // Now node-b goes: node-a takes over with both handles, one written by each node.
            nodes.remove(b);
            b.close();
            await("node-a serves again", Duration.ofSeconds(20), again::serving);
            assertEquals(PRODUCT, first.info().product().productCode());
            assertEquals(PRODUCT, second.info().product().productCode());
            CmException full = assertThrows(CmException.class, () -> client.access(TmrTestGroup.FIRM, PRODUCT));
            assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.getMessage());
            first.close();
            second.close();
        }
    }

    /** As Artery tells {@code node} that {@code by} quarantined it (a message of its quarantined incarnation). */
    private static void quarantined(TwinNode node, TwinNode by) {
        ActorSystem<Void> system = node.node().actorSystem();
        org.apache.pekko.remote.UniqueAddress self = new org.apache.pekko.remote.UniqueAddress(
                org.apache.pekko.cluster.typed.Cluster.get(system).selfMember().address(), 1L);
        org.apache.pekko.remote.UniqueAddress other = new org.apache.pekko.remote.UniqueAddress(
                org.apache.pekko.cluster.typed.Cluster.get(by.node().actorSystem()).selfMember().address(), 2L);
        system.eventStream().tell(new org.apache.pekko.actor.typed.eventstream.EventStream.Publish<>(
                new org.apache.pekko.remote.artery.ThisActorSystemQuarantinedEvent(self, other)));
    }

    /**
     * After a partition the active has downed its standby, which never heard so; the active then refuses every
     * message of that incarnation (quarantine). The standby must start a new one, which follows again: else its
     * journal stays behind for good and a later take-over loses what was written since. The active ignores it.
     */
    @Test
    void aStandbyQuarantinedByItsTwinRestartsAndFollowsAgainWhileTheActiveServesOn() throws Exception {
        TwinNode a = startActive(Map.of());
        TwinNode b = startStandbyInSync(a, Map.of());
        quarantined(a, b);
        quarantined(b, a);
        await("node-b restarts, or reports its old actor system stuck", Duration.ofSeconds(90),
                () -> b.restarts() >= 1 || b.stuckStops() >= 1);
        assertTrue(a.serving(), "the lease holder serves on");
        assertEquals(0, a.restarts(), "the lease holder ignores a quarantine");
        if (b.stuckStops() >= 1) {
            // Pekko 1.2 kept the old actor system: `tmr node` exits for its supervisor here (TwinFaultIT's partition).
            return;
        }
        try (TmrClient client = client()) {
            LicenseHandle held = client.access(TmrTestGroup.FIRM, PRODUCT);
            await("node-b (restarted) follows node-a in sync", Duration.ofSeconds(60),
                    () -> a.replication().status() == ReplicationLeader.Status.IN_SYNC && !b.serving());
            nodes.remove(a);
            a.close();
            await("node-b serves", Duration.ofSeconds(30), b::serving);
            assertEquals(PRODUCT, held.info().product().productCode(), "the handle written after the restart");
            held.close();
        }
    }

    /**
     * Freezes every thread of {@code node}'s default dispatcher, where its actors run (role, virtual container,
     * licenses), and of its backend watchers' dispatcher: the node does nothing, as in a long GC pause or a stopped
     * process, while its sockets stay open and its listener still answers HELLO. Returns the latch that resumes it.
     */
    private static CountDownLatch freeze(TwinNode node) throws InterruptedException {
        ActorSystem<Void> system = node.node().actorSystem();
        Map<java.util.concurrent.Executor, Integer> dispatchers = Map.of(
                system.executionContext(), threads(system, "pekko.actor.default-dispatcher"),
                system.dispatchers().lookup(DispatcherSelector.fromConfig(BackendWatcher.DISPATCHER)),
                threads(system, BackendWatcher.DISPATCHER));
        int held = dispatchers.values().stream().mapToInt(Integer::intValue).sum();
        CountDownLatch resume = new CountDownLatch(1);
        CountDownLatch frozen = new CountDownLatch(held);
        dispatchers.forEach((dispatcher, threads) -> {
            for (int i = 0; i < threads; i++) {
                dispatcher.execute(() -> {
                    frozen.countDown();
                    try {
                        resume.await(60, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                });
            }
        });
        assertTrue(frozen.await(10, TimeUnit.SECONDS), "all " + held + " threads of the node's dispatchers are held");
        return resume;
    }

    /** The threads of a dispatcher as its configuration sizes them (a fixed pool, or a fork-join pool). */
    private static int threads(ActorSystem<Void> system, String path) {
        Config dispatcher = system.settings().config().getConfig(path);
        if (dispatcher.getString("executor").equals("thread-pool-executor")) {
            return dispatcher.getInt("thread-pool-executor.fixed-pool-size");
        }
        Config pool = dispatcher.getConfig("fork-join-executor");
        return Math.min(pool.getInt("parallelism-max"), Math.max(pool.getInt("parallelism-min"),
                (int) Math.ceil(Runtime.getRuntime().availableProcessors() * pool.getDouble("parallelism-factor"))));
    }

    @Test
    void anActiveFrozenBeyondTheLeaseLetsTheStandbyTakeOverAndOnResumingServesNothingAndFollowsIt() throws Exception {
        TwinNode a = start("node-a");
        await("node-a serves", Duration.ofSeconds(30), a::serving);
        TwinNode b = start("node-b");
        await("in sync", Duration.ofSeconds(30), () -> a.replication().status() == ReplicationLeader.Status.IN_SYNC);
        try (TmrClient client = client()) {
            LicenseHandle first = client.access(TmrTestGroup.FIRM, PRODUCT);
            TmrNode frozenNode = a.node();
            CountDownLatch resume = freeze(a);
            CompletableFuture<Boolean> actorsRan = new CompletableFuture<>();
            frozenNode.actorSystem().executionContext().execute(() -> actorsRan.complete(true));
            try {
                // The backends see no renewal: the lease runs out and node-b takes it under a new epoch.
                await("node-b serves", Duration.ofSeconds(30), b::serving);
                assertFalse(frozenNode.serving(), "a node whose grants ran out by its own clock does not serve");
                LicenseHandle second = client.access(TmrTestGroup.FIRM, PRODUCT);
                assertEquals(new InetSocketAddress(host("node-b"), 22350), client.connectedAddress());
                assertFalse(actorsRan.isDone(), "node-a's actors were frozen the whole time");

                // node-a resumes with a backlog of ticks, heartbeats and requests from before: whatever it does
                // now, it must not serve, and it comes back as node-b's standby.
                resume.countDown();
                // It ends its role and restarts as the standby, or (when Pekko 1.2's Artery over TLS keeps its old
                // actor system alive while node-b runs) reports the stop stuck, which makes `tmr node` exit for its
                // supervisor to restart it.
                await("node-a restarts as the standby or reports its old actor system stuck", Duration.ofSeconds(90),
                        () -> a.restarts() >= 1 || a.stuckStops() >= 1);
                await("node-a (restarted) follows node-b in sync, or its stop was reported stuck",
                        Duration.ofSeconds(30), () -> a.stuckStops() >= 1
                                || b.replication().status() == ReplicationLeader.Status.IN_SYNC);
                assertFalse(a.serving(), "no pre-emption");
                assertTrue(b.serving());

                // Two seats, both held, one written by each node; the backends hold exactly those two.
                assertEquals(PRODUCT, first.info().product().productCode());
                assertEquals(PRODUCT, second.info().product().productCode());
                CmException full = assertThrows(CmException.class, () -> client.access(TmrTestGroup.FIRM, PRODUCT));
                assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.getMessage());
                backendsHoldExactly(Set.of(first.handleId(), second.handleId()));
                first.close();
                second.close();
            } finally {
                resume.countDown();
            }
        }
    }

    @Test
    void aHandleAcknowledgedWhileReplicationWasDegradedIsRebuiltOnTakeOverFromTheBackendsAllocations()
            throws Exception {
        // node-a alone: replication degraded, its writes are acknowledged by its own log (persistence README).
        TwinNode a = start("node-a");
        await("node-a serves", Duration.ofSeconds(30), a::serving);
        assertEquals(ReplicationLeader.Status.DEGRADED, a.replication().status());
        try (TmrClient client = client()) {
            LicenseHandle kept = client.access(TmrTestGroup.FIRM, PRODUCT);
            long handle = kept.handleId();
            for (int backend = 0; backend < 3; backend++) {
                int index = backend;
                await("backend " + (backend + 1) + " holds the handle", Duration.ofSeconds(20),
                        () -> handlesOn(index).equals(Set.of(handle)));
            }
            // node-a dies before any standby copied its log; node-b takes over with a journal that lacks the handle.
            nodes.remove(a);
            a.close();
            TwinNode b = start("node-b");
            await("node-b serves", Duration.ofSeconds(30), b::serving);

            // Every backend holds it alike: node-b rebuilds it from their allocations, the client goes on with it,
            // and it still takes its seat.
            kept.info();
            backendsHoldExactly(Set.of(handle));
            try (LicenseHandle one = client.access(TmrTestGroup.FIRM, PRODUCT)) {
                assertTrue(one.isOpen());
                CmException full = assertThrows(CmException.class, () -> client.access(TmrTestGroup.FIRM, PRODUCT));
                assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.getMessage());
            }
            kept.close();
            for (int backend = 0; backend < 3; backend++) {
                int index = backend;
                await("backend " + (backend + 1) + " freed the released handle", Duration.ofSeconds(20),
                        () -> handlesOn(index).isEmpty());
            }
        }
    }

    /** Starts node-b once {@code a} serves and waits until it follows a's journal in sync. */
    private TwinNode standbyInSync(TwinNode a) throws InterruptedException {
        await("node-a serves", Duration.ofSeconds(30), a::serving);
        TwinNode b = start("node-b");
        await("in sync", Duration.ofSeconds(30), () -> a.replication().status() == ReplicationLeader.Status.IN_SYNC);
        return b;
    }

    private static void stepDown(TwinNode node) {
        try (AdminClient admin = AdminClient.connect(TmrClientOptions.builder().addresses(node.node().address())
                .requestTimeout(Duration.ofSeconds(20)).build(), "")) {
            admin.stepDown();
        }
    }

    @Test
    void aStepDownHandsTheActiveRoleToTheStandbyWithoutAClientErrorAndEveryHandleStaysUsable() throws Exception {
        TwinNode a = start("node-a");
        TwinNode b = standbyInSync(a);
        await("node-b names node-a as the active node", Duration.ofSeconds(10),
                () -> b.node().activeAddress().equals(host("node-a") + ":22350"));
        List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
        java.util.concurrent.atomic.AtomicLong loops = new java.util.concurrent.atomic.AtomicLong();
        java.util.concurrent.atomic.AtomicBoolean running = new java.util.concurrent.atomic.AtomicBoolean(true);
        try (TmrClient holder = client(); TmrClient looping = client()) {
            LicenseHandle held = holder.access(TmrTestGroup.FIRM, PRODUCT);
            // A second client takes and gives back the other seat all the while.
            Thread loop = new Thread(() -> {
                while (running.get()) {
                    try (LicenseHandle seat = looping.access(TmrTestGroup.FIRM, PRODUCT)) {
                        seat.info();
                        loops.incrementAndGet();
                    } catch (RuntimeException e) {
                        errors.add(e);
                    }
                }
            }, "access-release-loop");
            loop.start();
            try {
                await("the loop runs", Duration.ofSeconds(20), () -> loops.get() >= 5);
                stepDown(a);
                assertFalse(a.serving(), "the node that stepped down serves no more");
                await("node-b serves", Duration.ofSeconds(20), b::serving);
                long atTakeOver = loops.get();
                await("the loop goes on through node-b", Duration.ofSeconds(30), () -> loops.get() >= atTakeOver + 5);
            } finally {
                running.set(false);
                loop.join(TimeUnit.SECONDS.toMillis(30));
            }
            assertEquals(List.of(), errors, "no client sees an error during a step-down");
            assertFalse(loop.isAlive());

            // The handle from node-a answers through node-b, takes its seat there, and is released there.
            assertEquals(PRODUCT, held.info().product().productCode());
            assertEquals(new InetSocketAddress(host("node-b"), 22350), holder.connectedAddress());
            try (LicenseHandle second = holder.access(TmrTestGroup.FIRM, PRODUCT)) {
                CmException full = assertThrows(CmException.class, () -> holder.access(TmrTestGroup.FIRM, PRODUCT));
                assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.getMessage());
                backendsHoldExactly(Set.of(held.handleId(), second.handleId()));
            }
            held.close();
            backendsHoldExactly(Set.of());

            // node-a restarts as node-b's standby and does not take the role back (or reports its old actor system
            // stuck: Pekko 1.2's Artery over TLS, see TwinNode.STOP_BOUND).
            await("node-a restarts as the standby or reports its old actor system stuck", Duration.ofSeconds(60),
                    () -> a.restarts() >= 1 || a.stuckStops() >= 1);
            await("node-a follows node-b in sync, or its stop was reported stuck", Duration.ofSeconds(30),
                    () -> a.stuckStops() >= 1 || b.replication().status() == ReplicationLeader.Status.IN_SYNC);
            assertFalse(a.serving(), "the node that stepped down stays the standby");
            assertTrue(b.serving());
        }
    }

    @Test
    void aPlannedStopOfTheActiveHandsItsRoleOverFirst() throws Exception {
        TwinNode a = start("node-a");
        TwinNode b = standbyInSync(a);
        try (TmrClient client = client()) {
            LicenseHandle held = client.access(TmrTestGroup.FIRM, PRODUCT);
            nodes.remove(a);
            assertTrue(a.stop(), "node-a handed its role over before it stopped");
            // The lease was given back before node-a's connections closed: node-b took it at its next heartbeat.
            await("node-b serves", Duration.ofSeconds(20), b::serving);
            assertEquals(PRODUCT, held.info().product().productCode());
            assertEquals(new InetSocketAddress(host("node-b"), 22350), client.connectedAddress());
            backendsHoldExactly(Set.of(held.handleId()));
            held.close();
            backendsHoldExactly(Set.of());
        }
    }

    @Test
    void aStepDownWithoutAStandbyInSyncIsRefusedAndTheNodeKeepsServing() throws Exception {
        TwinNode a = start("node-a");
        await("node-a serves", Duration.ofSeconds(30), a::serving);
        try (TmrClient client = client()) {
            LicenseHandle held = client.access(TmrTestGroup.FIRM, PRODUCT);
            CmException refused = assertThrows(CmException.class, () -> stepDown(a));
            assertEquals(CmError.REDUNDANCY_SERVER_MISSING.code(), refused.code(), refused.getMessage());
            assertTrue(refused.getMessage().contains("no standby in sync"), refused.getMessage());
            assertTrue(a.serving(), "the node keeps serving");
            assertEquals(0, a.restarts());
            assertEquals(PRODUCT, held.info().product().productCode());
            held.close();
        }
    }

    /** Each backend allocates exactly {@code handles} (waiting, bounded, for frees and re-allocations). */
    private void backendsHoldExactly(Set<Long> handles) throws InterruptedException {
        for (int backend = 0; backend < 3; backend++) {
            int index = backend;
            await("backend " + (backend + 1) + " holds exactly " + handles, Duration.ofSeconds(20),
                    () -> handlesOn(index).equals(handles));
        }
    }

    private Set<Long> handlesOn(int backend) {
        try {
            Set<Long> handles = new HashSet<>();
            group.allocations(backend).forEach(allocation -> handles.add(allocation.tmrHandleId()));
            return handles;
        } catch (Exception e) {
            return Set.of(-1L);
        }
    }
}
