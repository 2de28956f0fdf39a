package io.opentmr.tmr.license;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.AllocationDigests;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.tmr.backend.PeerGroup;
import java.nio.ByteBuffer;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.persistence.testkit.PersistenceTestKitPlugin;
import org.apache.pekko.persistence.testkit.PersistenceTestKitSnapshotPlugin;
import org.apache.pekko.persistence.testkit.javadsl.PersistenceTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A license whose journal write fails restarts from its journal (supervised) instead of stopping: its
 * clients are served again, and the allocations of the access whose grant was not journaled are freed on
 * the backends by the re-sync that follows.
 */
@Timeout(60)
class TmrLicenseRestartTest {

    private static final Duration REPLY = Duration.ofSeconds(20);
    private static final long SESSION = 1;
    private static ActorTestKit kit;
    private static PersistenceTestKit journal;

    @BeforeAll
    static void startKit() {
        kit = persistenceTestKit("tmr-license-restart");
        journal = PersistenceTestKit.create(kit.system());
    }

    /** An actor test kit whose journal and snapshot store are the persistence testkit's. */
    static ActorTestKit persistenceTestKit(String name) {
        Config config = PersistenceTestKitPlugin.getInstance().config()
                .withFallback(PersistenceTestKitSnapshotPlugin.getInstance().config())
                .withFallback(ConfigFactory.load());
        return ActorTestKit.create(name, config);
    }

    @AfterAll
    static void stopKit() {
        kit.shutdownTestKit();
    }

    /** The parent's part: what the license asked for. */
    static final class Parent implements TmrLicense.Parent {
        final AtomicInteger recoveries = new AtomicInteger();
        final ConcurrentLinkedQueue<Integer> resyncs = new ConcurrentLinkedQueue<>();
        final ConcurrentLinkedQueue<Long> openedIds = new ConcurrentLinkedQueue<>();
        volatile int usable;
        volatile int handles;

        @Override
        public void seatsChanged(LicenseKey key, long inUse, int handlesNow, long units, int usableNow, long round) {
            usable = usableNow;
            handles = handlesNow;
        }

        @Override
        public void opened(LicenseKey key, Seat seat) {
            openedIds.add(seat.handleId());
        }

        @Override
        public void closed(LicenseKey key, long handleId) {
        }

        @Override
        public void needsResync(LicenseKey key, int backend) {
            resyncs.add(backend);
        }

        @Override
        public void recovered(LicenseKey key, ActorRef<TmrLicense.Command> license) {
            recoveries.incrementAndGet();
        }

        final ConcurrentLinkedQueue<Integer> wholeListings = new ConcurrentLinkedQueue<>();

        @Override
        public void listWhole(LicenseKey key, int backend) {
            wholeListings.add(backend);
        }
    }

    @Test
    void aFailedJournalWriteRestartsTheLicenseAndItsUnjournaledSeatIsFreed() {
        LicenseKey key = new LicenseKey(6_000_010, 42, 901);
        ProductInfo product = new ProductInfo(key.firmCode(), key.productCode(), 0xFF, "restart", 5, 0, key.tmrId(),
                false, 0, 0, 0, 0, 0, 0);
        AtomicLong sequence = new AtomicLong();
        PeerGroup peers = new PeerGroup(3, Clock.systemUTC(), Duration.ofMillis(500));
        FakeBackend[] fakes = new FakeBackend[3];
        for (int i = 0; i < 3; i++) {
            fakes[i] = new FakeBackend(i, key, 5, 0, sequence);
            peers.linkUp(i, fakes[i]);
            Message granted = fakes[i].now(new Message.LeaseAcquire(LeaseGrant.ACTIVE_LEASE, "restart-node",
                    peers.targetEpoch(), Duration.ofMinutes(10).toMillis()));
            peers.granted(i, ((Message.LeaseGranted) granted).grant(), peers.now());
        }
        Parent parent = new Parent();
        ActorRef<TmrLicense.Command> license = kit.spawn(TmrLicense.create(key, peers, parent, Clock.systemUTC(),
                new Random(7), id -> ByteBuffer.allocate(16).putLong(id).array(),
                new TmrLicense.Settings(Duration.ofHours(1), 100)));
        TestProbe<TmrLicense.Reply> replies = kit.createTestProbe();
        BitSet all = new BitSet();
        all.set(0, 3);

        awaitRecoveries(parent, 1);
        syncAll(license, fakes, parent, all, product, key);
        TmrLicense.Client client = new TmrLicense.Client("10.0.0.1", "host", "user", 1, SESSION);
        license.tell(new TmrLicense.Access(0, AccessMode.USERLIMIT, client, 1, replies.getRef()));
        long kept = assertInstanceOf(TmrLicense.Granted.class, pumpUntilAnswer(fakes, replies)).handleId();

        // The next grant's journal write fails: the license restarts from its journal instead of stopping.
        journal.failNextPersisted(TmrLicense.persistenceId(key).id());
        license.tell(new TmrLicense.Access(0, AccessMode.USERLIMIT, client, 2, replies.getRef()));
        long deadline = System.nanoTime() + REPLY.toNanos();
        while (parent.recoveries.get() < 2) {
            assertTrue(System.nanoTime() < deadline, "the license did not restart");
            pump(fakes);
        }
        replies.expectNoMessage(Duration.ofMillis(200));

        // Told the copies again (as the virtual container does on recovery), it re-syncs every backend.
        syncAll(license, fakes, parent, all, product, key);
        for (FakeBackend fake : fakes) {
            assertEquals(Set.of(kept), fake.held(), fake.backendName() + " after the re-sync");
        }
        // Served again: the journaled handle is there, and the client's retry of the lost request is granted.
        license.tell(new TmrLicense.Release(kept, SESSION, replies.getRef()));
        assertEquals(TmrLicense.Released.INSTANCE, pumpUntilAnswer(fakes, replies));
        license.tell(new TmrLicense.Access(0, AccessMode.USERLIMIT, client, 2, replies.getRef()));
        assertInstanceOf(TmrLicense.Granted.class, pumpUntilAnswer(fakes, replies));
        kit.stop(license, REPLY);
    }

    @Test
    void aSeatJournaledBeforeItsAllocationsWereDecidedIsReconciledAfterACrash() {
        Synced synced = synced(902, "crash", 5, 5, 5, 5);
        LicenseKey key = synced.key();
        ProductInfo product = synced.product();
        PeerGroup peers = synced.peers();
        FakeBackend[] fakes = synced.fakes();
        BitSet all = synced.all();
        ActorRef<TmrLicense.Command> license = synced.license();

        // Two backends carry out ALLOCATE but their answers are held back; the third is unreachable.
        fakes[2].down();
        TestProbe<TmrLicense.Reply> replies = kit.createTestProbe();
        TmrLicense.Client client = new TmrLicense.Client("10.0.0.1", "host", "user", 1, SESSION);
        license.tell(new TmrLicense.Access(0, AccessMode.USERLIMIT, client, 5, replies.getRef()));
        // The seat is journaled while the backends allocate; then the node crashes, before any answer came.
        TmrLicenseEvent.SeatGranted written = journal.expectNextPersistedClass(TmrLicense.persistenceId(key).id(),
                TmrLicenseEvent.SeatGranted.class);
        long until = System.nanoTime() + REPLY.toNanos();
        while (fakes[0].held().isEmpty() || fakes[1].held().isEmpty()) {
            assertTrue(System.nanoTime() < until, "the ALLOCATEs did not arrive");
            fakes[0].deliverRequest();
            fakes[1].deliverRequest();
        }
        kit.stop(license, REPLY);
        replies.expectNoMessage(Duration.ofMillis(100));
        fakes[2].up();

        // The restarted license finds the seat in its journal and reconciles every backend with it.
        Parent after = new Parent();
        ActorRef<TmrLicense.Command> restarted = spawn(key, peers, after);
        awaitRecoveries(after, 1);
        syncAll(restarted, fakes, after, all, product, key);
        long handle = written.seat().handleId();
        for (FakeBackend fake : fakes) {
            assertEquals(Set.of(handle), fake.held(), fake.backendName() + " after the reconciliation");
        }
        // The client, which never heard, sends its ACCESS again and gets that handle, not a second seat.
        restarted.tell(new TmrLicense.Access(0, AccessMode.USERLIMIT, client, 5, replies.getRef()));
        assertEquals(handle, assertInstanceOf(TmrLicense.Granted.class, pumpUntilAnswer(fakes, replies)).handleId());
        kit.stop(restarted, REPLY);
    }

    @Test
    void aReSyncThatABackendKeepsRefusingIsRetriedWithGrowingWaitsNotAtTheListingsPace() {
        // Backend 3's copy has room for no seat: it refuses every ALLOCATE (its copy disagrees, say).
        Synced synced = synced(903, "refusing", 5, 5, 5, 0);
        PeerGroup peers = synced.peers();
        FakeBackend[] fakes = synced.fakes();
        Parent parent = synced.parent();
        ActorRef<TmrLicense.Command> license = synced.license();

        TestProbe<TmrLicense.Reply> replies = kit.createTestProbe();
        TmrLicense.Client client = new TmrLicense.Client("10.0.0.1", "host", "user", 1, SESSION);
        license.tell(new TmrLicense.Access(0, AccessMode.USERLIMIT, client, 1, replies.getRef()));
        assertInstanceOf(TmrLicense.Granted.class, pumpUntilAnswer(fakes, replies), "granted by backends 1 and 2");

        // Backend 3 missed the seat: it is re-synced, refuses the seat again, and again. Each re-sync the license
        // asks for is run at once (as the container does); the times of the requests are what counts.
        List<Long> asked = new ArrayList<>();
        long deadline = System.nanoTime() + REPLY.toNanos();
        while (asked.size() < 4) {
            assertTrue(System.nanoTime() < deadline, "re-syncs asked for: " + asked.size());
            pump(fakes);
            Integer backend = parent.resyncs.poll();
            if (backend == null) {
                continue;
            }
            assertEquals(2, backend, "only backend 3 is re-synced");
            asked.add(System.nanoTime());
            Message.AllocationList page = (Message.AllocationList) fakes[2].now(new Message.ListAllocations(0, 1000));
            license.tell(new TmrLicense.Resync(2, page.allocations(), peers.epoch()));
        }
        // Timers never fire early: 200 ms after the first failure, 400 ms after the second, 800 ms after the third.
        long first = asked.get(1) - asked.get(0);
        long second = asked.get(2) - asked.get(1);
        long third = asked.get(3) - asked.get(2);
        assertTrue(first >= Duration.ofMillis(CopySync.FIRST_RETRY_MILLIS).toNanos(), "first wait " + first + " ns");
        assertTrue(second >= Duration.ofMillis(2 * CopySync.FIRST_RETRY_MILLIS).toNanos(), "second wait " + second);
        assertTrue(third >= Duration.ofMillis(4 * CopySync.FIRST_RETRY_MILLIS).toNanos(), "third wait " + third);
        assertEquals(2, parent.usable, "backends 1 and 2 still serve");
        kit.stop(license, REPLY);
    }

    @Test
    void aHandleTwoBackendsHoldThatTheJournalLacksIsRebuiltNotFreedButOneReleasedLatelyIsFreed() {
        Synced synced = synced(904, "rebuild", 5, 5, 5, 5);
        LicenseKey key = synced.key();
        ProductInfo product = synced.product();
        PeerGroup peers = synced.peers();
        FakeBackend[] fakes = synced.fakes();
        BitSet all = synced.all();
        ActorRef<TmrLicense.Command> license = synced.license();
        TestProbe<TmrLicense.Reply> replies = kit.createTestProbe();
        TmrLicense.Client client = new TmrLicense.Client("10.0.0.1", "host", "user", 1, SESSION);
        license.tell(new TmrLicense.Access(0, AccessMode.USERLIMIT, client, 1, replies.getRef()));
        long handle = assertInstanceOf(TmrLicense.Granted.class, pumpUntilAnswer(fakes, replies)).handleId();
        kit.stop(license, REPLY);

        // The node that granted it acknowledged it with its own log alone and died: the new active's journal lacks
        // it, while every backend holds it (backend 3 loses it, as if its ALLOCATE never arrived).
        journal.clearByPersistenceId(TmrLicense.persistenceId(key).id());
        List<List<Allocation>> listings = new ArrayList<>();
        for (int b = 0; b < 2; b++) {
            listings.add(((Message.AllocationList) fakes[b].now(new Message.ListAllocations(0, 1000))).allocations());
        }
        fakes[2].now(new Message.Free(peers.certificate(), handle, key, System.currentTimeMillis() + 10_000));
        assertEquals(Set.of(), fakes[2].held());
        Parent after = new Parent();
        ActorRef<TmrLicense.Command> taking = spawn(key, peers, after);
        awaitRecoveries(after, 1);
        taking.tell(new TmrLicense.Rebuild(peers.epoch(), listings, 2));
        syncAll(taking, fakes, after, all, product, key);
        for (FakeBackend fake : fakes) {
            assertEquals(Set.of(handle), fake.held(), fake.backendName() + ": rebuilt, not freed; backend 3 again");
        }
        // Its client goes on with it.
        taking.tell(new TmrLicense.Release(handle, SESSION, replies.getRef()));
        assertEquals(TmrLicense.Released.INSTANCE, pumpUntilAnswer(fakes, replies));

        // A listing taken before that release shows it on two backends: the journal knows it ended, it stays freed.
        taking.tell(new TmrLicense.Rebuild(peers.epoch(), listings, 2));
        taking.tell(new TmrLicense.Release(handle, SESSION, replies.getRef()));
        pumpUntilAnswer(fakes, replies);
        assertEquals(List.of(handle), List.copyOf(after.openedIds), "rebuilt once, not again after its release");
        for (FakeBackend fake : fakes) {
            assertEquals(Set.of(), fake.held(), fake.backendName() + " after the release");
        }
        kit.stop(taking, REPLY);
    }

    @Test
    void aRebuildFromTheListingsOfAnotherEpochIsDropped() {
        Synced synced = synced(906, "rebuild-stale", 5, 5, 5, 5);
        LicenseKey key = synced.key();
        ProductInfo product = synced.product();
        PeerGroup peers = synced.peers();
        FakeBackend[] fakes = synced.fakes();
        BitSet all = synced.all();
        ActorRef<TmrLicense.Command> license = synced.license();
        TestProbe<TmrLicense.Reply> replies = kit.createTestProbe();
        TmrLicense.Client client = new TmrLicense.Client("10.0.0.1", "host", "user", 1, SESSION);
        license.tell(new TmrLicense.Access(0, AccessMode.USERLIMIT, client, 1, replies.getRef()));
        long handle = assertInstanceOf(TmrLicense.Granted.class, pumpUntilAnswer(fakes, replies)).handleId();
        kit.stop(license, REPLY);
        journal.clearByPersistenceId(TmrLicense.persistenceId(key).id());
        List<List<Allocation>> listings = new ArrayList<>();
        for (int b = 0; b < 2; b++) {
            listings.add(((Message.AllocationList) fakes[b].now(new Message.ListAllocations(0, 1000))).allocations());
        }

        // Listed at the gain of an earlier epoch (the license was still recovering when it was told): another node
        // held the lease since and may have ended the handle; the listings of this epoch's gain decide.
        Parent after = new Parent();
        ActorRef<TmrLicense.Command> taking = spawn(key, peers, after);
        awaitRecoveries(after, 1);
        taking.tell(new TmrLicense.Rebuild(peers.epoch() - 1, listings, 2));
        syncAll(taking, fakes, after, all, product, key);
        assertEquals(List.of(), List.copyOf(after.openedIds), "rebuilt from an earlier epoch's listings");
        for (FakeBackend fake : fakes) {
            assertEquals(Set.of(), fake.held(), fake.backendName() + ": freed, not rebuilt");
        }
        kit.stop(taking, REPLY);
    }

    @Test
    void aRebuildNeverTakesTheLicensePastItsQuantity() {
        Synced synced = synced(905, "rebuild-full", 1, 1, 1, 1);
        LicenseKey key = synced.key();
        ProductInfo product = synced.product();
        PeerGroup peers = synced.peers();
        FakeBackend[] fakes = synced.fakes();
        BitSet all = synced.all();
        ActorRef<TmrLicense.Command> license = synced.license();
        TestProbe<TmrLicense.Reply> replies = kit.createTestProbe();
        TmrLicense.Client client = new TmrLicense.Client("10.0.0.1", "host", "user", 1, SESSION);
        license.tell(new TmrLicense.Access(0, AccessMode.USERLIMIT, client, 1, replies.getRef()));
        long kept = assertInstanceOf(TmrLicense.Granted.class, pumpUntilAnswer(fakes, replies)).handleId();
        Allocation keptOnBackend = ((Message.AllocationList) fakes[0].now(new Message.ListAllocations(0, 1000)))
                .allocations().get(0);
        kit.stop(license, REPLY);

        // The old active journaled the release of that seat with its own log alone, freed it on the backends, then
        // granted the only seat to another handle, acknowledged with its own log alone, and died. The new active's
        // journal still holds the first seat; two backends hold the second.
        for (FakeBackend fake : fakes) {
            fake.now(new Message.Free(peers.certificate(), kept, key, System.currentTimeMillis() + 10_000));
        }
        Allocation other = new Allocation(kept + 1_000, key, keptOnBackend.accessMode(), keptOnBackend.featureBits(),
                keptOnBackend.owner(), keptOnBackend.tokenDigest(), keptOnBackend.epoch());
        Parent after = new Parent();
        ActorRef<TmrLicense.Command> taking = spawn(key, peers, after);
        awaitRecoveries(after, 1);
        taking.tell(new TmrLicense.Rebuild(peers.epoch(), List.of(List.of(other), List.of(other), List.of()), 3));
        syncAll(taking, fakes, after, all, product, key);
        assertEquals(1, after.handles, "a license of 1 seat counts one handle after the rebuild");
        // The backends decide: the seat they hold is the granted one, the journal's seat none holds was released.
        assertTrue(after.openedIds.contains(other.tmrHandleId()), "the handle the backends hold is rebuilt");
        for (FakeBackend fake : fakes) {
            assertEquals(Set.of(other.tmrHandleId()), fake.held(), fake.backendName() + " holds the granted handle");
        }
        TestProbe<TmrLicense.Reply> resumed = kit.createTestProbe();
        taking.tell(new TmrLicense.Resume(kept, io.opentmr.protocol.Bytes.of(new byte[0]), SESSION, resumed.getRef()));
        assertInstanceOf(TmrLicense.Refused.class, resumed.receiveMessage(), "the released seat stays released");
        kit.stop(taking, REPLY);
    }

    /**
     * A listing carries no lease certificate: a backend that has not granted the new epoch yet (the old active's lease
     * there still runs) may carry out the old active's ALLOCATE after the new active listed it. The old active got the
     * OK of that backend and of one that granted the new epoch after it allocated, and acknowledged the handle; the
     * new active's journal holds the seat. Listed at the gain are backend 2, which fenced the old epoch before that
     * ALLOCATE came (it refused it), and backend 3, listed before the ALLOCATE came; backend 1, which holds the seat,
     * is not listed (inventoried only later, or its listing failed past the reconcile timeout). One listing taken after
     * its backend fenced the old epoch says nothing of a granted seat: it is kept, not dropped.
     */
    @Test
    void aSeatNoListingHoldsIsKeptUnlessTwoListingsWereTakenAfterTheirBackendsFencedTheOldEpoch() {
        Synced synced = synced(907, "unfenced", 5, 5, 5, 5);
        LicenseKey key = synced.key();
        ProductInfo product = synced.product();
        PeerGroup peers = synced.peers();
        FakeBackend[] fakes = synced.fakes();
        BitSet all = synced.all();
        ActorRef<TmrLicense.Command> license = synced.license();
        // Backend 3 listed by the new active before the old active's ALLOCATE reached it.
        List<Allocation> listedOn3 = ((Message.AllocationList) fakes[2].now(new Message.ListAllocations(0, 1000)))
                .allocations();
        TestProbe<TmrLicense.Reply> replies = kit.createTestProbe();
        TmrLicense.Client client = new TmrLicense.Client("10.0.0.1", "host", "user", 1, SESSION);
        license.tell(new TmrLicense.Access(0, AccessMode.USERLIMIT, client, 1, replies.getRef()));
        TmrLicense.Granted granted = assertInstanceOf(TmrLicense.Granted.class, pumpUntilAnswer(fakes, replies));
        long handle = granted.handleId();
        kit.stop(license, REPLY);
        // Backend 2 had fenced the old epoch: it never allocated the seat.
        fakes[1].now(new Message.Free(peers.certificate(), handle, key, System.currentTimeMillis() + 10_000));
        List<Allocation> listedOn2 = ((Message.AllocationList) fakes[1].now(new Message.ListAllocations(0, 1000)))
                .allocations();
        assertEquals(List.of(), listedOn2);
        assertEquals(List.of(), listedOn3);

        Parent after = new Parent();
        ActorRef<TmrLicense.Command> taking = spawn(key, peers, after);
        awaitRecoveries(after, 1);
        // Backend 2 was listed after it fenced the old epoch, backend 3 before: one such listing.
        taking.tell(new TmrLicense.Rebuild(peers.epoch(), List.of(listedOn2, listedOn3), 1));
        syncAll(taking, fakes, after, all, product, key);
        for (FakeBackend fake : fakes) {
            assertEquals(Set.of(handle), fake.held(), fake.backendName() + " holds the acknowledged handle");
        }
        taking.tell(new TmrLicense.Resume(handle, granted.token(), SESSION, replies.getRef()));
        assertInstanceOf(TmrLicense.Resumed.class, replies.receiveMessage(REPLY), "its client resumes it");
        kit.stop(taking, REPLY);
    }

    private static FakeBackend[] fakes(LicenseKey key, PeerGroup peers) {
        return fakes(key, peers, 5, 5, 5);
    }

    /**
     * A take-over by digests: the journal holds seats A and B, which every backend holds; backends 1 and 2 also hold X,
     * which the journal lacks (the old active acknowledged it with its own log alone). The listings hold only X's
     * range: A and B stay as they are, with no write; X is rebuilt and allocated on backend 3.
     */
    @Test
    void aTakeOverByRangesKeepsTheSeatsLeftOutAsTheyAreAndRebuildsWhatTheListedRangeHolds() {
        TwoSeats t = twoSeats(908, "by-ranges");
        int ranges = AllocationDigests.MAX_RANGES;
        Allocation a = ((Message.AllocationList) t.fakes()[0].now(new Message.ListAllocations(0, 1000)))
                .allocations().get(0);
        long x = idOutside(ranges, t.seats());
        Allocation onTwo = new Allocation(x, t.key(), a.accessMode(), a.featureBits(), a.owner(), a.tokenDigest(),
                a.epoch());
        for (int b = 0; b < 2; b++) {
            t.fakes()[b].now(new Message.Allocate(t.peers().certificate(), onTwo,
                    System.currentTimeMillis() + 10_000));
        }
        AllocationDigests share = new AllocationDigests(ranges);
        for (long seat : t.seats()) {
            share.add(seat, t.key());
        }
        BitSet listedRanges = new BitSet();
        listedRanges.set(AllocationDigests.rangeOf(x, ranges));
        TmrLicense.Coverage coverage = new TmrLicense.Coverage(listedRanges, share);

        Parent after = new Parent();
        ActorRef<TmrLicense.Command> taking = spawn(t.key(), t.peers(), after);
        awaitRecoveries(after, 1);
        int[] before = new int[t.fakes().length];
        List<List<Allocation>> listings = new ArrayList<>();
        for (int b = 0; b < t.fakes().length; b++) {
            before[b] = t.fakes()[b].receivedCount();
            listings.add(inRanges(t.fakes()[b], coverage));
        }
        taking.tell(new TmrLicense.Rebuild(t.peers().epoch(), listings, 3, List.of(coverage, coverage, coverage)));
        syncAll(taking, t.fakes(), after, t.all(), t.product(), t.key(), coverage);

        assertTrue(after.openedIds.contains(x), "rebuilt from backends 1 and 2");
        for (int b = 0; b < t.fakes().length; b++) {
            assertEquals(Set.of(t.seats()[0], t.seats()[1], x), t.fakes()[b].held(), t.fakes()[b].backendName());
            for (Message sent : t.fakes()[b].receivedFrom(before[b])) {
                assertFalse(sent instanceof Message.Allocate allocate
                        && allocate.allocation().tmrHandleId() != x, "no write of a seat left out: " + sent);
                assertFalse(sent instanceof Message.Free, "nothing freed: " + sent);
            }
        }
        assertEquals(List.of(), List.copyOf(after.wholeListings));
        kit.stop(taking, REPLY);
    }

    /**
     * A listing by ranges cut by digests the license's table no longer gives in a range left out says nothing the
     * license can trust of that range: the rebuild drops no seat on its strength (B, which backend 3 lost, stays),
     * and the license does not re-sync from it but asks for the backend listed whole.
     */
    @Test
    void aListingByRangesWhoseRangesLeftOutNoLongerMatchTheTableIsNotUsed() {
        TwoSeats t = twoSeats(909, "by-ranges-stale");
        int ranges = AllocationDigests.MAX_RANGES;
        // Digested with seat A only: the range of B, left out, does not match the table.
        AllocationDigests share = new AllocationDigests(ranges);
        share.add(t.seats()[0], t.key());
        TmrLicense.Coverage stale = new TmrLicense.Coverage(new BitSet(), share);
        // Backend 3 lost B: a listing whole would show it; this one says nothing of that range.
        t.fakes()[2].now(new Message.Free(t.peers().certificate(), t.seats()[1], t.key(),
                System.currentTimeMillis() + 10_000));
        Parent after = new Parent();
        ActorRef<TmrLicense.Command> taking = spawn(t.key(), t.peers(), after);
        awaitRecoveries(after, 1);
        int sent = t.fakes()[2].receivedCount();

        // Empty listings, all three taken after their backends fenced the old epoch: with coverages that held, A and B
        // would count as held where left out; these do not hold, so neither is dropped as held nowhere.
        taking.tell(new TmrLicense.Rebuild(t.peers().epoch(), List.of(List.of(), List.of(), List.of()), 3,
                List.of(stale, stale, stale)));
        taking.tell(new TmrLicense.Copies(t.all(), t.product()));
        taking.tell(new TmrLicense.Resync(2, List.of(), t.peers().epoch(), stale));
        long deadline = System.nanoTime() + REPLY.toNanos();
        while (!after.wholeListings.contains(2)) {
            assertTrue(System.nanoTime() < deadline, "asked for backend 3 listed whole: " + after.wholeListings);
            pump(t.fakes());
        }
        TestProbe<Optional<Seat>> seat = kit.createTestProbe();
        for (long handle : t.seats()) {
            taking.tell(new TmrLicense.SeatOf(handle, seat.getRef()));
            assertTrue(seat.receiveMessage(REPLY).isPresent(), "seat " + handle + " kept");
        }
        pump(t.fakes());
        assertTrue(t.fakes()[2].receivedFrom(sent).stream().noneMatch(m -> m instanceof Message.Allocate
                || m instanceof Message.Free), "no write from the listing: " + t.fakes()[2].receivedFrom(sent));
        kit.stop(taking, REPLY);
    }

    /**
     * A license of 5 seats over three fake backends, recovered and re-synced with all three, that granted two handles
     * ({@code seats}, allocated on every backend) and stopped: the node that took them is gone.
     */
    /** A license with its three fake backends, recovered and synced with every backend. */
    private record Synced(LicenseKey key, ProductInfo product, PeerGroup peers, FakeBackend[] fakes, BitSet all,
                          Parent parent, ActorRef<TmrLicense.Command> license) {
    }

    /**
     * A license of {@code quantity} seats ({@code tmrId}, {@code name}) over fake backends whose copies have the
     * given capacities, spawned, recovered and synced with all three.
     */
    private static Synced synced(long tmrId, String name, int quantity, long... capacities) {
        LicenseKey key = new LicenseKey(6_000_010, 42, tmrId);
        ProductInfo product = new ProductInfo(key.firmCode(), key.productCode(), 0xFF, name, quantity, 0, key.tmrId(),
                false, 0, 0, 0, 0, 0, 0);
        PeerGroup peers = new PeerGroup(3, Clock.systemUTC(), Duration.ofSeconds(30));
        FakeBackend[] fakes = fakes(key, peers, capacities);
        BitSet all = new BitSet();
        all.set(0, 3);
        Parent parent = new Parent();
        ActorRef<TmrLicense.Command> license = spawn(key, peers, parent);
        awaitRecoveries(parent, 1);
        syncAll(license, fakes, parent, all, product, key);
        return new Synced(key, product, peers, fakes, all, parent, license);
    }

    private record TwoSeats(LicenseKey key, ProductInfo product, PeerGroup peers, FakeBackend[] fakes, BitSet all,
                            long[] seats) {
    }

    private static TwoSeats twoSeats(long tmrId, String name) {
        Synced synced = synced(tmrId, name, 5, 5, 5, 5);
        long[] seats = grantTwo(synced.license(), synced.fakes());
        kit.stop(synced.license(), REPLY);
        return new TwoSeats(synced.key(), synced.product(), synced.peers(), synced.fakes(), synced.all(), seats);
    }

    /** Two handles granted and allocated on every backend. */
    private static long[] grantTwo(ActorRef<TmrLicense.Command> license, FakeBackend[] fakes) {
        TestProbe<TmrLicense.Reply> replies = kit.createTestProbe();
        long[] granted = new long[2];
        for (int i = 0; i < granted.length; i++) {
            TmrLicense.Client client = new TmrLicense.Client("10.0.0.1", "host", "user", 1 + i, SESSION);
            license.tell(new TmrLicense.Access(0, AccessMode.USERLIMIT, client, 1 + i, replies.getRef()));
            granted[i] = assertInstanceOf(TmrLicense.Granted.class, pumpUntilAnswer(fakes, replies)).handleId();
        }
        return granted;
    }

    /** A handle id in a range of none of {@code ids}. */
    private static long idOutside(int ranges, long... ids) {
        for (int k = 0; ; k++) {
            int range = k;
            if (java.util.Arrays.stream(ids).noneMatch(id -> AllocationDigests.rangeOf(id, ranges) == range)) {
                return AllocationDigests.rangeStart(k, ranges) + 1;
            }
        }
    }

    /** What a listing by the ranges of {@code coverage} holds of {@code fake}'s allocations. */
    private static List<Allocation> inRanges(FakeBackend fake, TmrLicense.Coverage coverage) {
        return ((Message.AllocationList) fake.now(new Message.ListAllocations(0, 1000))).allocations().stream()
                .filter(a -> coverage.listed().get(AllocationDigests.rangeOf(a.tmrHandleId(),
                        coverage.expected().ranges()))).toList();
    }

    /** Three fakes linked into {@code peers}, each granting the lease; {@code quantities}: the seats of each copy. */
    static FakeBackend[] fakes(LicenseKey key, PeerGroup peers, long... quantities) {
        AtomicLong sequence = new AtomicLong();
        FakeBackend[] fakes = new FakeBackend[3];
        for (int i = 0; i < 3; i++) {
            fakes[i] = new FakeBackend(i, key, quantities[i], 0, sequence);
            peers.linkUp(i, fakes[i]);
            Message granted = fakes[i].now(new Message.LeaseAcquire(LeaseGrant.ACTIVE_LEASE, "restart-node",
                    peers.targetEpoch(), 600_000));
            peers.granted(i, ((Message.LeaseGranted) granted).grant(), peers.now());
        }
        return fakes;
    }

    private static ActorRef<TmrLicense.Command> spawn(LicenseKey key, PeerGroup peers, Parent parent) {
        return kit.spawn(TmrLicense.create(key, peers, parent, Clock.systemUTC(), new Random(11),
                id -> ByteBuffer.allocate(16).putLong(id).array(),
                new TmrLicense.Settings(Duration.ofHours(1), 100)));
    }

    /** Carries out every request the fakes hold and hands back every answer, in order. */
    static void pump(FakeBackend[] fakes) {
        for (FakeBackend fake : fakes) {
            while (fake.deliverRequest()) {
                // carried out
            }
            while (fake.deliverAnswer(0)) {
                // handed to the node
            }
        }
        Thread.onSpinWait();
    }

    /** Pumps the fakes until the probe has an answer (bounded). */
    static TmrLicense.Reply pumpUntilAnswer(FakeBackend[] fakes, TestProbe<TmrLicense.Reply> replies) {
        long deadline = System.nanoTime() + REPLY.toNanos();
        while (true) {
            pump(fakes);
            try {
                return replies.receiveMessage(Duration.ofMillis(5));
            } catch (AssertionError nothingYet) {
                assertTrue(System.nanoTime() < deadline, "no answer within " + REPLY);
            }
        }
    }

    static void awaitRecoveries(Parent parent, int count) {
        long deadline = System.nanoTime() + REPLY.toNanos();
        while (parent.recoveries.get() < count) {
            assertTrue(System.nanoTime() < deadline, "the license recovered " + parent.recoveries.get()
                    + " time(s), expected " + count);
            Thread.onSpinWait();
        }
    }

    /** What the virtual container does: the copies, then a re-sync of every backend the license asks for. */
    static void syncAll(ActorRef<TmrLicense.Command> license, FakeBackend[] fakes, Parent parent, BitSet all,
                                ProductInfo product, LicenseKey key) {
        syncAll(license, fakes, parent, all, product, key, null);
    }

    /** As {@link #syncAll}, each backend listed in the ranges of {@code coverage} only (null: whole). */
    static void syncAll(ActorRef<TmrLicense.Command> license, FakeBackend[] fakes, Parent parent, BitSet all,
                        ProductInfo product, LicenseKey key, TmrLicense.Coverage coverage) {
        license.tell(new TmrLicense.Copies(all, product));
        long deadline = System.nanoTime() + REPLY.toNanos();
        while (parent.usable < 3) {
            assertTrue(System.nanoTime() < deadline, "usable backends: " + parent.usable);
            pump(fakes);
            Integer backend = parent.resyncs.poll();
            if (backend == null) {
                continue;
            }
            List<Allocation> held = coverage == null ? ((Message.AllocationList) fakes[backend].now(
                    new Message.ListAllocations(0, 1000))).allocations() : inRanges(fakes[backend], coverage);
            license.tell(new TmrLicense.Resync(backend, held.stream().filter(a -> a.key().equals(key)).toList(),
                    fakes[backend].grantedEpoch(), coverage));
        }
    }
}
