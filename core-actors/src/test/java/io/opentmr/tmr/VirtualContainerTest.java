package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.AllocationDigests;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.backend.PeerGroup;
import io.opentmr.tmr.backend.PeerLink;
import io.opentmr.tmr.license.Seat;
import io.opentmr.tmr.license.TmrLicense;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.FishingOutcomes;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.persistence.testkit.PersistenceTestKitPlugin;
import org.apache.pekko.persistence.testkit.PersistenceTestKitSnapshotPlugin;
import org.apache.pekko.persistence.testkit.javadsl.PersistenceTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The virtual container journals its group's CmActId and the license keys it has seen (through the CBOR
 * serializer: the persistence testkit serializes every event), spawns every known license on recovery, and
 * routes by the quorums' view. The licenses here are stand-ins that report what they are told.
 */
@Timeout(30)
class VirtualContainerTest {

    private static final LicenseKey SEATS = new LicenseKey(6_000_010, 101, 1);
    private static final LicenseKey UNITS = new LicenseKey(6_000_010, 102, 2);
    private static final Clock CLOCK = Clock.fixed(Instant.ofEpochMilli(1_000_000), ZoneOffset.UTC);
    private static ActorTestKit kit;
    private static PersistenceTestKit journal;
    private static int serials;

    /** What a stand-in license reports: it was started, or it was told something. */
    record Spawned(LicenseKey key) {
    }

    record Told(LicenseKey key, TmrLicense.Command command) {
    }

    @BeforeAll
    static void start() {
        Config config = PersistenceTestKitPlugin.getInstance().config()
                .withFallback(PersistenceTestKitSnapshotPlugin.getInstance().config())
                .withFallback(ConfigFactory.load());
        kit = ActorTestKit.create("virtual-container", config);
        journal = PersistenceTestKit.create(kit.system());
    }

    @AfterAll
    static void stop() {
        kit.shutdownTestKit();
    }

    @BeforeEach
    void clear() {
        journal.clearAll();
    }

    /** A license that says it started and recovered at once, and reports every command. */
    static VirtualContainer.LicenseFactory standIns(ActorRef<Object> reports) {
        return standIns(reports, new long[0]);
    }

    /** As {@link #standIns(ActorRef)}, each license recovering a seat for each of {@code handleIds}. */
    static VirtualContainer.LicenseFactory standIns(ActorRef<Object> reports, long... handleIds) {
        return (key, parent) -> Behaviors.setup(context -> {
            reports.tell(new Spawned(key));
            List<Seat> seats = new ArrayList<>();
            for (long handleId : handleIds) {
                seats.add(new Seat(handleId, AccessMode.USERLIMIT, 0, "ws", "user", 1, 1, "", 3, 0, null, 0));
            }
            if (!seats.isEmpty()) {
                parent.openedAll(key, seats);
            }
            parent.recovered(key, context.getSelf());
            return Behaviors.<TmrLicense.Command>receiveMessage(command -> {
                reports.tell(new Told(key, command));
                return Behaviors.same();
            });
        });
    }

    private static Behavior<VirtualContainer.Command> container(Serial serial, VirtualContainer.LicenseFactory licenses) {
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(1));
        return container(serial, peers, new NodeStatus(peers), licenses);
    }

    private static Behavior<VirtualContainer.Command> container(Serial serial, PeerGroup peers, NodeStatus status,
                                                               VirtualContainer.LicenseFactory licenses) {
        return VirtualContainer.create(serial, peers, status, CLOCK, Duration.ofMillis(100), Duration.ofSeconds(10),
                licenses);
    }

    private static Serial nextSerial() {
        return new Serial(Serial.MASK_VIRTUAL_TMR, 20_000_000 + ++serials);
    }

    private static BitSet bits(int... backends) {
        BitSet set = new BitSet();
        for (int backend : backends) {
            set.set(backend);
        }
        return set;
    }

    static Quorums.View view(long cmActId, BitSet inventoried, Quorums.Verdict... verdicts) {
        Map<LicenseKey, Quorums.Verdict> byKey = new LinkedHashMap<>();
        for (Quorums.Verdict verdict : verdicts) {
            byKey.put(verdict.key(), verdict);
        }
        return new Quorums.View(cmActId, inventoried, byKey);
    }

    static Quorums.Verdict counted(LicenseKey key, int... backends) {
        return new Quorums.Verdict(key, bits(backends), backends.length >= 2
                ? QuorumsTest.product(key, 10, -1) : null, true, -1);
    }

    @Test
    void recoverySpawnsEveryKnownLicenseBeforeAnyBackendIsHeardOf() {
        Serial serial = nextSerial();
        String id = VirtualContainer.persistenceId(serial).id();
        journal.persistForRecovery(id, List.of(new VirtualContainer.CmActIdLearned(7, 1),
                new VirtualContainer.LicenseSeen(SEATS, 1), new VirtualContainer.LicenseSeen(UNITS, 2)));
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, standIns(licenses.getRef())));

        Set<Object> spawned = new java.util.HashSet<>();
        while (spawned.size() < 2) {
            Object report = licenses.receiveMessage();
            if (report instanceof Spawned) {
                spawned.add(report);
            } else {
                assertEquals(new TmrLicense.ResyncAll(0), ((Told) report).command(),
                        "told its round on recovery, before any copy is known");
            }
        }
        assertEquals(Set.of(new Spawned(SEATS), new Spawned(UNITS)), spawned);
        TestProbe<VirtualContainer.Licenses> known = kit.createTestProbe();
        VirtualContainer.Licenses expected = new VirtualContainer.Licenses(Set.of(SEATS, UNITS), Set.of(SEATS, UNITS));
        VirtualContainer.Licenses seen = null;
        // The licenses report their recovery on their own: asked until both have, within a bound.
        long deadline = System.nanoTime() + java.time.Duration.ofSeconds(10).toNanos();
        while (!expected.equals(seen) && System.nanoTime() < deadline) {
            container.tell(new VirtualContainer.GetLicenses(known.getRef()));
            seen = known.receiveMessage();
        }
        assertEquals(expected, seen);
        TestProbe<VirtualContainer.Listed> listed = kit.createTestProbe();
        container.tell(new VirtualContainer.ListContainers(listed.getRef()));
        VirtualContainer.Listed list = listed.receiveMessage();
        assertEquals(7, list.container().cmActId(), "the journaled CmActId");
        assertEquals(List.of(), list.container().products(), "nothing is listed before the quorums count copies");
    }

    @Test
    void aNewKeyIsJournaledOnceThenItsLicenseIsSpawnedAndToldWhatCounts() {
        Serial serial = nextSerial();
        String id = VirtualContainer.persistenceId(serial).id();
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, standIns(licenses.getRef())));

        container.tell(new VirtualContainer.Counted(view(7, bits(0), counted(SEATS, 0))));
        journal.expectNextPersisted(id, new VirtualContainer.CmActIdLearned(7, CLOCK.millis()));
        journal.expectNextPersisted(id, new VirtualContainer.LicenseSeen(SEATS, CLOCK.millis()));
        licenses.expectMessage(new Spawned(SEATS));
        assertEquals(new TmrLicense.Copies(bits(0), null), licenses.expectMessageClass(Told.class).command());
        // The license says it recovered: it is told again, and re-syncs.
        assertEquals(new TmrLicense.Copies(bits(0), null), licenses.expectMessageClass(Told.class).command());
        assertEquals(new TmrLicense.ResyncAll(0), licenses.expectMessageClass(Told.class).command(),
                "no lease gained yet");

        // The same view again changes nothing; a second counted copy is told, and nothing is journaled.
        container.tell(new VirtualContainer.Counted(view(7, bits(0), counted(SEATS, 0))));
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1), counted(SEATS, 0, 1))));
        Told valid = licenses.expectMessageClass(Told.class);
        assertEquals(new TmrLicense.Copies(bits(0, 1), QuorumsTest.product(SEATS, 10, -1)), valid.command());
        journal.expectNothingPersisted(id);

        // Routed by the view: an access to the valid license reaches it, an unknown product is refused.
        TestProbe<TmrLicense.Reply> client = kit.createTestProbe();
        TmrLicense.Client who = new TmrLicense.Client("127.0.0.1", "host", "user", 1, 1);
        container.tell(new VirtualContainer.Access(SEATS.firmCode(), SEATS.productCode(), 0, AccessMode.USERLIMIT, who,
                1, client.getRef()));
        assertEquals(TmrLicense.Access.class, licenses.expectMessageClass(Told.class).command().getClass());
        container.tell(new VirtualContainer.Access(SEATS.firmCode(), 999, 0, AccessMode.USERLIMIT, who, 2,
                client.getRef()));
        assertEquals(CmError.ENTRY_NOT_FOUND.code(), ((TmrLicense.Refused) client.receiveMessage()).code());

        // After a restart the key is known from the journal: its license starts without any backend.
        kit.stop(container);
        TestProbe<Object> again = kit.createTestProbe();
        kit.spawn(container(serial, standIns(again.getRef())));
        again.expectMessage(new Spawned(SEATS));
    }

    @Test
    void aReportOfUsableCopiesSentBeforeTheLeaseCameBackDoesNotLetTheNodeServe() {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(1));
        NodeStatus status = new NodeStatus(peers);
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, peers, status,
                standIns(licenses.getRef())));
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        licenses.expectMessage(new Spawned(SEATS));
        licenses.fishForMessage(Duration.ofSeconds(10), told -> new Told(SEATS, new TmrLicense.ResyncAll(0))
                .equals(told) ? FishingOutcomes.complete() : FishingOutcomes.continueAndIgnore());

        // The lease comes: every license is told to re-sync every backend, in round 1.
        for (int b = 0; b < 2; b++) {
            peers.granted(b, new LeaseGrant(LeaseGrant.ACTIVE_LEASE, "node-a", 3, CLOCK.millis(), 60_000,
                    new Serial(129, b + 1), Bytes.of(new byte[64])), peers.now());
        }
        licenses.fishForMessage(Duration.ofSeconds(10), told -> new Told(SEATS, new TmrLicense.ResyncAll(1))
                .equals(told) ? FishingOutcomes.complete() : FishingOutcomes.continueAndIgnore());

        // A report the license sent before it got that: three usable copies, from before the lease came back.
        container.tell(new VirtualContainer.SeatsChanged(SEATS, 0, 0, -1, 3, 0));
        // Asked, the container answers after it handled the report: the node does not serve on it.
        TestProbe<VirtualContainer.Licenses> known = kit.createTestProbe();
        container.tell(new VirtualContainer.GetLicenses(known.getRef()));
        known.receiveMessage();
        assertFalse(status.reconciled(), "a report from before the lease came back counts for nothing");

        // The license's report after its re-syncs does.
        container.tell(new VirtualContainer.SeatsChanged(SEATS, 0, 0, -1, 3, 1));
        container.tell(new VirtualContainer.GetLicenses(known.getRef()));
        known.receiveMessage();
        assertTrue(status.reconciled(), "re-synced in this round: the node serves");
    }

    /** A backend link whose requests the test answers by hand. */
    static final class HeldLink implements PeerLink {
        final java.util.concurrent.LinkedBlockingQueue<java.util.Map.Entry<Message, CompletableFuture<Message>>> asked =
                new java.util.concurrent.LinkedBlockingQueue<>();
        /**
         * Whether a listing's ranges other than the first ({@link BackendListing#CURSORS}) are answered at once, empty:
         * the tests' handle ids are small, in the first range, whose pages the tests answer themselves.
         */
        private final boolean holdsEveryRange;
        /** Whether LIST_DIGESTS reaches the test (else it is refused, as by a backend older than it). */
        boolean answersDigests;

        HeldLink() {
            this(false);
        }

        HeldLink(boolean holdsEveryRange) {
            this.holdsEveryRange = holdsEveryRange;
        }

        @Override
        public CompletionStage<Message> request(Message request) {
            if (request instanceof Message.ListDigests && !answersDigests) {
                // An older backend: the node lists it whole.
                return CompletableFuture.failedFuture(new CmFailure(CmError.INVALID_PARAMETER,
                        "unknown message type 0x8E"));
            }
            if (!holdsEveryRange && request instanceof Message.ListAllocations list && otherRange(list.afterHandleId())) {
                return CompletableFuture.completedFuture(new Message.AllocationList(List.of(), false,
                        list.withRequests()));
            }
            CompletableFuture<Message> answer = new CompletableFuture<>();
            asked.add(java.util.Map.entry(request, answer));
            return answer;
        }

        @Override
        public CompletionStage<Void> closed() {
            return new CompletableFuture<>();
        }

        @Override
        public String backendName() {
            return "held";
        }

        @Override
        public void close() {
        }

        private static boolean otherRange(long after) {
            for (int k = 1; k < BackendListing.CURSORS; k++) {
                if (after == BackendListing.rangeStart(k)) {
                    return true;
                }
            }
            return false;
        }

        /** The next request, within a bound. */
        java.util.Map.Entry<Message, CompletableFuture<Message>> next() throws InterruptedException {
            var request = asked.poll(10, java.util.concurrent.TimeUnit.SECONDS);
            if (request == null) {
                throw new AssertionError("no request reached the backend");
            }
            return request;
        }
    }

    private static void grantLease(PeerGroup peers, long epoch, String holder) {
        for (int b = 0; b < 2; b++) {
            peers.granted(b, new LeaseGrant(LeaseGrant.ACTIVE_LEASE, holder, epoch, CLOCK.millis(), 60_000,
                    new Serial(129, b + 1), Bytes.of(new byte[64])), peers.now());
        }
    }

    private static void expectTold(TestProbe<Object> licenses, LicenseKey key, TmrLicense.Command command) {
        licenses.fishForMessage(Duration.ofSeconds(10), told -> new Told(key, command).equals(told)
                ? FishingOutcomes.complete() : FishingOutcomes.continueAndIgnore());
    }

    @Test
    void aListingTakenBeforeTheLeaseCameIsTakenAgainAfter() throws Exception {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink link = new HeldLink();
        peers.linkUp(2, link);
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, peers, new NodeStatus(peers),
                standIns(licenses.getRef())));
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(0));

        // Without the lease the license keeps asking; backend 3's listing is under way when the lease comes.
        container.tell(new VirtualContainer.NeedsResync(SEATS, 2));
        var before = link.next();
        assertInstanceOf(Message.ListAllocations.class, before.getKey());
        grantLease(peers, 3, "node-a");
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(1));
        container.tell(new VirtualContainer.NeedsResync(SEATS, 2));
        // Another node wrote to backend 3 before the lease came: the old listing does not show it.
        before.getValue().complete(new Message.AllocationList(List.of(), false));

        var after = link.next();
        assertInstanceOf(Message.ListAllocations.class, after.getKey(), "listed again once the lease is held");
        after.getValue().complete(new Message.AllocationList(List.of(), false));
        Object told = licenses.fishForMessage(Duration.ofSeconds(10), report -> report instanceof Told t
                && t.command() instanceof TmrLicense.Resync ? FishingOutcomes.complete()
                : FishingOutcomes.continueAndIgnore()).get(0);
        assertEquals(new TmrLicense.Resync(2, List.of(), 3), ((Told) told).command());
        licenses.expectNoMessage(Duration.ofMillis(300));
        assertEquals(0, link.asked.size(), "one listing after the lease, not more");
    }

    @Test
    void aListingThatEndsAfterTheLeaseCameIsNoReSyncBeforeTheGainIsTaken() throws Exception {
        // A license recovered before the lease came asks for re-syncs; the lease comes while a listing is out. Seen
        // in a take-over: that listing, delivered before the container's next lease check, made the license free a
        // handle two backends held, which the gain's rebuild would have kept.
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink link = new HeldLink();
        peers.linkUp(2, link);
        TestProbe<Object> licenses = kit.createTestProbe();
        // No lease check of its own meanwhile (one an hour): only the listing's end can show the container the gain.
        ActorRef<VirtualContainer.Command> container = kit.spawn(VirtualContainer.create(serial, peers,
                new NodeStatus(peers), CLOCK, Duration.ofHours(1), Duration.ofSeconds(10), standIns(licenses.getRef())));
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(0));
        container.tell(new VirtualContainer.NeedsResync(SEATS, 2));
        var before = link.next();
        assertInstanceOf(Message.ListAllocations.class, before.getKey());
        grantLease(peers, 3, "node-a");
        before.getValue().complete(new Message.AllocationList(List.of(heldAllocation(42)), false));

        Object first = licenses.fishForMessage(Duration.ofSeconds(10), told -> told instanceof Told t
                && (t.command() instanceof TmrLicense.Resync || t.command() instanceof TmrLicense.ResyncAll)
                ? FishingOutcomes.complete() : FishingOutcomes.continueAndIgnore()).get(0);
        assertEquals(new Told(SEATS, new TmrLicense.ResyncAll(1)), first,
                "the gain is taken before anything of the listing of before it");
        var atGain = link.next();
        assertInstanceOf(Message.ListAllocations.class, atGain.getKey(), "listed again under the lease");
        atGain.getValue().complete(new Message.AllocationList(List.of(), false));
        expectTold(licenses, SEATS, new TmrLicense.Resync(2, List.of(), 3));
    }

    @Test
    void aBackendThatLeftBetweenTheTakeOversListingAndServingIsListedAgainWhenItIsBack() throws Exception {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        NodeStatus status = new NodeStatus(peers);
        HeldLink link = new HeldLink();
        peers.linkUp(2, link);
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, peers, status,
                standIns(licenses.getRef())));
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(0));

        // The lease comes with every backend inventoried: backend 3 is listed at once, and holds handle 42.
        grantLease(peers, 3, "node-a");
        var atGain = link.next();
        assertInstanceOf(Message.ListAllocations.class, atGain.getKey());
        io.opentmr.protocol.Allocation held = new io.opentmr.protocol.Allocation(42, SEATS, AccessMode.USERLIMIT, 0,
                new io.opentmr.protocol.HandleOwner("ws-1", "anna", 1, 1), Bytes.of(new byte[32]), 1);
        atGain.getValue().complete(new Message.AllocationList(List.of(held), false));
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(1));
        container.tell(new VirtualContainer.NeedsResync(SEATS, 2));
        expectTold(licenses, SEATS, new TmrLicense.Resync(2, List.of(held), 3));

        // Backend 3 goes away and comes back (restored, replaced, restarted) before the node serves: what it holds
        // now is read anew, not taken from the listing of before.
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1), counted(SEATS, 0, 1))));
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        container.tell(new VirtualContainer.NeedsResync(SEATS, 2));
        var again = link.asked.poll(5, java.util.concurrent.TimeUnit.SECONDS);
        assertInstanceOf(Message.ListAllocations.class, again == null ? null : again.getKey(),
                "backend 3 listed again after it came back");
        again.getValue().complete(new Message.AllocationList(List.of(), false));
        expectTold(licenses, SEATS, new TmrLicense.Resync(2, List.of(), 3));
    }

    private static io.opentmr.protocol.Allocation heldAllocation(long handleId) {
        return new io.opentmr.protocol.Allocation(handleId, SEATS, AccessMode.USERLIMIT, 0,
                new io.opentmr.protocol.HandleOwner("ws-1", "anna", 1, 1), Bytes.of(new byte[32]), 1);
    }

    @Test
    void aListingTakenWhenTheTwinHeldTheLeaseIsTheGainsListingAtThatEpoch() throws Exception {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink link = new HeldLink();
        peers.linkUp(2, link);
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, peers, new NodeStatus(peers),
                standIns(licenses.getRef())));
        // The twin's role listed backend 3 once it held the lease at epoch 3, before the container started.
        var held = heldAllocation(42);
        container.tell(new VirtualContainer.Prelisted(3, 2, Map.of(SEATS, List.of(held)), false));
        grantLease(peers, 3, "node-a");
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(1));
        container.tell(new VirtualContainer.NeedsResync(SEATS, 2));
        expectTold(licenses, SEATS, new TmrLicense.Resync(2, List.of(held), 3));
        assertEquals(null, link.asked.poll(300, java.util.concurrent.TimeUnit.MILLISECONDS),
                "backend 3 is not listed a second time");
    }

    @Test
    void aListingTakenAtAnotherEpochIsNotTheGainsListing() throws Exception {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink link = new HeldLink();
        peers.linkUp(2, link);
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, peers, new NodeStatus(peers),
                standIns(licenses.getRef())));
        // Listed at epoch 2: another node may have held the lease and written since.
        container.tell(new VirtualContainer.Prelisted(2, 2, Map.of(SEATS, List.of(heldAllocation(42))), false));
        grantLease(peers, 3, "node-a");
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        var atGain = link.next();
        assertInstanceOf(Message.ListAllocations.class, atGain.getKey(), "listed at the gain of epoch 3");
        atGain.getValue().complete(new Message.AllocationList(List.of(), false));
        container.tell(new VirtualContainer.NeedsResync(SEATS, 2));
        expectTold(licenses, SEATS, new TmrLicense.Resync(2, List.of(), 3));
    }

    @Test
    void aListingTheTwinTookArrivingWhileTheContainersOwnIsUnderWayIsTakenAndTheOwnDropped() throws Exception {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink link = new HeldLink();
        peers.linkUp(2, link);
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, peers, new NodeStatus(peers),
                standIns(licenses.getRef())));
        grantLease(peers, 3, "node-a");
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        var own = link.next();
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(1));
        container.tell(new VirtualContainer.NeedsResync(SEATS, 2));
        var held = heldAllocation(42);
        container.tell(new VirtualContainer.Prelisted(3, 2, Map.of(SEATS, List.of(held)), false));
        expectTold(licenses, SEATS, new TmrLicense.Resync(2, List.of(held), 3));
        // The container's own listing ends later: dropped, the license is not re-synced twice.
        own.getValue().complete(new Message.AllocationList(List.of(), false));
        licenses.expectNoMessage(Duration.ofMillis(300));
    }

    @Test
    void theLicensesHearWhatTwoBackendsHoldBeforeAnyReSyncOfTheGainFreesIt() throws Exception {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink first = new HeldLink();
        HeldLink second = new HeldLink();
        peers.linkUp(0, first);
        peers.linkUp(1, second);
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = gainingTheLease(serial, peers, licenses);
        var atGain1 = first.next();
        var atGain2 = second.next();
        container.tell(new VirtualContainer.NeedsResync(SEATS, 0));
        // Backend 1 holds handle 42, which the journal lacks (its node acknowledged it alone and died).
        var held = heldAllocation(42);
        atGain1.getValue().complete(new Message.AllocationList(List.of(held), false));
        licenses.expectNoMessage(Duration.ofMillis(300));
        // Backend 2 holds it too: the license hears of both before the re-sync of backend 1 would free it.
        atGain2.getValue().complete(new Message.AllocationList(List.of(held), false));
        Object told = licenses.receiveMessage(Duration.ofSeconds(10));
        assertEquals(new Told(SEATS, new TmrLicense.Rebuild(3, List.of(List.of(held), List.of(held)), 2)), told);
        expectTold(licenses, SEATS, new TmrLicense.Resync(0, List.of(held), 3));
    }

    /**
     * A listing carries no certificate: backend 3, which has not granted the node the lease's epoch, may still carry out
     * an ALLOCATE of the old active after it was listed. Its listing counts for the rebuild, not as fenced: with backend
     * 2 not connected, one listing of the two was taken after its backend fenced the old epoch, and no journal's seat
     * is dropped on the strength of these two (TmrLicense#staleAtTheGain).
     */
    @Test
    void aListingOfABackendThatHadNotGrantedTheEpochIsNotCountedAsFenced() throws Exception {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink first = new HeldLink();
        HeldLink third = new HeldLink();
        peers.linkUp(0, first);
        peers.linkUp(2, third);
        TestProbe<Object> licenses = kit.createTestProbe();
        gainingTheLease(serial, peers, licenses);
        var atGain1 = first.next();
        var atGain3 = third.next();
        var held = heldAllocation(42);
        atGain1.getValue().complete(new Message.AllocationList(List.of(held), false));
        atGain3.getValue().complete(new Message.AllocationList(List.of(), false));
        Object told = licenses.receiveMessage(Duration.ofSeconds(10));
        assertEquals(new Told(SEATS, new TmrLicense.Rebuild(3, List.of(List.of(held), List.of()), 1)), told,
                "two listings, one of a backend that had granted epoch 3");
    }

    /**
     * A listing of the gain that fails while its backend stays linked (a timeout on a starved machine) is taken again
     * before any license re-syncs: handle 42, which backends 1 and 2 hold and the journal lacks, is rebuilt, where
     * the re-syncs of the two other backends' listings alone freed it.
     */
    @Test
    void aListingOfTheGainThatFailsIsTakenAgainBeforeAnyReSyncFreesWhatItHolds() throws Exception {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink[] links = heldLinks(peers);
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = gainingTheLease(serial, peers, licenses);
        var atGain1 = links[0].next();
        var atGain2 = links[1].next();
        var atGain3 = links[2].next();
        container.tell(new VirtualContainer.NeedsResync(SEATS, 1));
        var held = heldAllocation(42);
        atGain1.getValue().completeExceptionally(new java.util.concurrent.TimeoutException("listing timed out"));
        atGain2.getValue().complete(new Message.AllocationList(List.of(held), false));
        atGain3.getValue().complete(new Message.AllocationList(List.of(), false));
        licenses.expectNoMessage(Duration.ofMillis(300));
        var again = links[0].next();
        assertInstanceOf(Message.ListAllocations.class, again.getKey(), "backend 1 listed again");
        again.getValue().complete(new Message.AllocationList(List.of(held), false));
        Object told = licenses.receiveMessage(Duration.ofSeconds(10));
        assertEquals(new Told(SEATS, new TmrLicense.Rebuild(3, List.of(List.of(held), List.of(held), List.of()), 2)),
                told, "each complete listing, the empty one too");
        expectTold(licenses, SEATS, new TmrLicense.Resync(1, List.of(held), 3));
    }

    /**
     * Past the reconcile timeout the node serves while the gain's listings are still out (three listings of 100 000
     * allocations on a starved machine): a handle the journal lacks may still be rebuilt from them, so its RESUME is
     * "ask again", not 106, which would make the client give it up.
     */
    @Test
    void aHandleUnknownWhileTheGainsListingsAreStillOutIsNotAnsweredUnknown() throws Exception {
        Clocked c = clocked(false);
        gain(c);
        for (HeldLink link : c.links()) {
            assertInstanceOf(Message.ListAllocations.class, link.next().getKey(), "listed at the gain");
        }
        io.opentmr.testing.MutableClock clock = c.clock();
        NodeStatus status = c.status();
        ActorRef<VirtualContainer.Command> container = c.container();
        clock.advance(Duration.ofSeconds(11));
        io.opentmr.testing.Await.until("the node serves past the reconcile timeout", status::reconciled);
        TestProbe<TmrLicense.Reply> client = kit.createTestProbe();
        container.tell(new VirtualContainer.ToHandle(42, new TmrLicense.Resume(42, Bytes.of(new byte[16]), 1,
                client.getRef()), client.getRef()));
        assertInstanceOf(TmrLicense.NotServing.class, client.receiveMessage(Duration.ofSeconds(10)));
        // The same for the handles of a RESUME_MANY: no license, and "not now" (the session's 100), not 106.
        TestProbe<VirtualContainer.Routes> routes = kit.createTestProbe();
        container.tell(new VirtualContainer.RouteHandles(List.of(42L, 43L), routes.getRef()));
        VirtualContainer.Routes routed = routes.receiveMessage(Duration.ofSeconds(10));
        assertEquals(java.util.Arrays.asList(null, null), routed.licenses());
        assertInstanceOf(TmrLicense.NotServing.class, routed.refusals().get(0));
        assertInstanceOf(TmrLicense.NotServing.class, routed.refusals().get(1));
    }

    @Test
    void aListingOfManyPagesIsJoinedFromTheHandleIdEachPageEndedWith() throws Exception {
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink link = new HeldLink(true);
        peers.linkUp(1, link);
        var listing = BackendListing.list(peers, 1, Runnable::run).toCompletableFuture();
        List<java.util.Map.Entry<Message, CompletableFuture<Message>>> ranges = new ArrayList<>();
        for (int k = 0; k < BackendListing.CURSORS; k++) {
            ranges.add(link.next());
            assertEquals(new Message.ListAllocations(BackendListing.rangeStart(k), BackendListing.PAGE, true),
                    ranges.get(k).getKey(), "the ranges of the handle id space are listed at once");
        }
        assertEquals(2, BackendListing.CURSORS, "written for two ranges");
        long start1 = BackendListing.rangeStart(1);
        // The first range ends where an id of the next one shows: -7 (unsigned, above every drawn id) is not its own.
        ranges.get(0).getValue().complete(new Message.AllocationList(List.of(heldAllocation(5), heldAllocation(-7)),
                true, true));
        // The second range, page by page from the handle id each page ended with, up to the highest unsigned id; an
        // id not above the one asked after is not of the page.
        ranges.get(1).getValue().complete(new Message.AllocationList(List.of(heldAllocation(start1),
                heldAllocation(start1 + 1), heldAllocation(Long.MAX_VALUE)), true, true));
        var second = link.next();
        assertEquals(new Message.ListAllocations(Long.MAX_VALUE, BackendListing.PAGE, true), second.getKey(),
                "the next page after the last handle id, unsigned");
        var other = new io.opentmr.protocol.Allocation(-3, UNITS, AccessMode.USERLIMIT, 0,
                new io.opentmr.protocol.HandleOwner("ws-2", "bo", 2, 2), Bytes.of(new byte[32]), 1);
        second.getValue().complete(new Message.AllocationList(List.of(heldAllocation(-7), other), false, true));
        assertEquals(Map.of(SEATS, List.of(heldAllocation(5), heldAllocation(start1 + 1),
                        heldAllocation(Long.MAX_VALUE), heldAllocation(-7)), UNITS, List.of(other)),
                listing.get(10, java.util.concurrent.TimeUnit.SECONDS), "every range once, in unsigned order");
        assertTrue(link.asked.isEmpty(), "no page after the last, nor past a range's end: " + link.asked);
        assertTrue(peers.namesRequests(1), "a backend that listed requests is sent them with ALLOCATE");

        var failing = BackendListing.list(peers, 1, Runnable::run).toCompletableFuture();
        link.next().getValue().complete(new Message.Error(CmError.INVALID_HANDLE.code(), "no"));
        assertTrue(failing.isCompletedExceptionally(), "an answer that is no page fails the listing at once, "
                + "while the other ranges' pages are still out");
        for (int k = 1; k < BackendListing.CURSORS; k++) {
            link.next().getValue().complete(new Message.AllocationList(List.of(heldAllocation(-1)), true, true));
        }
        assertTrue(link.asked.isEmpty(), "a failed listing asks for no further page: " + link.asked);
    }

    @Test
    void aBackendThatRefusesTheRequestsOfAllocationsIsListedAndAllocatedWithoutThemFromThenOn() throws Exception {
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink link = new HeldLink();
        peers.linkUp(1, link);
        assertFalse(peers.namesRequests(1), "not before a listing showed the backend keeps them");

        var refused = BackendListing.list(peers, 1, Runnable::run).toCompletableFuture();
        var asked = link.next();
        assertTrue(((Message.ListAllocations) asked.getKey()).withRequests());
        // An older backend: the trailing byte breaks its layout (ERROR 105, and it closes the connection).
        asked.getValue().completeExceptionally(new CmFailure(CmError.INVALID_PARAMETER, "1 unexpected trailing bytes"));
        assertTrue(refused.isCompletedExceptionally());

        var again = BackendListing.list(peers, 1, Runnable::run).toCompletableFuture();
        var plain = link.next();
        assertEquals(new Message.ListAllocations(0, BackendListing.PAGE), plain.getKey(), "asked without them");
        plain.getValue().complete(new Message.AllocationList(List.of(heldAllocation(5)), false));
        assertEquals(Map.of(SEATS, List.of(heldAllocation(5))), again.get(10, java.util.concurrent.TimeUnit.SECONDS));
        assertFalse(peers.namesRequests(1), "its ALLOCATEs name no request");
    }

    @Test
    void aLeaseLostAndRegainedUnderANewEpochBetweenTwoChecksIsANewGain() {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        NodeStatus status = new NodeStatus(peers);
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, peers, status,
                standIns(licenses.getRef())));
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        grantLease(peers, 3, "node-a");
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(1));
        container.tell(new VirtualContainer.SeatsChanged(SEATS, 0, 0, -1, 3, 1));
        TestProbe<VirtualContainer.Licenses> known = kit.createTestProbe();
        container.tell(new VirtualContainer.GetLicenses(known.getRef()));
        known.receiveMessage();
        assertTrue(status.reconciled());

        // Between two checks the grants ran out, another node held them, and this node took them back: epoch 5.
        grantLease(peers, 5, "node-a");
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(2));
        container.tell(new VirtualContainer.GetLicenses(known.getRef()));
        known.receiveMessage();
        assertFalse(status.reconciled(), "not serving until the licenses re-synced in the new epoch");
    }

    @Test
    void listShowsTheUnitsTheLicenseDecidedNotTheLastInventorys() {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, peers, new NodeStatus(peers),
                standIns(licenses.getRef())));
        Quorums.Verdict inventoried = new Quorums.Verdict(UNITS, bits(0, 1, 2), QuorumsTest.product(UNITS, 10, 50),
                true, 50);
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), inventoried)));
        expectTold(licenses, UNITS, new TmrLicense.ResyncAll(0));
        TestProbe<VirtualContainer.Listed> listed = kit.createTestProbe();

        container.tell(new VirtualContainer.SeatsChanged(UNITS, 0, 0, -1, 3, 0));
        container.tell(new VirtualContainer.ListContainers(listed.getRef()));
        assertEquals(50, listed.receiveMessage().container().products().get(0).units(),
                "the license knows no value yet: the inventories'");

        // Five units spent: the license decided 45 before the next inventory.
        container.tell(new VirtualContainer.SeatsChanged(UNITS, 0, 1, 45, 3, 0));
        container.tell(new VirtualContainer.ListContainers(listed.getRef()));
        assertEquals(45, listed.receiveMessage().container().products().get(0).units());
    }

    /** Three backends linked to {@code peers}, each answering only when its test completes its requests. */
    /**
     * A container whose license SEATS the three backends count, spawned over {@code peers}, which then gain the lease at
     * epoch 3: the license is told to re-sync every backend at the start and again at the gain (its listings are then
     * asked for on the linked backends).
     */
    /**
     * A take-over with backends that answer digests: they agree with the license's seats (handles 5 and 7) except that
     * backends 1 and 2 also hold handle X (the journal lacks it). The listings are of X's range only, from every
     * backend, and the licenses hear which ranges they hold and the digests their seats were compared by.
     */
    @Test
    void aTakeOverComparesDigestsAndListsOnlyTheRangesWhereABackendDiffers() throws Exception {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink[] links = digestLinks(peers);
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, peers, new NodeStatus(peers),
                standIns(licenses.getRef(), 5, 7)));
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(0));
        grantLease(peers, 3, "node-a");
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(1));
        container.tell(new VirtualContainer.NeedsResync(SEATS, 2));

        int ranges = VirtualContainer.DIGEST_RANGES;
        AllocationDigests seats = new AllocationDigests(ranges);
        seats.add(5, SEATS);
        seats.add(7, SEATS);
        long x = Long.MAX_VALUE / 2 + 42;
        AllocationDigests withX = new AllocationDigests(ranges);
        withX.add(5, SEATS);
        withX.add(7, SEATS);
        withX.add(x, SEATS);
        for (int b = 0; b < links.length; b++) {
            var asked = links[b].next();
            assertEquals(new Message.ListDigests(ranges), asked.getKey(), "digests first");
            asked.getValue().complete(new Message.DigestList(b < 2 ? withX : seats));
        }
        int range = AllocationDigests.rangeOf(x, ranges);
        var held = heldAllocation(x);
        for (int b = 0; b < links.length; b++) {
            var listing = links[b].next();
            assertEquals(new Message.ListAllocations(AllocationDigests.rangeStart(range, ranges), b < 2 ? 9 : 8, true),
                    listing.getKey(), "only the range of handle X, in a page about its count");
            listing.getValue().complete(new Message.AllocationList(b < 2 ? List.of(held) : List.of(), false, true));
        }
        BitSet listedRanges = new BitSet();
        listedRanges.set(range);
        TmrLicense.Coverage coverage = new TmrLicense.Coverage(listedRanges, seats);
        Object told = licenses.fishForMessage(Duration.ofSeconds(10), report -> report instanceof Told t
                && t.command() instanceof TmrLicense.Rebuild ? FishingOutcomes.complete()
                : FishingOutcomes.continueAndIgnore()).get(0);
        assertEquals(new Told(SEATS, new TmrLicense.Rebuild(3, List.of(List.of(held), List.of(held), List.of()), 2,
                List.of(coverage, coverage, coverage))), told);
        expectTold(licenses, SEATS, new TmrLicense.Resync(2, List.of(), 3, coverage));
        for (HeldLink link : links) {
            assertEquals(0, link.asked.size(), "nothing listed whole");
        }
    }

    /**
     * More ranges differing than {@link VirtualContainer#MAX_DIFFERING_RANGES} (a backend that missed much): every
     * backend asked for digests is listed whole, and the licenses hear complete listings.
     */
    @Test
    void aTakeOverWithManyRangesDifferingListsTheBackendsWhole() throws Exception {
        Serial serial = nextSerial();
        PeerGroup peers = new PeerGroup(3, CLOCK, Duration.ofSeconds(30));
        HeldLink[] links = digestLinks(peers);
        TestProbe<Object> licenses = kit.createTestProbe();
        gainingTheLease(serial, peers, licenses);
        int ranges = VirtualContainer.DIGEST_RANGES;
        AllocationDigests many = new AllocationDigests(ranges);
        for (int k = 0; k <= VirtualContainer.MAX_DIFFERING_RANGES; k++) {
            many.add(AllocationDigests.rangeStart(k, ranges) + 1, SEATS);
        }
        for (int b = 0; b < links.length; b++) {
            var asked = links[b].next();
            assertEquals(new Message.ListDigests(ranges), asked.getKey());
            asked.getValue().complete(new Message.DigestList(b == 0 ? many : new AllocationDigests(ranges)));
        }
        var held = heldAllocation(42);
        for (int b = 0; b < links.length; b++) {
            var listing = links[b].next();
            assertEquals(new Message.ListAllocations(0, BackendListing.PAGE, true), listing.getKey(), "listed whole");
            listing.getValue().complete(new Message.AllocationList(b == 0 ? List.of(held) : List.of(), false, true));
        }
        Object told = licenses.fishForMessage(Duration.ofSeconds(10), report -> report instanceof Told t
                && t.command() instanceof TmrLicense.Rebuild ? FishingOutcomes.complete()
                : FishingOutcomes.continueAndIgnore()).get(0);
        assertEquals(new Told(SEATS, new TmrLicense.Rebuild(3, List.of(List.of(held), List.of(), List.of()), 2)), told);
    }

    /**
     * Past the reconcile timeout a backend whose digests are still out, or whose ranges are not chosen yet, is listed
     * whole (the node serves, its tables change), and the gain's listings still make the rebuild.
     */
    @Test
    void pastTheReconcileTimeoutTheBackendsStillAskedForDigestsAreListedWhole() throws Exception {
        Clocked c = clocked(true);
        gain(c);
        HeldLink[] links = c.links();
        TestProbe<Object> licenses = c.licenses();
        int ranges = VirtualContainer.DIGEST_RANGES;
        var first = links[0].next();
        var second = links[1].next();
        links[2].next().getValue().complete(new Message.DigestList(new AllocationDigests(ranges)));
        first.getValue().complete(new Message.DigestList(new AllocationDigests(ranges)));
        // Backend 2's digests do not come: no range is chosen, and past the timeout all three are listed whole.
        c.clock().advance(Duration.ofSeconds(11));
        io.opentmr.testing.Await.until("the node serves past the reconcile timeout", c.status()::reconciled);
        var held = heldAllocation(42);
        for (int b = 0; b < links.length; b++) {
            var listing = links[b].next();
            assertEquals(new Message.ListAllocations(0, BackendListing.PAGE, true), listing.getKey(),
                    "backend " + (b + 1) + " listed whole");
            listing.getValue().complete(new Message.AllocationList(b < 2 ? List.of(held) : List.of(), false, true));
        }
        second.getValue().complete(new Message.DigestList(new AllocationDigests(ranges)));
        Object told = licenses.fishForMessage(Duration.ofSeconds(10), report -> report instanceof Told t
                && t.command() instanceof TmrLicense.Rebuild ? FishingOutcomes.complete()
                : FishingOutcomes.continueAndIgnore()).get(0);
        assertEquals(new Told(SEATS, new TmrLicense.Rebuild(3, List.of(List.of(held), List.of(held), List.of()), 2)),
                told, "rebuilt from the whole listings taken while the node served");
    }

    /**
     * Past the reconcile timeout, listings by ranges already taken stay (the licenses check their tables against
     * them), while the gain waits for a backend listed whole (not known to answer digests).
     */
    @Test
    void pastTheReconcileTimeoutAListingByRangesAlreadyTakenStays() throws Exception {
        synchronized (containerLog) {
            containerLog.list.clear();
        }
        Clocked c = clocked(true);
        c.peers().digestsAnswered(2, false);
        gain(c);
        HeldLink[] links = c.links();
        TestProbe<Object> licenses = c.licenses();
        int ranges = VirtualContainer.DIGEST_RANGES;
        var whole = links[2].next();
        assertEquals(new Message.ListAllocations(0, BackendListing.PAGE, true), whole.getKey(), "backend 3 whole");
        for (int b = 0; b < 2; b++) {
            var asked = links[b].next();
            assertEquals(new Message.ListDigests(ranges), asked.getKey());
            asked.getValue().complete(new Message.DigestList(new AllocationDigests(ranges)));
        }
        // All agree with the node (no seats): no range is listed, and the two listings by ranges are taken at once
        // (the container tells itself they are, when it chose the ranges: one round trip after that they are in).
        io.opentmr.testing.Await.until("the ranges chosen", () -> containerLogged("The backends' digests differ"));
        TestProbe<VirtualContainer.Licenses> known = kit.createTestProbe();
        c.container().tell(new VirtualContainer.GetLicenses(known.getRef()));
        known.receiveMessage();
        c.clock().advance(Duration.ofSeconds(11));
        io.opentmr.testing.Await.until("the node serves past the reconcile timeout", c.status()::reconciled);
        whole.getValue().complete(new Message.AllocationList(List.of(), false, true));
        Object told = licenses.fishForMessage(Duration.ofSeconds(10), report -> report instanceof Told t
                && t.command() instanceof TmrLicense.Rebuild ? FishingOutcomes.complete()
                : FishingOutcomes.continueAndIgnore()).get(0);
        TmrLicense.Coverage none = new TmrLicense.Coverage(new BitSet(), new AllocationDigests(ranges));
        assertEquals(new Told(SEATS, new TmrLicense.Rebuild(3, List.of(List.of(), List.of(), List.of()), 2,
                java.util.Arrays.asList(none, none, null))), told);
        for (int b = 0; b < 2; b++) {
            assertEquals(0, links[b].asked.size(), "backend " + (b + 1) + " not listed again");
        }
    }

    /** The container's log lines (its class's logger). */
    /**
     * Whether the container logged a line starting with {@code prefix}. Read under the appender's lock: its list is
     * appended to by the actors' threads while the test reads it.
     */
    private static boolean containerLogged(String prefix) {
        synchronized (containerLog) {
            return containerLog.list.stream().anyMatch(line -> line.getFormattedMessage().startsWith(prefix));
        }
    }

    private static final ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> containerLog =
            new ch.qos.logback.core.read.ListAppender<>();

    static {
        containerLog.start();
        ((ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger(VirtualContainer.class))
                .addAppender(containerLog);
    }

    /** A container on a clock the test moves (reconcile timeout 10 s), over three held links. */
    private record Clocked(io.opentmr.testing.MutableClock clock, PeerGroup peers, HeldLink[] links, NodeStatus status,
                           TestProbe<Object> licenses, ActorRef<VirtualContainer.Command> container) {
    }

    /** {@code digests}: links of backends known to answer LIST_DIGESTS. */
    private Clocked clocked(boolean digests) {
        io.opentmr.testing.MutableClock clock = new io.opentmr.testing.MutableClock(Instant.ofEpochMilli(1_000_000));
        PeerGroup peers = new PeerGroup(3, clock, Duration.ofSeconds(30));
        HeldLink[] links = digests ? digestLinks(peers) : heldLinks(peers);
        NodeStatus status = new NodeStatus(peers);
        TestProbe<Object> licenses = kit.createTestProbe();
        ActorRef<VirtualContainer.Command> container = kit.spawn(VirtualContainer.create(nextSerial(), peers, status,
                clock, Duration.ofMillis(100), Duration.ofSeconds(10), standIns(licenses.getRef())));
        return new Clocked(clock, peers, links, status, licenses, container);
    }

    /** The container's license is spawned and recovers, then the lease comes under epoch 3 (backends 1 and 2). */
    private static void gain(Clocked c) {
        c.container().tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        expectTold(c.licenses(), SEATS, new TmrLicense.ResyncAll(0));
        for (int b = 0; b < 2; b++) {
            c.peers().granted(b, new LeaseGrant(LeaseGrant.ACTIVE_LEASE, "node-a", 3, c.clock().millis(), 60_000,
                    new Serial(129, b + 1), Bytes.of(new byte[64])), c.peers().now());
        }
        expectTold(c.licenses(), SEATS, new TmrLicense.ResyncAll(1));
    }

    private ActorRef<VirtualContainer.Command> gainingTheLease(Serial serial, PeerGroup peers,
                                                               TestProbe<Object> licenses) {
        ActorRef<VirtualContainer.Command> container = kit.spawn(container(serial, peers, new NodeStatus(peers),
                standIns(licenses.getRef())));
        container.tell(new VirtualContainer.Counted(view(7, bits(0, 1, 2), counted(SEATS, 0, 1, 2))));
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(0));
        grantLease(peers, 3, "node-a");
        expectTold(licenses, SEATS, new TmrLicense.ResyncAll(1));
        return container;
    }

    /** Links of backends that answered LIST_DIGESTS before (a standby's rehearsal): a take-over asks them first. */
    private static HeldLink[] digestLinks(PeerGroup peers) {
        HeldLink[] links = heldLinks(peers);
        for (int b = 0; b < links.length; b++) {
            links[b].answersDigests = true;
            peers.digestsAnswered(b, true);
        }
        return links;
    }

    private static HeldLink[] heldLinks(PeerGroup peers) {
        HeldLink[] links = {new HeldLink(), new HeldLink(), new HeldLink()};
        for (int b = 0; b < links.length; b++) {
            peers.linkUp(b, links[b]);
        }
        return links;
    }

}
