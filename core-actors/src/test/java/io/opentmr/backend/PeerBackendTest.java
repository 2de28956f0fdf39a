package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.license.CryptTransform;
import io.opentmr.license.Ed25519;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.ProductItemSpec;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.AllocationDigests;
import io.opentmr.protocol.AllocationRequest;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LeaseCertificate;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.UnitsOperation;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.testing.MutableClock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyPair;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.persistence.testkit.ProcessingSuccess;
import org.apache.pekko.persistence.testkit.WriteEvents;
import org.apache.pekko.persistence.testkit.javadsl.PersistenceTestKit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The backend's peer side against a real TMR group of three backends: leases and their grants, the lease
 * certificate's rules, and the writes and reads a TMR node makes on its copies.
 */
@Timeout(90)
@ExtendWith(NoLeaks.class)
class PeerBackendTest {

    private static final long TTL = 30_000;
    private static final HandleOwner OWNER = new HandleOwner("ws-1", "anna", 42, 1);

    @TempDir
    Path dir;

    private final MutableClock clock = new MutableClock(Instant.now());
    private TmrTestGroup group;

    @BeforeEach
    void start() throws Exception {
        group = new TmrTestGroup(dir, clock, Map.of());
    }

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    private LicenseKey issue(long product, long quantity, Long units) throws Exception {
        ProductItemSpec item = group.issueTmr(new LicenseIssuer.Request(TmrTestGroup.FIRM, product, quantity, true, units,
                null, null, null, null, 0b11, "TMR " + product));
        return new LicenseKey(TmrTestGroup.FIRM, product, item.tmrId());
    }

    private static Allocation allocation(long handleId, LicenseKey key, AccessMode mode, HandleOwner owner,
                                         long epoch) {
        return new Allocation(handleId, key, mode, 0, owner, Bytes.of(new byte[32]), epoch);
    }

    /** ALLOCATE whose deadline is not what the test is about. */
    private static Message.Allocate allocate(LeaseCertificate certificate, Allocation allocation) {
        return new Message.Allocate(certificate, allocation, Long.MAX_VALUE);
    }

    private static Message.Free free(LeaseCertificate certificate, long tmrHandleId, LicenseKey key) {
        return new Message.Free(certificate, tmrHandleId, key, Long.MAX_VALUE);
    }

    private static int code(Message answer) {
        return assertInstanceOf(Message.Error.class, answer, answer.toString()).code();
    }

    private static String text(Message answer) {
        return assertInstanceOf(Message.Error.class, answer, answer.toString()).text();
    }

    private static void ok(Message answer) {
        assertInstanceOf(Message.Ok.class, answer, answer.toString());
    }

    /** node-a's certificate: the active lease from backends 0 and 1, on their connections (kept open). */
    private LeaseCertificate certificate(TmrTestGroup.Peer on0, TmrTestGroup.Peer on1, long proposedEpoch) throws Exception {
        LeaseGrant first = on0.grant(proposedEpoch, TTL);
        LeaseGrant second = on1.grant(first.epoch(), TTL);
        if (second.epoch() != first.epoch()) {
            first = on0.grant(second.epoch(), TTL);
        }
        assertEquals(first.epoch(), second.epoch(), "the grants converge on one epoch");
        return new LeaseCertificate(List.of(first, second));
    }

    private ProductInfo inventory(TmrTestGroup.Peer node, long product) throws Exception {
        Message.InventoryOk inventory = (Message.InventoryOk) node.request(new Message.Inventory());
        return inventory.containers().get(0).products().stream().filter(p -> p.productCode() == product)
                .findFirst().orElseThrow();
    }

    @Test
    void aGrantIsSignedByTheContainerKeyAndEpochsOnlyRise() throws Exception {
        try (TmrTestGroup.Peer node = group.peer("node-a", 0)) {
            LeaseGrant grant = node.grant(0, 2_000);
            assertEquals(1, grant.epoch());
            assertEquals("node-a", grant.holder());
            assertEquals(LeaseGrant.ACTIVE_LEASE, grant.leaseName());
            assertEquals(group.backend(0).identity().serial(), grant.grantor());
            assertEquals(clock.millis(), grant.issuedAtMillis());
            assertEquals(2_000, grant.ttlMillis());
            assertTrue(Ed25519.verify(group.backend(0).identity().keys().getPublic(), grant.signedPayload(),
                    grant.signature().toArray()), "signed by the container's key over signedPayload()");
            assertEquals(1, node.grant(0, 2_000).epoch(), "the holder's own lease again: the same epoch");

            clock.advance(Duration.ofMillis(500));
            Message renewed = node.request(new Message.LeaseRenew(LeaseGrant.ACTIVE_LEASE, "node-a", 1, 2_000));
            LeaseGrant fresh = assertInstanceOf(Message.LeaseGranted.class, renewed, renewed.toString()).grant();
            assertEquals(1, fresh.epoch());
            assertEquals(clock.millis(), fresh.issuedAtMillis(), "a renewal is a fresh grant");
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(node.request(
                    new Message.LeaseRenew(LeaseGrant.ACTIVE_LEASE, "node-a", 2, 2_000))), "wrong epoch");

            ok(node.request(new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, "node-a", 1)));
            ok(node.request(new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, "node-a", 1)));
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(node.request(
                    new Message.LeaseRenew(LeaseGrant.ACTIVE_LEASE, "node-a", 1, 2_000))), "released");
            assertEquals(1, node.grant(0, 2_000).epoch(), "after a release, the same holder keeps its epoch");
            assertEquals(60_000, node.grant(0, 3_600_000).ttlMillis(), "the TTL is capped by lease.max-ttl");
            assertEquals(10, node.grant(10, 2_000).epoch(), "a proposed epoch above the highest is taken");
        }
    }

    /** The group anew, its backends on Pekko's persistence testkit journal, whose writes a test can hold. */
    private void onTestkitJournal() throws Exception {
        group.close();
        group = new TmrTestGroup(dir.resolve("held"), clock, Map.of(
                "pekko.persistence.journal.plugin", "pekko.persistence.testkit.journal",
                "pekko.persistence.testkit.journal.class", "org.apache.pekko.persistence.testkit.PersistenceTestKitPlugin"));
    }

    /** From now on backend 1's journal holds each write until {@code release} (30 s at most); {@code writing} tells. */
    private void holdWrites(CountDownLatch writing, CountDownLatch release) {
        PersistenceTestKit.create(group.backend(0).actorSystem()).withPolicy((persistenceId, operation) -> {
            if (operation instanceof WriteEvents) {
                writing.countDown();
                try {
                    release.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            return ProcessingSuccess.getInstance();
        });
    }

    /**
     * A renewal writes nothing and does not wait for the container's journal: a node's renewals queued behind
     * batches of writes, each waiting for its fsync, came after the grant's TTL on a loaded machine, and the active
     * node lost its lease while it was alive and connected. Here the journal holds a write (a license import) while
     * the node renews, right and wrong, and a rival asks for the lease, as a standby does at each heartbeat.
     */
    @Test
    void aRenewalIsAnsweredWhileTheContainersJournalHoldsAWrite() throws Exception {
        onTestkitJournal();
        CountDownLatch writing = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        try (TmrTestGroup.Peer node = group.peer("node-a", 0)) {
            long epoch = node.grant(0, TTL).epoch();
            holdWrites(writing, release);
            CompletableFuture<LicenseKey> imported = CompletableFuture.supplyAsync(() -> {
                try {
                    return issue(87, 5, null);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            try {
                assertTrue(writing.await(10, TimeUnit.SECONDS), "the import's write reached the journal");
                clock.advance(Duration.ofMillis(250));
                Message renewed = node.request(new Message.LeaseRenew(LeaseGrant.ACTIVE_LEASE, "node-a", epoch, TTL));
                LeaseGrant fresh = assertInstanceOf(Message.LeaseGranted.class, renewed, renewed.toString()).grant();
                assertEquals(clock.millis(), fresh.issuedAtMillis(), "a fresh grant");
                assertEquals(epoch, fresh.epoch());
                assertTrue(Ed25519.verify(group.backend(0).identity().keys().getPublic(), fresh.signedPayload(),
                        fresh.signature().toArray()), "signed by the container's key");
                assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(node.request(new Message.LeaseRenew(
                        LeaseGrant.ACTIVE_LEASE, "node-a", epoch + 1, TTL))), "a wrong epoch is refused as before");
                try (TmrTestGroup.Peer rival = group.peer("node-b", 0)) {
                    Message refused = rival.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL);
                    assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(refused), "a standby's heartbeat");
                    assertTrue(text(refused).contains("held by node-a"), text(refused));
                }
                assertFalse(imported.isDone(), "the lease requests were answered while the write was held");
            } finally {
                release.countDown();
            }
            imported.get(30, TimeUnit.SECONDS);
        }
    }

    /**
     * A renewal decided at once never grants an epoch whose raise is not durable yet: a failed write would let the
     * restarted container grant that epoch again, to another node. Such a renewal waits for the write, as before.
     */
    @Test
    void aRenewalOfAnEpochNotJournaledYetIsAnsweredAfterItsWrite() throws Exception {
        onTestkitJournal();
        CountDownLatch writing = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        try (TmrTestGroup.Peer node = group.peer("node-a", 0)) {
            holdWrites(writing, release);
            RawConnection raw = node.connection();
            // The first grant raises the epoch to 1: its event is being written while the node renews, pipelined.
            raw.send(11, new Message.LeaseAcquire(LeaseGrant.ACTIVE_LEASE, "node-a", 0, TTL));
            try {
                assertTrue(writing.await(10, TimeUnit.SECONDS), "the epoch's raise reached the journal");
                raw.send(12, new Message.LeaseRenew(LeaseGrant.ACTIVE_LEASE, "node-a", 1, TTL));
                boolean answered;
                try {
                    io.opentmr.protocol.Frame early = raw.read();
                    answered = early != null;
                    assertFalse(answered, "answered while the epoch's raise was not durable: " + early);
                } catch (java.net.SocketTimeoutException nothing) {
                    // the socket's 5 s: nothing was answered while the write was held
                }
            } finally {
                release.countDown();
            }
            Map<Integer, Message> answers = new java.util.HashMap<>();
            for (int i = 0; i < 2; i++) {
                io.opentmr.protocol.Frame frame = raw.read();
                answers.put(frame.requestId(), frame.message());
            }
            assertEquals(1, assertInstanceOf(Message.LeaseGranted.class, answers.get(11)).grant().epoch());
            assertEquals(1, assertInstanceOf(Message.LeaseGranted.class, answers.get(12)).grant().epoch(),
                    "renewed once the epoch was journaled");
        }
    }

    @Test
    void anotherHolderIsRefusedWhileTheLeaseIsLiveAndGrantedOnceItsConnectionCloses() throws Exception {
        try (TmrTestGroup.Peer b = group.peer("node-b", 0)) {
            TmrTestGroup.Peer a = group.peer("node-a", 0);
            assertEquals(1, a.grant(0, TTL).epoch());
            Message refused = b.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL);
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(refused));
            assertTrue(text(refused).contains("node-a") && text(refused).contains("epoch 1"), text(refused));

            a.close();
            // The backend learns of the close when its socket reports it: moments, never the 30 s TTL.
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            Message answer = b.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL);
            while (answer instanceof Message.Error && System.nanoTime() < deadline) {
                answer = b.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL);
            }
            assertEquals(2, assertInstanceOf(Message.LeaseGranted.class, answer, answer.toString()).grant().epoch());
        }
    }

    @Test
    void aNodeHoldsLeasesUnderItsAuthenticatedNameOnly() throws Exception {
        try (TmrTestGroup.Peer a = group.peer("node-a", 0)) {
            Message asOther = a.request(new Message.LeaseAcquire(LeaseGrant.ACTIVE_LEASE, "node-b", 0, TTL));
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(asOther));
            assertTrue(text(asOther).contains("authenticated as node-a"), text(asOther));
            long epoch = a.grant(0, TTL).epoch();
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(a.request(new Message.LeaseRenew(
                    LeaseGrant.ACTIVE_LEASE, "node-b", epoch, TTL))));
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(a.request(new Message.LeaseRelease(
                    LeaseGrant.ACTIVE_LEASE, "node-b", epoch))));
            assertInstanceOf(Message.LeaseGranted.class, a.request(new Message.LeaseRenew(LeaseGrant.ACTIVE_LEASE,
                    "node-a", epoch, TTL)), "node-a's lease is untouched");
        }
    }

    @Test
    void aSecondConnectionUnderTheNameOfALiveLeaseIsRefusedAndTheHolderKeepsServing() throws Exception {
        LicenseKey key = issue(86, 5, null);
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1);
             TmrTestGroup.Peer twin = group.peer("node-a", 0)) {
            LeaseCertificate cert = certificate(a0, a1, 0);
            long epoch = cert.grants().get(0).epoch();
            Message refused = twin.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL);
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(refused));
            assertTrue(text(refused).contains("another connection"), text(refused));
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(twin.acquire(LeaseGrant.ACTIVE_LEASE, epoch + 3,
                    TTL)), "not with a higher epoch either");
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(twin.request(new Message.LeaseRenew(
                    LeaseGrant.ACTIVE_LEASE, "node-a", epoch, TTL))));
            ok(twin.request(new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, "node-a", epoch)));

            Message renewed = a0.request(new Message.LeaseRenew(LeaseGrant.ACTIVE_LEASE, "node-a", epoch, TTL));
            assertEquals(epoch, assertInstanceOf(Message.LeaseGranted.class, renewed, renewed.toString()).grant()
                    .epoch(), "the live holder is not displaced");
            ok(a0.request(allocate(cert, allocation(1, key, AccessMode.USERLIMIT, OWNER, epoch))));
        }
    }

    @Test
    void theSameNodeOnANewConnectionKeepsItsEpochSoItsCertificateStaysValid() throws Exception {
        LicenseKey key = issue(87, 5, null);
        try (TmrTestGroup.Peer a1 = group.peer("node-a", 1); TmrTestGroup.Peer a2 = group.peer("node-a", 2)) {
            TmrTestGroup.Peer a0 = group.peer("node-a", 0);
            LeaseCertificate cert = certificate(a0, a1, 0);
            long epoch = cert.grants().get(0).epoch();
            ok(a2.request(allocate(cert, allocation(1, key, AccessMode.USERLIMIT, OWNER, epoch))));

            a0.close();
            try (TmrTestGroup.Peer back = group.peer("node-a", 0)) {
                long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
                Message answer = back.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL);
                while (answer instanceof Message.Error && System.nanoTime() < deadline) {
                    answer = back.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL);
                }
                LeaseGrant again = assertInstanceOf(Message.LeaseGranted.class, answer, answer.toString()).grant();
                assertEquals(epoch, again.epoch(), "a reconnect of the same holder keeps its epoch");
                ok(a2.request(allocate(cert, allocation(2, key, AccessMode.USERLIMIT, OWNER, epoch))));
                ok(a2.request(allocate(new LeaseCertificate(List.of(again, cert.grants().get(1))),
                        allocation(3, key, AccessMode.USERLIMIT, OWNER, epoch))));
                ok(back.request(allocate(cert, allocation(4, key, AccessMode.USERLIMIT, OWNER, epoch))));
            }

            // Once the lease on backend 1 expired, node-b takes it: always above.
            try (TmrTestGroup.Peer b1 = group.peer("node-b", 1)) {
                clock.advance(Duration.ofMillis(TTL + 1));
                assertEquals(epoch + 1, b1.grant(0, TTL).epoch());
            }
        }
    }

    @Test
    void aLeaseNotRenewedWithinItsTtlGoesToTheNextHolder() throws Exception {
        try (TmrTestGroup.Peer a = group.peer("node-a", 1); TmrTestGroup.Peer b = group.peer("node-b", 1)) {
            assertEquals(1, a.grant(0, 2_000).epoch());
            clock.advance(Duration.ofMillis(2_000));
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(b.acquire(LeaseGrant.ACTIVE_LEASE, 0, 2_000)),
                    "live up to issuedAt + ttl");
            clock.advance(Duration.ofMillis(1));
            assertEquals(2, b.grant(0, 2_000).epoch());
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(a.request(
                    new Message.LeaseRenew(LeaseGrant.ACTIVE_LEASE, "node-a", 1, 2_000))), "node-a lost it");
        }
    }

    @Test
    void grantsFromSeveralBackendsConvergeOnTheHighestEpoch() throws Exception {
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1);
             TmrTestGroup.Peer b0 = group.peer("node-b", 0)) {
            b0.grant(0, TTL);
            ok(b0.request(new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, "node-b", 1)));
            assertEquals(2, a0.grant(0, TTL).epoch(), "node-b held epoch 1 on backend 0");
            assertEquals(1, a1.grant(0, TTL).epoch(), "backend 1 had granted nothing yet");
            assertEquals(2, a1.grant(2, TTL).epoch(), "re-acquired with the highest epoch the node saw");
            assertEquals(2, a0.grant(2, TTL).epoch(), "and the same again where it was already");
        }
    }

    @Test
    void allocateHoldsSeatsByTheRulesOfAccessAndIsIdempotent() throws Exception {
        LicenseKey key = issue(77, 2, null);
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1)) {
            LeaseCertificate cert = certificate(a0, a1, 0);
            long epoch = cert.grants().get(0).epoch();
            for (TmrTestGroup.Peer node : List.of(a0, a1)) {
                ok(node.request(allocate(cert, allocation(1, key, AccessMode.USERLIMIT, OWNER, epoch))));
                ok(node.request(allocate(cert, allocation(1, key, AccessMode.USERLIMIT, OWNER, epoch))));
                assertEquals(1, inventory(node, 77).inUse(), "the same handle id twice holds one seat");
                ok(node.request(allocate(cert, allocation(2, key, AccessMode.USERLIMIT, OWNER, epoch))));
                assertEquals(CmError.NO_MORE_LICENSES.code(), code(node.request(allocate(cert,
                        allocation(3, key, AccessMode.USERLIMIT, OWNER, epoch)))));
                assertEquals(CmError.EXCLUSIVE_CONFLICT.code(), code(node.request(allocate(cert,
                        allocation(4, key, AccessMode.EXCLUSIVE, OWNER, epoch)))));
                assertEquals(2, inventory(node, 77).inUse());

                ok(node.request(free(cert, 2, key)));
                ok(node.request(free(cert, 2, key)));
                ok(node.request(free(cert, 99, key)));
                assertEquals(1, inventory(node, 77).inUse());
                ok(node.request(allocate(cert, allocation(3, key, AccessMode.USERLIMIT, OWNER, epoch))));
            }
            assertEquals(CmError.ENTRY_NOT_FOUND.code(), code(a0.request(allocate(cert,
                    allocation(5, new LicenseKey(TmrTestGroup.FIRM, 99, key.tmrId()), AccessMode.USERLIMIT, OWNER,
                            epoch)))));
            // Allocations belong to the node: losing its lease does not take them back.
            ok(a0.request(new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, "node-a", epoch)));
            assertEquals(2, inventory(a0, 77).inUse());
        }
    }

    @Test
    void allocateAndFreeThatComePastTheirDeadlineAreNotCarriedOut() throws Exception {
        LicenseKey key = issue(88, 2, null);
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1)) {
            LeaseCertificate cert = certificate(a0, a1, 0);
            long epoch = cert.grants().get(0).epoch();
            long skew = BackendSettings.Lease.DEFAULT.clockSkew().toMillis();
            long deadline = clock.millis() + 500;
            Message.Allocate first = new Message.Allocate(cert, allocation(1, key, AccessMode.USERLIMIT, OWNER, epoch),
                    deadline);
            Message.Allocate second = new Message.Allocate(cert, allocation(2, key, AccessMode.USERLIMIT, OWNER,
                    epoch), deadline);

            clock.advance(Duration.ofMillis(500 + skew));
            ok(a0.request(first));
            assertEquals(1, inventory(a0, 88).inUse(), "at its deadline plus the clock skew: still carried out");

            clock.advance(Duration.ofMillis(1));
            Message late = a0.request(second);
            assertEquals(CmError.NETWORK_FAULT.code(), code(late));
            assertTrue(text(late).contains("deadline"), text(late));
            assertEquals(1, inventory(a0, 88).inUse(), "the late ALLOCATE holds no seat");
            assertEquals(List.of(1L), ((Message.AllocationList) a0.request(new Message.ListAllocations(0, 10)))
                    .allocations().stream().map(Allocation::tmrHandleId).toList());

            Message lateFree = a0.request(new Message.Free(cert, 1, key, deadline));
            assertEquals(CmError.NETWORK_FAULT.code(), code(lateFree));
            assertEquals(1, inventory(a0, 88).inUse(), "the late FREE freed nothing");
            ok(a0.request(new Message.Free(cert, 1, key, clock.millis() + 1_000)));
            assertEquals(0, inventory(a0, 88).inUse());
        }
    }

    @Test
    void listAllocationsPagesInUnsignedOrder() throws Exception {
        LicenseKey key = issue(78, 0, null);
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1)) {
            LeaseCertificate cert = certificate(a0, a1, 0);
            long epoch = cert.grants().get(0).epoch();
            for (long id : new long[] {-1L, 2, Long.MIN_VALUE, 1, Long.MAX_VALUE}) {
                ok(a0.request(allocate(cert, allocation(id, key, AccessMode.NOUSERLIMIT, OWNER, epoch))));
            }
            Message.AllocationList first = (Message.AllocationList) a0.request(new Message.ListAllocations(0, 2));
            assertEquals(List.of(1L, 2L), first.allocations().stream().map(Allocation::tmrHandleId).toList());
            assertTrue(first.more());
            Message.AllocationList second = (Message.AllocationList) a0.request(new Message.ListAllocations(2, 2));
            assertEquals(List.of(Long.MAX_VALUE, Long.MIN_VALUE),
                    second.allocations().stream().map(Allocation::tmrHandleId).toList());
            assertTrue(second.more());
            Message.AllocationList last = (Message.AllocationList) a0.request(
                    new Message.ListAllocations(Long.MIN_VALUE, 1000));
            assertEquals(List.of(-1L), last.allocations().stream().map(Allocation::tmrHandleId).toList());
            assertTrue(!last.more());
            Allocation listed = last.allocations().get(0);
            assertEquals(allocation(-1L, key, AccessMode.NOUSERLIMIT, OWNER, epoch), listed,
                    "listed as allocated: owner, mode, token digest and epoch");
            assertTrue(((Message.AllocationList) a1.request(new Message.ListAllocations(0, 10))).allocations()
                    .isEmpty(), "each backend lists its own");
        }
    }

    @Test
    void listDigestsCountsAndDigestsEachRangeAsTheNodeComputesItFromTheSameAllocations() throws Exception {
        LicenseKey key = issue(79, 0, null);
        LicenseKey other = issue(80, 0, null);
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1)) {
            LeaseCertificate cert = certificate(a0, a1, 0);
            long epoch = cert.grants().get(0).epoch();
            AllocationDigests expected = new AllocationDigests(8);
            long[] ids = {-1L, 2, Long.MIN_VALUE, 1, Long.MAX_VALUE, Long.MAX_VALUE / 8 * 3 + 5};
            for (int i = 0; i < ids.length; i++) {
                LicenseKey of = i % 2 == 0 ? key : other;
                ok(a0.request(allocate(cert, allocation(ids[i], of, AccessMode.NOUSERLIMIT, OWNER, epoch))));
                expected.add(ids[i], of);
            }
            ok(a0.request(free(cert, 2, other)));
            AllocationDigests afterFree = new AllocationDigests(8);
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] != 2) {
                    afterFree.add(ids[i], i % 2 == 0 ? key : other);
                }
            }

            AllocationDigests listed = ((Message.DigestList) a0.request(new Message.ListDigests(8))).digests();

            assertEquals(afterFree, listed, "what the node computes from the same allocations");
            assertNotEquals(expected, listed, "the freed handle left its range");
            assertEquals(1, listed.count(0), "id 1 only in the first range: id 2 was freed");
            assertEquals(new AllocationDigests(8),
                    ((Message.DigestList) a1.request(new Message.ListDigests(8))).digests(), "each backend its own");
        }
        try (RawConnection client = new RawConnection(group.backend(0).address())) {
            client.hello();
            assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(), code(client.request(new Message.ListDigests(8))),
                    "a client connection gets no digest");
        }
    }

    @Test
    void theRequestAnAllocationNamesIsListedWhenAskedForAndOutlivesARestartOfTheBackend() throws Exception {
        LicenseKey key = issue(79, 0, null);
        AllocationRequest request = new AllocationRequest("ws-17", 77);
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1)) {
            LeaseCertificate cert = certificate(a0, a1, 0);
            long epoch = cert.grants().get(0).epoch();
            ok(a0.request(allocate(cert, allocation(1, key, AccessMode.NOUSERLIMIT, OWNER, epoch).withRequest(request))));
            ok(a0.request(allocate(cert, allocation(2, key, AccessMode.NOUSERLIMIT, OWNER, epoch))));

            Message.AllocationList plain = (Message.AllocationList) a0.request(new Message.ListAllocations(0, 10));
            assertFalse(plain.withRequests());
            assertEquals(java.util.Arrays.asList(null, null), plain.allocations().stream()
                    .map(Allocation::request).toList(), "not asked for, not sent");
        }
        group.kill(0);
        group.restart(0);
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0)) {
            Message.AllocationList listed = (Message.AllocationList) a0.request(
                    new Message.ListAllocations(0, 10, true));
            assertTrue(listed.withRequests());
            assertEquals(java.util.Arrays.asList(request, null), listed.allocations().stream()
                    .map(Allocation::request).toList(), "journaled with the allocation; the other named none");
        }
    }

    @Test
    void aCertificateBreakingARuleIsRefusedWith134NamingTheRule() throws Exception {
        LicenseKey key = issue(79, 5, null);
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1);
             TmrTestGroup.Peer a2 = group.peer("node-a", 2); TmrTestGroup.Peer b2 = group.peer("node-b", 2)) {
            LeaseCertificate cert = certificate(a0, a1, 0);
            LeaseGrant g0 = cert.grants().get(0);
            LeaseGrant g1 = cert.grants().get(1);
            long epoch = g0.epoch();
            Allocation seat = allocation(1, key, AccessMode.USERLIMIT, OWNER, epoch);

            assertRefused(a2, new LeaseCertificate(List.of()), seat, "no grants");
            assertRefused(a2, new LeaseCertificate(List.of(g0)), seat, "too few signers");
            byte[] forged = g1.signature().toArray();
            forged[5] ^= 1;
            assertRefused(a2, new LeaseCertificate(List.of(g0, g1.withSignature(Bytes.of(forged)))), seat,
                    "too few signers");
            KeyPair stranger = Ed25519.generate();
            LeaseGrant unsigned = new LeaseGrant(LeaseGrant.ACTIVE_LEASE, "node-a", epoch, clock.millis(), TTL,
                    new Serial(129, 1), Bytes.EMPTY);
            LeaseGrant outsider = unsigned.withSignature(Bytes.of(Ed25519.sign(stranger.getPrivate(),
                    unsigned.signedPayload())));
            assertRefused(a2, new LeaseCertificate(List.of(g0, outsider)), seat, "too few signers");
            clock.advance(Duration.ofMillis(1));
            LeaseGrant g0Again = a0.grant(epoch, TTL);
            assertEquals(epoch, g0Again.epoch());
            assertRefused(a2, new LeaseCertificate(List.of(g0, g0Again)), seat, "too few signers");
            assertRefused(b2, cert, seat, "wrong holder");
            Message other0 = a0.acquire("another-lease", 0, TTL);
            Message other1 = a1.acquire("another-lease", 0, TTL);
            assertRefused(a2, new LeaseCertificate(List.of(((Message.LeaseGranted) other0).grant(),
                    ((Message.LeaseGranted) other1).grant())), seat, "wrong lease");
            assertRefused(a2, new LeaseCertificate(List.of(g0, a1.grant(epoch + 5, TTL))), seat, "mixed grants");
            a1.request(new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, "node-a", epoch + 5));
            // Grants from clocks 10 s ahead: they would stay valid 10 s longer than granted.
            clock.advance(Duration.ofSeconds(10));
            LeaseCertificate ahead = certificate(a0, a1, epoch + 5);
            clock.advance(Duration.ofSeconds(-10));
            assertRefused(a2, ahead, allocation(1, key, AccessMode.USERLIMIT, OWNER, epoch + 5),
                    "issued in the future");

            ok(a2.request(allocate(cert, seat)));
            clock.advance(Duration.ofMillis(TTL + 1_000));
            assertRefused(a2, cert, seat, "expired");
            clock.advance(Duration.ofMillis(1));
            assertRefused(a2, cert, allocation(2, key, AccessMode.USERLIMIT, OWNER, epoch), "expired");
        }
    }

    @Test
    void staleAndConflictingCertificatesAreFenced() throws Exception {
        LicenseKey key = issue(80, 5, null);
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1);
             TmrTestGroup.Peer a2 = group.peer("node-a", 2); TmrTestGroup.Peer b2 = group.peer("node-b", 2)) {
            LeaseCertificate old = certificate(a0, a1, 0);
            long epoch = old.grants().get(0).epoch();
            ok(a2.request(allocate(old, allocation(1, key, AccessMode.USERLIMIT, OWNER, epoch))));

            // node-b holds backend 2's lease at a higher epoch: node-a's certificate is stale there.
            assertEquals(epoch + 5, b2.grant(epoch + 5, TTL).epoch());
            TmrTestGroup.Peer b0 = group.peer("node-b", 0);
            try (b0) {
                assertRefused(a2, old, allocation(2, key, AccessMode.USERLIMIT, OWNER, epoch), "stale epoch");
                // node-a collects a certificate at node-b's epoch from 0 and 1: backend 2 granted that epoch to
                // node-b, whose lease is live there.
                a0.request(new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, "node-a", epoch));
                a1.request(new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, "node-a", epoch));
                LeaseCertificate same = certificate(a0, a1, epoch + 5);
                assertEquals(epoch + 5, same.grants().get(0).epoch());
                assertRefused(a2, same, allocation(2, key, AccessMode.USERLIMIT, OWNER, epoch + 5), "conflict");
                // A valid certificate above everything backend 2 knows is accepted and raises its epoch.
                a0.request(new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, "node-a", epoch + 5));
                a1.request(new Message.LeaseRelease(LeaseGrant.ACTIVE_LEASE, "node-a", epoch + 5));
                LeaseCertificate newer = certificate(a0, a1, epoch + 6);
                ok(a2.request(allocate(newer, allocation(2, key, AccessMode.USERLIMIT, OWNER,
                        epoch + 6))));
                assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(b0.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL)),
                        "backend 0's lease is node-a's");
                b2.connection().close();
                long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
                Message granted = a2.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL);
                while (granted instanceof Message.Error && System.nanoTime() < deadline) {
                    granted = a2.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL);
                }
                assertEquals(epoch + 6, assertInstanceOf(Message.LeaseGranted.class, granted, granted.toString())
                        .grant().epoch(), "the epoch node-a's certificate showed: node-a keeps it");
                TmrTestGroup.Peer c2 = group.peer("node-c", 2);
                try (c2) {
                    a2.connection().close();
                    Message other = c2.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL);
                    deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
                    while (other instanceof Message.Error && System.nanoTime() < deadline) {
                        other = c2.acquire(LeaseGrant.ACTIVE_LEASE, 0, TTL);
                    }
                    assertEquals(epoch + 7, assertInstanceOf(Message.LeaseGranted.class, other, other.toString())
                            .grant().epoch(), "another holder: above the epoch the certificate showed");
                }
            }
        }
    }

    private static void assertRefused(TmrTestGroup.Peer node, LeaseCertificate cert, Allocation seat, String rule)
            throws Exception {
        Message answer = node.request(allocate(cert, seat));
        assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(answer), answer.toString());
        assertTrue(text(answer).contains(rule), "'" + rule + "' in: " + text(answer));
    }

    @Test
    void peerUnitsAreIdempotentByOperationAndSetResyncs() throws Exception {
        LicenseKey key = issue(81, 1, 10L);
        LicenseKey noCounter = issue(82, 1, null);
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1)) {
            LeaseCertificate cert = certificate(a0, a1, 0);
            assertEquals(10, units(a0, cert, key, 1, UnitsOperation.READ, 0));
            assertEquals(7, units(a0, cert, key, 2, UnitsOperation.DECREMENT, 3));
            assertEquals(7, units(a0, cert, key, 2, UnitsOperation.DECREMENT, 3), "a repeat gets the first answer");
            assertEquals(7, units(a0, cert, key, 3, UnitsOperation.READ, 0));
            assertEquals(CmError.UNIT_COUNTER_TOO_SMALL.code(), code(a0.request(new Message.PeerUnits(cert, key, 4,
                    UnitsOperation.DECREMENT, 8))));
            assertEquals(4, units(a0, cert, key, 5, UnitsOperation.SET, 4));
            assertEquals(1, units(a0, cert, key, 2, UnitsOperation.DECREMENT, 3),
                    "the SET forgot the earlier ids: a decrement retried after it is charged");
            assertEquals(4, units(a0, cert, key, 5, UnitsOperation.SET, 9), "a repeated SET changes nothing");
            assertEquals(0, units(a0, cert, key, 6, UnitsOperation.DECREMENT, 1));
            assertEquals(CmError.UNIT_COUNTER_ZERO.code(), code(a0.request(new Message.PeerUnits(cert, key, 7,
                    UnitsOperation.DECREMENT, 1))));
            assertEquals(CmError.NO_UNIT_COUNTER.code(), code(a0.request(new Message.PeerUnits(cert, noCounter, 8,
                    UnitsOperation.DECREMENT, 1))));
            assertEquals(0, inventory(a0, 81).units());
            assertEquals(10, units(a1, cert, key, 2, UnitsOperation.READ, 0), "each copy has its own counter");
            assertEquals(CmError.TMR_LEASE_REFUSED.code(), code(a0.request(new Message.PeerUnits(
                    new LeaseCertificate(List.of(cert.grants().get(0))), key, 9, UnitsOperation.READ, 0))));
        }
    }

    @Test
    void aPeerUnitsOperationIsRememberedForTheRetryWindow() throws Exception {
        LicenseKey key = issue(89, 1, 100L);
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1)) {
            LeaseCertificate cert = certificate(a0, a1, 0);
            assertEquals(90, units(a0, cert, key, 1, UnitsOperation.DECREMENT, 10));
            for (long other = 2; other < 200; other++) {
                units(a0, cert, key, other, UnitsOperation.DECREMENT, 0);
            }
            Duration window = BackendSettings.Units.DEFAULT.retryMemory();
            clock.advance(window);
            assertEquals(90, units(a0, cert, key, 1, UnitsOperation.DECREMENT, 10),
                    "a retry at the end of the window, after 198 other operations: the first answer");
            clock.advance(Duration.ofMillis(1));
            assertEquals(80, units(a0, cert, key, 1, UnitsOperation.DECREMENT, 10), "after it: a new operation");
        }
    }

    private static long units(TmrTestGroup.Peer node, LeaseCertificate cert, LicenseKey key, long operation,
                              UnitsOperation op, long value) throws Exception {
        Message answer = node.request(new Message.PeerUnits(cert, key, operation, op, value));
        return assertInstanceOf(Message.UnitsOk.class, answer, answer.toString()).remaining();
    }

    @Test
    void peerCryptIsTheClientsTransformOnTheCopyAndTheCopiesAgree() throws Exception {
        ProductItemSpec tmr = group.issueTmr(new LicenseIssuer.Request(TmrTestGroup.FIRM, 83, 1, true, null, null,
                null, null, null, 0, "TMR"));
        LicenseKey key = new LicenseKey(TmrTestGroup.FIRM, 83, tmr.tmrId());
        ProductItemSpec ordinary = group.issueOrdinary(2, new LicenseIssuer.Request(TmrTestGroup.FIRM, 84, 1, false,
                null, null, null, null, null, 0, "ordinary"));
        Bytes data = Bytes.of("opentmr".getBytes(StandardCharsets.US_ASCII));
        try (TmrTestGroup.Peer a0 = group.peer("node-a", 0); TmrTestGroup.Peer a1 = group.peer("node-a", 1);
             TmrTestGroup.Peer a2 = group.peer("node-a", 2)) {
            LeaseCertificate cert = certificate(a0, a1, 0);
            Bytes expected = Bytes.of(CryptTransform.encrypt(tmr.secretBytes(), 0xCAFEBABEL, data.toArray()));
            for (TmrTestGroup.Peer node : List.of(a0, a1, a2)) {
                Message answer = node.request(new Message.PeerCrypt(cert, key, CryptDirection.ENCRYPT, 0xCAFEBABEL,
                        data));
                assertEquals(expected, assertInstanceOf(Message.CryptOk.class, answer, answer.toString()).data());
                Message back = node.request(new Message.PeerCrypt(cert, key, CryptDirection.DECRYPT, 0xCAFEBABEL,
                        expected));
                assertEquals(data, ((Message.CryptOk) back).data());
            }
            assertEquals(CmError.INVALID_PARAMETER.code(), code(a0.request(new Message.PeerCrypt(cert, key,
                    CryptDirection.DECRYPT, 1, data))));
            // A client's CRYPT on an ordinary item is the same transform of its own secret.
            try (RawConnection client = new RawConnection(group.backend(2).address())) {
                client.hello();
                Message.AccessOk handle = (Message.AccessOk) client.request(new Message.Access(TmrTestGroup.FIRM, 84, 0,
                        AccessMode.USERLIMIT));
                Message crypt = client.request(new Message.Crypt(handle.handleId(), CryptDirection.ENCRYPT,
                        0xCAFEBABEL, data));
                assertArrayEquals(CryptTransform.encrypt(ordinary.secretBytes(), 0xCAFEBABEL, data.toArray()),
                        ((Message.CryptOk) crypt).data().toArray());
            }
        }
    }

    @Test
    void anOrdinaryClientIsRefusedTheTmrCopy() throws Exception {
        issue(85, 3, null);
        try (RawConnection client = new RawConnection(group.backend(0).address())) {
            client.hello();
            Message answer = client.request(new Message.Access(TmrTestGroup.FIRM, 85, 0, AccessMode.USERLIMIT));
            assertEquals(CmError.ACCESS_DENIED.code(), code(answer));
            assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(), code(client.request(
                    new Message.LeaseAcquire(LeaseGrant.ACTIVE_LEASE, "x", 0, 1000))), "peer requests need a peer");
        }
    }
}
