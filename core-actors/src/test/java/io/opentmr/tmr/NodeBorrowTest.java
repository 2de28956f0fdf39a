package io.opentmr.tmr;

import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.client.BorrowStore;
import io.opentmr.client.BorrowedLicense;
import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.GroupKeyStatement;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.license.TmrLicense;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Borrowing through the TMR node: the seat is borrowed on the backends, the ticket carries two backend
 * signatures or more and the vendor's statement of the group's keys and verifies offline with the vendor's key
 * alone, a borrowed seat counts everywhere until it is returned, expires or an operator frees it, also across a
 * backend's loss and a node restart; a refused borrow leaves no borrowed allocation; a license of the older
 * format (no statement) still serves but is not borrowable through the node.
 */
@Timeout(180)
@ExtendWith(NoLeaks.class)
class NodeBorrowTest {

    private static final long PRODUCT = 61;

    @TempDir
    Path dir;

    private TmrTestGroup group;
    private Map<String, Object> nodeSettings;

    @BeforeEach
    void start() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(new LicenseIssuer.Request(FIRM, PRODUCT, 2, true, null, null, null, null, Duration.ofDays(7),
                0xFF, "borrowable"));
        nodeSettings = new HashMap<>(TmrTestGroup.restartableNode(dir.resolve("node/journal")));
        nodeSettings.putAll(Map.of("opentmr.node.cleanup-timeout", "4s", "opentmr.node.keep-alive-interval", "1s"));
        startNode();
        // Each backend then gets every seat write: the tests read all three.
        group.awaitAllCopiesUsable(PRODUCT);
    }

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    private void startNode() throws InterruptedException {
        group.startNode(nodeSettings);
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            Await.until("the license listed", () -> !client.listContainers().get(0).products().isEmpty());
        }
    }

    private TmrClientOptions options(String user) {
        return TmrClientOptions.builder().addresses(group.nodeAddress()).host("ws-1").user(user).build();
    }

    @Test
    void aBorrowThroughTheNodeIsSignedByTheBackendsCountsEverywhereAndIsReturnedEarly() throws Exception {
        // The program trusts the vendor's public key and nothing the servers list.
        BorrowStore store = BorrowStore.open(dir.resolve("borrows"), null, Set.of(group.vendorPublicKey()));
        TmrClientOptions anna = options("anna");
        BorrowedLicense license;
        try (TmrClient client = TmrClient.connect(anna)) {
            LicenseHandle handle = client.access(FIRM, PRODUCT);
            license = store.borrow(client, handle, Duration.ofDays(1), BorrowStore.clientId(anna));
            // The handle became the borrow.
            assertEquals(CmError.INVALID_HANDLE.code(), assertThrows(CmException.class, handle::info).code());
        }
        assertEquals(BorrowedLicense.VIRTUAL_MASK, license.issuer().mask());
        assertEquals(license, store.offlineAccess(FIRM, PRODUCT, "ws-1/anna", Clock.systemUTC()));
        // The ticket carries the vendor's statement of the three backends' containers and keys, and their signatures.
        GroupKeyStatement statement = BorrowedLicense.statementOf(license.ticket());
        assertEquals(group.vendorPublicKey(), statement.vendorKey());
        List<Serial> backends = new ArrayList<>();
        for (int b = 0; b < 3; b++) {
            try (TmrClient direct = TmrClient.connect(TmrClientOptions.builder().addresses(group.backendAddress(b))
                    .build())) {
                ContainerInfo container = direct.listContainers().get(0);
                backends.add(container.serial());
                assertEquals(b, statement.indexOf(container.publicKey()), "backend " + (b + 1) + "'s key in its place");
            }
        }
        assertEquals(backends, statement.members().stream().map(GroupKeyStatement.Member::serial).toList());
        assertTrue(BorrowTicket.GroupSignature.parse(license.ticket().signature()).signatures().size() >= 2);
        // A program trusting another vendor key refuses it.
        BorrowStore otherVendor = BorrowStore.open(dir.resolve("borrows"), null,
                Set.of(Bytes.of(io.opentmr.license.Ed25519.raw(io.opentmr.license.Ed25519.generate().getPublic()))));
        assertEquals(CmError.ACCESS_DENIED.code(), assertThrows(CmException.class,
                () -> otherVendor.offlineAccess(FIRM, PRODUCT, "ws-1/anna", Clock.systemUTC())).code());
        // The node answers once two backends signed; the third's answer may still be on its way.
        for (int b = 0; b < 3; b++) {
            int backend = b;
            Await.equal("backend " + (b + 1) + " holds the borrowed seat", List.of(license.ticketId()),
                    () -> Await.unchecked(() -> group.allocations(backend).stream().map(Allocation::tmrHandleId)
                            .toList()));
        }
        try (TmrClient other = TmrClient.connect(options("bert"))) {
            LicenseHandle second = other.access(FIRM, PRODUCT);
            assertEquals(CmError.NO_MORE_LICENSES.code(), assertThrows(CmException.class,
                    () -> other.access(FIRM, PRODUCT)).code(), "the borrowed seat counts against the quantity");
            // Bert cannot return Anna's ticket: the same error as a backend's.
            assertEquals(CmError.INVALID_HANDLE.code(), assertThrows(CmException.class,
                    () -> other.returnBorrow(license.ticketId())).code());
            second.close();
        }
        try (TmrClient client = TmrClient.connect(anna)) {
            store.returnBorrow(client, license.ticketId());
            // A returned ticket replayed: the node no longer knows it.
            assertEquals(CmError.INVALID_HANDLE.code(), assertThrows(CmException.class,
                    () -> client.returnBorrow(license.ticketId())).code());
            try (LicenseHandle a = client.access(FIRM, PRODUCT); LicenseHandle b = client.access(FIRM, PRODUCT)) {
                assertTrue(a.isOpen() && b.isOpen(), "both seats are free again");
            }
        }
        awaitNoAllocations();
        // The node's tracking log has the borrow and its return, under the ticket's (the handle's) id.
        String ticket = "\"handle\":" + Long.toUnsignedString(license.ticketId());
        Await.until("the borrow and the return tracked", () -> Await.unchecked(() -> {
            Path log = dir.resolve("node/tracking.log");
            List<String> lines = java.nio.file.Files.exists(log) ? java.nio.file.Files.readAllLines(log) : List.of();
            return lines.stream().anyMatch(l -> l.contains("\"event\":\"borrow\"") && l.contains(ticket))
                    && lines.stream().anyMatch(l -> l.contains("\"event\":\"return\"") && l.contains(ticket));
        }));
    }

    @Test
    void aBorrowOutlivesABackendLossAndANodeRestart() throws Exception {
        BorrowStore store = BorrowStore.open(dir.resolve("borrows"));
        TmrClientOptions anna = options("anna");
        BorrowedLicense license;
        try (TmrClient client = TmrClient.connect(anna)) {
            license = store.borrow(client, client.access(FIRM, PRODUCT), Duration.ofDays(1), BorrowStore.clientId(anna));
        }
        group.kill(0);
        group.stopNode();
        startNode();
        try (TmrClient other = TmrClient.connect(options("bert"))) {
            LicenseHandle second = other.access(FIRM, PRODUCT);
            assertEquals(CmError.NO_MORE_LICENSES.code(), assertThrows(CmException.class,
                    () -> other.access(FIRM, PRODUCT)).code(), "after the restart the borrow still holds its seat");
            second.close();
        }
        group.restart(0);
        // The returning backend is re-synced with the node's seats, the borrowed one among them.
        Await.until("backend 1 holds the borrowed seat again", () -> Await.unchecked(() -> group.allocations(0))
                .stream().anyMatch(a -> a.tmrHandleId() == license.ticketId()));
        try (TmrClient client = TmrClient.connect(anna)) {
            store.returnBorrow(client, license.ticketId());
        }
        awaitNoAllocations();
    }

    @Test
    void anExpiredBorrowIsFreedOnTheNodeAndByTheBackendsThemselves() throws Exception {
        TmrClientOptions anna = options("anna");
        long ticketId;
        try (TmrClient client = TmrClient.connect(anna)) {
            ticketId = client.access(FIRM, PRODUCT).borrow(Duration.ofSeconds(3)).ticketId();
        }
        // No node to free it: each backend frees the seat itself at the expiry.
        group.stopNode();
        awaitNoAllocations();
        startNode();
        try (TmrClient client = TmrClient.connect(anna)) {
            Await.until("the node freed the expired seat too", () -> {
                try (LicenseHandle a = client.access(FIRM, PRODUCT); LicenseHandle b = client.access(FIRM, PRODUCT)) {
                    return a.isOpen() && b.isOpen();
                } catch (CmException e) {
                    if (e.code() != CmError.NO_MORE_LICENSES.code()) {
                        throw e;
                    }
                    return false;
                }
            });
            // Returning an expired ticket: no borrow with it any more, as on a backend.
            assertEquals(CmError.INVALID_HANDLE.code(), assertThrows(CmException.class,
                    () -> client.returnBorrow(ticketId)).code());
        }
    }

    @Test
    void aBorrowRepeatedAfterItsAnswerWasLostGetsTheSameTicketAlsoAfterARestart() throws Exception {
        Message.BorrowOk first;
        try (RawConnection raw = new RawConnection(group.nodeAddress())) {
            raw.request(new Message.Hello("raw", "ws-1", "anna", 1));
            Message.AccessOk ok = (Message.AccessOk) raw.request(new Message.Access(FIRM, PRODUCT, 0,
                    io.opentmr.protocol.AccessMode.USERLIMIT));
            first = assertInstanceOf(Message.BorrowOk.class, raw.request(new Message.Borrow(ok.handleId(), 3600)));
        }
        group.stopNode();
        startNode();
        try (RawConnection again = new RawConnection(group.nodeAddress());
             RawConnection stranger = new RawConnection(group.nodeAddress())) {
            again.request(new Message.Hello("raw", "ws-1", "anna", 1));
            assertEquals(first, again.request(new Message.Borrow(first.ticket().ticketId(), 3600)));
            stranger.request(new Message.Hello("raw", "ws-1", "bert", 1));
            Message refused = stranger.request(new Message.Borrow(first.ticket().ticketId(), 3600));
            assertEquals(CmError.INVALID_HANDLE.code(), assertInstanceOf(Message.Error.class, refused).code());
            assertInstanceOf(Message.Ok.class, again.request(new Message.Return(first.ticket().ticketId())));
        }
        awaitNoAllocations();
    }

    @Test
    void aBorrowIsRefusedWithTheBackendsErrorNumbers() throws Exception {
        try (RawConnection raw = new RawConnection(group.nodeAddress())) {
            raw.hello();
            Message.AccessOk ok = (Message.AccessOk) raw.request(new Message.Access(FIRM, PRODUCT, 0,
                    io.opentmr.protocol.AccessMode.USERLIMIT));
            Message tooLong = raw.request(new Message.Borrow(ok.handleId(), Duration.ofDays(8).toSeconds()));
            assertEquals(CmError.INVALID_PARAMETER.code(), assertInstanceOf(Message.Error.class, tooLong).code());
            Message stranger = raw.request(new Message.Borrow(12345, 60));
            assertEquals(CmError.INVALID_HANDLE.code(), assertInstanceOf(Message.Error.class, stranger).code());
            Message unknownTicket = raw.request(new Message.Return(12345));
            assertEquals(CmError.INVALID_HANDLE.code(), assertInstanceOf(Message.Error.class, unknownTicket).code());
        }
    }

    @Test
    void aLicenseFileWithoutTheVendorsStatementStillImportsButItsBorrowsThroughTheNodeAreRefused() throws Exception {
        long older = 62;
        group.issueTmrWithoutStatement(new LicenseIssuer.Request(FIRM, older, 2, true, null, null, null, null,
                Duration.ofDays(7), 0xFF, "older format"));
        try (TmrClient client = TmrClient.connect(options("anna"))) {
            Await.until("the older license listed", () -> client.listContainers().get(0).products().stream()
                    .anyMatch(p -> p.productCode() == older));
            LicenseHandle handle = client.access(FIRM, older);
            CmException refused = assertThrows(CmException.class, () -> handle.borrow(Duration.ofDays(1)));
            assertEquals(CmError.ACCESS_DENIED.code(), refused.code(), refused.getMessage());
            assertTrue(refused.text().contains("statement"), refused.text());
            // Nothing was borrowed: the handle serves on, and each backend holds it as a plain allocation.
            assertTrue(handle.isOpen());
            handle.info();
            // A grant waits for two backends; the third allocates a moment later.
            for (int b = 0; b < 3; b++) {
                int backend = b;
                Await.equal("backend " + (b + 1) + " holds the handle's seat", List.of(handle.handleId()),
                        () -> Await.unchecked(() -> group.allocations(backend).stream().map(Allocation::tmrHandleId)
                                .toList()));
            }
            handle.close();
        }
        awaitNoAllocations();
    }

    @Test
    void aBorrowRefusedAfterOneBackendSignedLeavesNoBorrowedAllocationThere() throws Exception {
        long mixed = 63;
        // Backend 1's copy has the vendor's statement and signs; backends 2 and 3 hold the older format and refuse.
        group.issueTmrWithoutStatementOn(new LicenseIssuer.Request(FIRM, mixed, 2, true, null, null, null, null,
                Duration.ofDays(7), 0xFF, "mixed"), Set.of(1, 2));
        try (TmrClient client = TmrClient.connect(options("anna"))) {
            Await.until("the license listed", () -> client.listContainers().get(0).products().stream()
                    .anyMatch(p -> p.productCode() == mixed));
            LicenseHandle handle = client.access(FIRM, mixed);
            long id = handle.handleId();
            CmException refused = assertThrows(CmException.class, () -> handle.borrow(Duration.ofDays(1)));
            // 231 when both older copies were asked, 130 when one of them did not count yet (one signature).
            assertTrue(refused.code() == CmError.ACCESS_DENIED.code()
                    || refused.code() == CmError.REDUNDANCY_SERVER_MISSING.code(), refused.getMessage());
            // At once, not at the ticket's expiry a day later: backend 1 no longer holds the seat as borrowed, and
            // holds it again as the handle's plain allocation.
            Await.until("backend 1 holds the handle's seat, not borrowed", () -> Await.unchecked(() ->
                    group.borrowedAllocations(0).isEmpty() && group.allocations(0).stream()
                            .anyMatch(a -> a.tmrHandleId() == id)));
            handle.info();
            handle.close();
        }
        awaitNoAllocations();
        for (int b = 0; b < 3; b++) {
            assertEquals(Map.of(), group.borrowedAllocations(b), "backend " + (b + 1));
        }
    }

    @Test
    void anOperatorFreesABorrowedSeatOnTheNodeAndOnEveryBackend() throws Exception {
        TmrClientOptions anna = options("anna");
        long ticketId;
        try (TmrClient client = TmrClient.connect(anna)) {
            ticketId = client.access(FIRM, PRODUCT).borrow(Duration.ofDays(1)).ticketId();
        }
        // Two copies' answers complete a write: the third may still be on its way.
        for (int b = 0; b < 3; b++) {
            int backend = b;
            Await.equal("backend " + (b + 1) + " holds the borrowed seat", List.of(ticketId), () -> Await.unchecked(
                    () -> group.allocations(backend).stream().map(Allocation::tmrHandleId).toList()));
        }
        // What the management route's DELETE /tmr/handles/ID asks.
        TmrLicense.Reply released = forceRelease(ticketId);
        assertInstanceOf(TmrLicense.Released.class, released, released.toString());
        awaitNoAllocations();
        try (TmrClient client = TmrClient.connect(anna)) {
            try (LicenseHandle a = client.access(FIRM, PRODUCT); LicenseHandle b = client.access(FIRM, PRODUCT)) {
                assertTrue(a.isOpen() && b.isOpen(), "both seats are free again");
            }
            // The seat is gone: its client's RETURN and a second release find nothing.
            assertEquals(CmError.INVALID_HANDLE.code(), assertThrows(CmException.class,
                    () -> client.returnBorrow(ticketId)).code());
        }
        TmrLicense.Refused again = assertInstanceOf(TmrLicense.Refused.class, forceRelease(ticketId));
        assertEquals(CmError.INVALID_HANDLE.code(), again.code());
    }

    @Test
    void aHandleReleasedWhileItsBorrowIsBeingSignedGetsNoTicket() throws Exception {
        try (RawConnection raw = new RawConnection(group.nodeAddress())) {
            raw.request(new Message.Hello("raw", "ws-1", "anna", 1));
            long handleId = ((Message.AccessOk) raw.request(new Message.Access(FIRM, PRODUCT, 0,
                    io.opentmr.protocol.AccessMode.USERLIMIT))).handleId();
            // Backends 1 and 2 sign, but their signatures wait: only backend 3's reaches the node before the client
            // releases the handle.
            freezeSignatures();
            Map<Integer, Message> replies = new HashMap<>();
            try {
                raw.send(101, new Message.Borrow(handleId, 3600));
                Await.until("backends 1 and 2 signed", () -> group.link(0).withheldAnswers() >= 1
                        && group.link(1).withheldAnswers() >= 1);
                raw.send(102, new Message.Release(handleId));
                while (!replies.containsKey(102)) {
                    io.opentmr.protocol.Frame frame = raw.read();
                    replies.put(frame.requestId(), frame.message());
                }
            } finally {
                group.link(0).thaw();
                group.link(1).thaw();
            }
            while (!replies.containsKey(101)) {
                io.opentmr.protocol.Frame frame = raw.read();
                replies.put(frame.requestId(), frame.message());
            }
            assertInstanceOf(Message.Ok.class, replies.get(102), "the release: " + replies.get(102));
            // The seat is free: a ticket for it would be one seat more than the license has, usable offline.
            Message borrow = replies.get(101);
            assertEquals(CmError.INVALID_HANDLE.code(), assertInstanceOf(Message.Error.class, borrow,
                    "the borrow of a released handle: " + borrow).code());
        }
        awaitNoAllocations();
        for (int b = 0; b < 3; b++) {
            int backend = b;
            Await.until("backend " + (b + 1) + " holds no borrowed seat", () -> Await.unchecked(
                    () -> group.borrowedAllocations(backend)).isEmpty());
        }
    }

    @Test
    void anotherClientAskingToBorrowAHandleWhoseBorrowIsBeingSignedGetsNoTicket() throws Exception {
        try (RawConnection anna = new RawConnection(group.nodeAddress());
             RawConnection bert = new RawConnection(group.nodeAddress())) {
            anna.request(new Message.Hello("raw", "ws-1", "anna", 1));
            bert.request(new Message.Hello("raw", "ws-2", "bert", 2));
            long handleId = ((Message.AccessOk) anna.request(new Message.Access(FIRM, PRODUCT, 0,
                    io.opentmr.protocol.AccessMode.USERLIMIT))).handleId();
            freezeSignatures();
            Map<Integer, Message> berts = new HashMap<>();
            Message annas;
            try {
                anna.send(201, new Message.Borrow(handleId, 3600));
                Await.until("backends 1 and 2 asked to sign", () -> group.link(0).withheldAnswers() >= 1
                        && group.link(1).withheldAnswers() >= 1);
                bert.send(301, new Message.Borrow(handleId, 3600));
                // Behind Bert's BORROW on its way to the license: once it is answered, the license saw the BORROW.
                bert.send(302, new Message.GetInfo(handleId));
                while (!berts.containsKey(302)) {
                    io.opentmr.protocol.Frame frame = bert.read();
                    berts.put(frame.requestId(), frame.message());
                }
            } finally {
                group.link(0).thaw();
                group.link(1).thaw();
            }
            annas = anna.read().message();
            while (!berts.containsKey(301)) {
                io.opentmr.protocol.Frame frame = bert.read();
                berts.put(frame.requestId(), frame.message());
            }
            Message.BorrowOk ok = assertInstanceOf(Message.BorrowOk.class, annas);
            Message strangers = berts.get(301);
            assertEquals(CmError.INVALID_HANDLE.code(), assertInstanceOf(Message.Error.class, strangers,
                    "a stranger's borrow of Anna's handle: " + strangers).code());
            assertInstanceOf(Message.Ok.class, anna.request(new Message.Return(ok.ticket().ticketId())));
        }
        awaitNoAllocations();
    }

    @Test
    void aNodeThatLostTheLeaseWhileTheBackendsSignedGivesNoTicket() throws Exception {
        // The signatures may wait long at this node; a rival node waits for the lease meanwhile.
        group.stopNode();
        nodeSettings.put("opentmr.node.backend-timeout", "60s");
        startNode();
        TmrNode rival = group.startOtherNode("node-m", "127.0.2.2", Map.of());
        long handleId;
        io.opentmr.protocol.Bytes annasToken;
        try (RawConnection raw = new RawConnection(group.nodeAddress())) {
            raw.request(new Message.Hello("raw", "ws-1", "anna", 1));
            Message access = null;
            // A loaded machine may let the lease lapse a moment (NOT_ACTIVE): asked again, a bounded number of times.
            for (int attempt = 0; attempt < 5 && !(access instanceof Message.AccessOk); attempt++) {
                Await.until("this node serves", () -> group.node().serving());
                access = raw.request(new Message.Access(FIRM, PRODUCT, 0, io.opentmr.protocol.AccessMode.USERLIMIT));
            }
            Message.AccessOk granted = assertInstanceOf(Message.AccessOk.class, access);
            handleId = granted.handleId();
            annasToken = granted.resumeToken();
            // The borrow goes to the copies in use: after the restart a copy may still be re-synced, and then
            // backend 1 or 2 would never be asked to sign.
            group.awaitAllCopiesUsable(PRODUCT);
            Await.until("this node serves", () -> group.node().serving());
            freezeSignatures();
            raw.send(101, new Message.Borrow(handleId, 3600));
            Await.until("backends 1 and 2 signed", () -> group.link(0).withheldAnswers() >= 1
                    && group.link(1).withheldAnswers() >= 1);
            // This node loses backends 1 and 2 and with them the lease; the rival takes it over and rebuilds the
            // handle it does not know of from the backends' allocations, rather than free it.
            group.link(0).cut();
            group.link(1).cut();
            Await.until("the rival serves, this node does not", () -> rival.serving() && !group.node().serving());
            // The signatures given before arrive now: a ticket would hold a seat no serving node counts.
            group.link(0).thaw();
            group.link(1).thaw();
            Message borrow = raw.read().message();
            assertTrue(!(borrow instanceof Message.BorrowOk), "a ticket from a node without the lease: " + borrow);
        }
        // Anna's handle, without a ticket: rebuilt by the rival from the backends' allocations when it listed every
        // backend at its gain of the lease, else freed. Either way the rival counts the seats the backends hold.
        boolean kept;
        try (RawConnection raw = new RawConnection(rival.address())) {
            raw.request(new Message.Hello("raw", "ws-1", "anna", 1));
            Message resumed = raw.request(new Message.Resume(handleId, annasToken));
            kept = !(resumed instanceof Message.Error);
            assertTrue(kept || ((Message.Error) resumed).code() == CmError.INVALID_HANDLE.code(), resumed.toString());
        }
        try (TmrClient bert = TmrClient.connect(TmrClientOptions.builder().addresses(rival.address()).host("ws-2")
                .user("bert").build())) {
            Await.until("the rival's license listed", () -> !bert.listContainers().get(0).products().isEmpty());
            try (LicenseHandle a = bert.access(FIRM, PRODUCT)) {
                assertTrue(a.isOpen());
                if (kept) {
                    CmException full = org.junit.jupiter.api.Assertions.assertThrows(CmException.class,
                            () -> bert.access(FIRM, PRODUCT), "Anna holds the other seat");
                    assertEquals(CmError.NO_MORE_LICENSES.code(), full.code());
                } else {
                    try (LicenseHandle b = bert.access(FIRM, PRODUCT)) {
                        assertTrue(b.isOpen());
                    }
                }
            }
        }
    }

    /** Backends 1 and 2 sign borrows, but their answers wait until the links thaw (the lease's renewals pass). */
    private void freezeSignatures() {
        group.link(0).freeze(request -> request instanceof Message.PeerBorrow);
        group.link(1).freeze(request -> request instanceof Message.PeerBorrow);
    }

    private TmrLicense.Reply forceRelease(long handleId) throws Exception {
        return AskPattern.<VirtualContainer.Command, TmrLicense.Reply>ask(group.node().container(),
                replyTo -> new VirtualContainer.ToHandle(handleId, new TmrLicense.ForceRelease(handleId, "test",
                        replyTo), replyTo), Duration.ofSeconds(10), group.node().actorSystem().scheduler())
                .toCompletableFuture().get(15, java.util.concurrent.TimeUnit.SECONDS);
    }

    private void awaitNoAllocations() throws InterruptedException {
        for (int b = 0; b < 3; b++) {
            int backend = b;
            Await.until("backend " + (b + 1) + " holds no seat", () -> Await.unchecked(() -> group.allocations(backend))
                    .isEmpty());
        }
    }
}
