package io.opentmr.client;

import static io.opentmr.client.TmrClientTest.assertCode;
import static io.opentmr.client.TmrClientTest.options;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.ServerKind;
import io.opentmr.protocol.testing.NoLeaks;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Connection loss: reconnect, RESUME, NOT_ACTIVE, and requests repeated with their request id. */
@ExtendWith(NoLeaks.class)
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class TmrClientFailoverTest {

    private static final long FIRM = FakeLicenseServer.FIRM;
    private static final long PRODUCT = FakeLicenseServer.PRODUCT;

    private FakeLicenseServer server;
    private TmrClient client;

    @BeforeEach
    void start() {
        server = FakeLicenseServer.start("node-a");
        client = TmrClient.connect(options(server.address()).build());
    }

    @AfterEach
    void stop() {
        client.close();
        server.close();
    }

    @Test
    void aRestartedServerGetsTheHandleResumedWithItsIdAndToken() throws Exception {
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        long firstSession = client.sessionId();
        server.stop();
        server.restart();
        assertEquals(handle.handleId(), handle.info().handleId(), "the handle works in the new session");
        assertTrue(handle.isOpen());
        assertNotEquals(firstSession, client.sessionId());
        assertEquals(1, server.received(MessageType.RESUME));
        assertEquals(2, server.received(MessageType.HELLO));
        assertEquals(1, server.inUse(PRODUCT), "resumed, not granted a second time");
        handle.close();
        assertEquals(0, server.inUse(PRODUCT));
    }

    @Test
    void aRequestMadeWhileTheServerIsDownWaitsForTheReconnect() throws Exception {
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        server.stop();
        // Closing the listener and the connection is done; the client may or may not have noticed yet.
        // Either way the request waits for the next session and is sent there after the RESUME.
        CompletableFuture<Long> decrement = CompletableFuture.supplyAsync(() -> handle.decrementUnits(10));
        server.restart();
        assertEquals(90, decrement.get(10, TimeUnit.SECONDS));
        assertEquals(90, server.units(PRODUCT));
    }

    @Test
    void aRefusedResumeMakesTheHandleInvalid() {
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        server.refuseResume(true);
        server.stop();
        server.restart();
        CmException lost = assertCode(CmError.INVALID_HANDLE, handle::info);
        assertTrue(lost.text().contains("RESUME refused with 106"), lost.text());
        assertFalse(handle.isOpen());
        assertCode(CmError.INVALID_HANDLE, () -> handle.crypt(CryptDirection.ENCRYPT, 1, new byte[] {1}));
        handle.close();
        assertEquals(0, server.received(MessageType.RELEASE), "a lost handle is not released");
        assertEquals(0, client.openHandles());
        try (LicenseHandle fresh = client.access(FIRM, PRODUCT)) {
            assertEquals(fresh.handleId(), fresh.info().handleId(), "the client itself still works");
        }
    }

    /**
     * The node carries out a RELEASE and is gone before it answers (killed, or its lease lost): the handle is released,
     * not lost. The client RESUMEs it on reconnecting, gets 106, and says so without a warning that it lost a handle.
     */
    @Test
    void aHandleWhoseReleaseWasCarriedOutBeforeTheConnectionBrokeIsNotReportedLost() {
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        ch.qos.logback.classic.Logger log = (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger(
                TmrClient.class);
        ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> lines =
                new ch.qos.logback.core.read.ListAppender<>();
        lines.start();
        log.addAppender(lines);
        try {
            server.dropReplyAndCloseOnce(MessageType.RELEASE);
            handle.close();
        } finally {
            log.detachAppender(lines);
        }
        assertFalse(handle.isOpen());
        assertEquals(0, client.openHandles());
        assertEquals(1, server.received(MessageType.RESUME), "resumed once on reconnecting");
        List<String> warnings = lines.list.stream().filter(line -> line.getLevel() == ch.qos.logback.classic.Level.WARN)
                .map(ch.qos.logback.classic.spi.ILoggingEvent::getFormattedMessage).filter(text -> text.contains("lost on"))
                .toList();
        assertEquals(List.of(), warnings, "a released handle reported lost");
    }

    @ParameterizedTest(name = "RESUME answered {0}")
    @ValueSource(ints = {309, 100, 130})
    void aResumeRefusedForAnyReasonBut106KeepsTheHandleAndIsTriedAgain(int code) {
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        server.errorOnce(MessageType.RESUME, code);
        server.stop();
        server.restart();
        assertEquals(handle.handleId(), handle.info().handleId(), "the handle works after the second RESUME");
        assertTrue(handle.isOpen());
        assertEquals(2, server.received(MessageType.RESUME));
        assertEquals(1, client.openHandles());
        assertEquals(1, server.inUse(PRODUCT), "resumed, not granted a second time");
    }

    @Test
    void aResumeAnsweredNotActiveByANodeThatIsNotReadyKeepsTheHandle() {
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        // Restarting: the node said HELLO_OK, then found it is not ready to serve yet (journal, reconciling).
        server.answerOnceWith(MessageType.RESUME, new Message.NotActive(""));
        server.stop();
        server.restart();
        assertEquals(handle.handleId(), handle.info().handleId());
        assertTrue(handle.isOpen());
        assertEquals(2, server.received(MessageType.RESUME));
        assertTrue(server.received(MessageType.HELLO) >= 3, "the not-ready node was left and asked again");
    }

    @Test
    void aResumeWhoseConnectionBreaksKeepsTheHandle() {
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        server.dropReplyAndCloseOnce(MessageType.RESUME);
        server.stop();
        server.restart();
        assertEquals(handle.handleId(), handle.info().handleId());
        assertEquals(2, server.received(MessageType.RESUME));
    }

    @Test
    void moreHandlesThanTheServerTakesRequestsInFlightAreAllResumed() {
        List<LicenseHandle> handles = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            handles.add(client.access(FIRM, PRODUCT, 0, AccessMode.NOUSERLIMIT));
        }
        server.maxInFlight(3);
        server.delay(MessageType.RESUME, Duration.ofMillis(5));
        server.stop();
        server.restart();
        for (LicenseHandle handle : handles) {
            assertEquals(handle.handleId(), handle.info().handleId());
            assertTrue(handle.isOpen());
        }
        assertEquals(40, client.openHandles());
    }

    /**
     * @param batches whether the server takes RESUME_MANY (the handles not waited for go in one); otherwise an older
     *                server, which refuses the type once, and all 200 go as RESUMEs on the connection after
     */
    @ParameterizedTest(name = "server takes RESUME_MANY: {0}")
    @ValueSource(booleans = {true, false})
    void requestsWaitingForTheReconnectGoOutBeforeTheOtherHandlesAreResumed(boolean batches) throws Exception {
        server.knowsResumeMany(batches);
        List<LicenseHandle> handles = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            handles.add(client.access(FIRM, PRODUCT, 0, AccessMode.NOUSERLIMIT));
        }
        // 200 RESUMEs at 50 ms each take several round trips of the client's RESUME window.
        server.delay(MessageType.RESUME, Duration.ofMillis(50));
        server.delay(MessageType.RESUME_MANY, Duration.ofMillis(50));
        server.stop();
        LicenseHandle last = handles.get(handles.size() - 1);
        CompletableFuture<LicenseHandle> access = CompletableFuture.supplyAsync(
                () -> client.access(FIRM, PRODUCT, 0, AccessMode.NOUSERLIMIT));
        CompletableFuture<Long> info = CompletableFuture.supplyAsync(() -> last.info().handleId());
        server.restart();
        access.get(10, TimeUnit.SECONDS).close();
        assertEquals(last.handleId(), info.get(10, TimeUnit.SECONDS), "GET_INFO went out after its handle's RESUME");
        for (LicenseHandle handle : handles) {
            assertEquals(handle.handleId(), handle.info().handleId());
        }
        List<MessageType> after = server.arrivals();
        after = after.subList(after.lastIndexOf(MessageType.HELLO), after.size());
        MessageType resumes = batches ? MessageType.RESUME_MANY : MessageType.RESUME;
        int lastResume = after.lastIndexOf(resumes);
        if (batches) {
            assertEquals(1, after.stream().filter(MessageType.RESUME::equals).count(), "the waited-for handle alone");
            assertEquals(2, after.stream().filter(MessageType.RESUME_MANY::equals).count(),
                    "one handle to learn that the server takes RESUME_MANY, then the 198 others in one");
            assertEquals(199, server.resumedItems(), "each handle resumed once");
        } else {
            assertEquals(200, after.stream().filter(MessageType.RESUME::equals).count(), "each handle resumed once");
            assertEquals(1, server.received(MessageType.RESUME_MANY), "RESUME_MANY refused once, not asked again");
        }
        assertTrue(after.indexOf(MessageType.ACCESS) < lastResume,
                "the waiting ACCESS went out before the last " + resumes + ": " + after.subList(0, 5) + " …");
        assertTrue(after.indexOf(MessageType.GET_INFO) < lastResume,
                "the handle a request waited for was resumed first, and its GET_INFO sent before the last " + resumes);
        assertEquals(200, client.openHandles());
    }

    @Test
    void requestsSentWhileRemainingHandlesAreResumedAreNotRefusedForTheRoomTheResumesTake() {
        List<LicenseHandle> handles = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            handles.add(client.access(FIRM, PRODUCT, 0, AccessMode.NOUSERLIMIT));
        }
        // The server takes 3 requests at once and answers RESUME late: the RESUMEs behind the session fill its room.
        server.maxInFlight(3);
        server.delay(MessageType.RESUME, Duration.ofMillis(50));
        server.stop();
        server.restart();
        for (int i = 0; i < 10; i++) {
            client.access(FIRM, PRODUCT, 0, AccessMode.NOUSERLIMIT).close();
        }
        for (LicenseHandle handle : handles) {
            assertEquals(handle.handleId(), handle.info().handleId());
        }
        assertEquals(40, client.openHandles());
    }

    @Test
    void aNodeThatIsNotReadyIsAskedAgainUntilItServes() throws Exception {
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        server.stop();
        server.answerHelloWith(new Message.NotActive(""));
        server.restart();
        CompletableFuture<Long> decrement = CompletableFuture.supplyAsync(() -> handle.decrementUnits(10));
        assertTrue(server.awaitReceived(MessageType.HELLO, 4, Duration.ofSeconds(5)), "asked again and again");
        assertFalse(decrement.isDone(), "the request waits for the node instead of failing");
        server.answerHelloWith(null);
        assertEquals(90, decrement.get(10, TimeUnit.SECONDS));
        assertTrue(handle.isOpen());
        assertEquals(1, server.received(MessageType.RESUME));
    }

    @Test
    void connectingToANodeThatIsNotReadyFailsWith101SayingSo() {
        server.answerHelloWith(new Message.NotActive(""));
        CmException e = assertCode(CmError.SERVER_NOT_FOUND, () -> TmrClient.connect(options(server.address())
                .connectTimeout(Duration.ofMillis(500)).build()));
        assertTrue(e.text().contains("NOT_ACTIVE"), e.text());
        assertTrue(server.received(MessageType.HELLO) >= 3, "asked more than once within the connect timeout");
    }

    @Test
    void aRequestAnsweredNotActiveByTheOnlyNodeIsSentAgainOnceItServes() {
        server.answerOnceWith(MessageType.ACCESS, new Message.NotActive(""));
        try (LicenseHandle handle = client.access(FIRM, PRODUCT)) {
            List<Integer> ids = server.requestIds(MessageType.ACCESS);
            assertEquals(2, ids.size());
            assertEquals(ids.get(0), ids.get(1), "the same request id");
            assertEquals(1, server.inUse(PRODUCT));
            assertEquals(handle.handleId(), handle.info().handleId());
        }
    }

    @Test
    void aKeepAliveAnsweredNotActiveMovesTheSessionAndItsHandlesToTheActive() throws Exception {
        server.serverKind(ServerKind.TMR_ACTIVE);
        server.keepAliveMillis(30);
        try (FakeLicenseServer twin = server.startTwin("node-b");
             TmrClient watchful = TmrClient.connect(options(server.address()).build())) {
            twin.serverKind(ServerKind.TMR_ACTIVE);
            LicenseHandle handle = watchful.access(FIRM, PRODUCT);
            // Keep-alives that go on reaching a demoted node would let the active one reclaim the handles.
            server.answerOnceWith(MessageType.KEEPALIVE, new Message.NotActive(twin.address()));
            assertTrue(twin.awaitReceived(MessageType.RESUME, 1, Duration.ofSeconds(5)),
                    "the client left the node that answered KEEPALIVE with NOT_ACTIVE");
            assertEquals(handle.handleId(), handle.info().handleId());
            assertEquals(twin.port(), watchful.connectedAddress().getPort());
        }
    }

    @Test
    void aStandbyIsFollowedToTheActiveNode() throws Exception {
        try (FakeLicenseServer active = FakeLicenseServer.start("node-b");
             FakeLicenseServer standby = FakeLicenseServer.start("node-a")) {
            active.serverKind(ServerKind.TMR_ACTIVE);
            standby.answerHelloWith(new Message.NotActive(active.address()));
            try (TmrClient followed = TmrClient.connect(options(standby.address()).build())) {
                assertEquals(ServerKind.TMR_ACTIVE, followed.serverKind());
                assertEquals("node-b", followed.serverName());
                assertEquals(active.port(), followed.connectedAddress().getPort());
                try (LicenseHandle handle = followed.access(FIRM, PRODUCT)) {
                    assertEquals(1, active.inUse(PRODUCT));
                    assertEquals(handle.handleId(), handle.info().handleId());
                }
                assertEquals(1, standby.received(MessageType.HELLO));
                assertEquals(0, standby.received(MessageType.ACCESS));
            }
        }
    }

    @Test
    void aStandbyNamingAConfiguredAddressLeadsToThatAddressAsConfigured() throws Exception {
        try (FakeLicenseServer active = FakeLicenseServer.start("node-b");
             FakeLicenseServer standby = FakeLicenseServer.start("node-a")) {
            active.serverKind(ServerKind.TMR_ACTIVE);
            standby.answerHelloWith(new Message.NotActive(active.address()));
            InetSocketAddress configured = new InetSocketAddress(InetAddress.getByName("127.0.0.1"), active.port());
            try (TmrClient followed = TmrClient.connect(options().addresses(
                    new InetSocketAddress(InetAddress.getByName("127.0.0.1"), standby.port()), configured).build())) {
                assertEquals(ServerKind.TMR_ACTIVE, followed.serverKind());
                assertEquals(1, standby.received(MessageType.HELLO), "NOT_ACTIVE was followed");
                assertEquals(configured, followed.connectedAddress(), "the address as configured, not its text");
            }
        }
    }

    @Test
    void failOverToTheTwinResumesTheHandleThere() throws Exception {
        server.serverKind(ServerKind.TMR_ACTIVE);
        try (FakeLicenseServer twin = server.startTwin("node-b")) {
            twin.serverKind(ServerKind.TMR_STANDBY);
            twin.answerHelloWith(new Message.NotActive(server.address()));
            try (TmrClient twinAware = TmrClient.connect(options(twin.address(), server.address()).build())) {
                assertEquals("node-a", twinAware.serverName(), "the standby sent the client to the active");
                LicenseHandle handle = twinAware.access(FIRM, PRODUCT);
                assertEquals(95, handle.decrementUnits(5));

                server.stop();
                CompletableFuture<Long> duringFailOver = CompletableFuture.supplyAsync(() -> handle.decrementUnits(5));
                twin.answerHelloWith(null);
                twin.serverKind(ServerKind.TMR_ACTIVE);

                assertEquals(90, duringFailOver.get(10, TimeUnit.SECONDS));
                assertEquals("node-b", twinAware.serverName());
                assertEquals(ServerKind.TMR_ACTIVE, twinAware.serverKind());
                assertEquals(twin.port(), twinAware.connectedAddress().getPort());
                assertEquals(1, twin.received(MessageType.RESUME));
                assertEquals(handle.handleId(), handle.info().handleId());
                assertEquals(1, twin.inUse(PRODUCT), "the seat moved with the handle, nothing granted twice");
                handle.close();
                assertEquals(0, twin.inUse(PRODUCT));
            }
        }
    }

    @Test
    void aDemotedNodesNotActiveMovesTheRequestToTheNewActive() {
        try (FakeLicenseServer twin = server.startTwin("node-b")) {
            twin.serverKind(ServerKind.TMR_ACTIVE);
            server.answerOnceWith(MessageType.ACCESS, new Message.NotActive(twin.address()));
            try (LicenseHandle handle = client.access(FIRM, PRODUCT)) {
                assertEquals(twin.port(), client.connectedAddress().getPort());
                assertEquals("node-b", client.serverName());
                assertEquals(server.requestIds(MessageType.ACCESS), twin.requestIds(MessageType.ACCESS),
                        "the same request, sent again where it can be carried out");
                assertEquals(1, twin.inUse(PRODUCT));
                assertEquals(handle.handleId(), handle.info().handleId());
            }
            assertEquals(0, twin.inUse(PRODUCT));
        }
    }

    @Test
    void theNextAddressIsTriedWhenTheFirstIsDown() {
        try (FakeLicenseServer second = FakeLicenseServer.start("node-b")) {
            server.stop();
            try (TmrClient twoAddresses = TmrClient.connect(options(server.address(), second.address()).build())) {
                assertEquals("node-b", twoAddresses.serverName());
                assertEquals(2, twoAddresses.listContainers().get(0).products().size());
            }
        }
    }

    @Test
    void anAddressThatNeverAnswersHelloCostsOneAttemptTimeout() {
        try (FakeLicenseServer second = FakeLicenseServer.start("node-b")) {
            server.neverAnswer(MessageType.HELLO);
            try (TmrClient client2 = TmrClient.connect(options(server.address(), second.address())
                    .attemptTimeout(Duration.ofMillis(200)).connectTimeout(Duration.ofSeconds(5)).build())) {
                assertEquals("node-b", client2.serverName());
                assertEquals(2, server.received(MessageType.HELLO),
                        "the HELLO of this class's client, then one attempt at the silent address");
            }
        }
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // closing a client stuck on the frozen node may take its request timeout
    void aPendingAccessOnAFrozenNodeIsRepeatedAtTheOtherAddressLongBeforeTheRequestTimeout() throws Exception {
        client.close(); // only the client under test says HELLO to the frozen node
        server.serverKind(ServerKind.TMR_ACTIVE);
        try (FakeLicenseServer twin = server.startTwin("node-b");
             TmrClient twinAware = TmrClient.connect(options(server.address(), twin.address())
                     .requestTimeout(Duration.ofSeconds(30)).build())) {
            twin.serverKind(ServerKind.TMR_ACTIVE);
            LicenseHandle held = twinAware.access(FIRM, PRODUCT);
            // SIGSTOP or a black hole: the connection stays open and nothing answers, not even KEEPALIVE.
            server.freeze();
            int hellosBeforeFreeze = server.received(MessageType.HELLO);
            CompletableFuture<LicenseHandle> access = CompletableFuture.supplyAsync(
                    () -> twinAware.access(FIRM, PRODUCT));
            assertTrue(server.awaitReceived(MessageType.ACCESS, 2, Duration.ofSeconds(5)),
                    "the second ACCESS reached the frozen node");

            // A bound on the test, a third of the request timeout: the client must not wait that out.
            try (LicenseHandle granted = access.get(10, TimeUnit.SECONDS)) {
                assertEquals(twin.port(), twinAware.connectedAddress().getPort(), "the frozen node was left");
                assertEquals(hellosBeforeFreeze, server.received(MessageType.HELLO),
                        "the twin was tried first: the frozen node would have cost an attempt timeout");
                assertEquals(server.requestIds(MessageType.ACCESS).get(1), twin.requestIds(MessageType.ACCESS).get(0),
                        "the pending ACCESS, sent again with its request id");
                assertEquals(1, twin.received(MessageType.ACCESS));
                // The waiting ACCESS goes out first; the held handle is resumed behind it.
                assertTrue(twin.awaitReceived(MessageType.RESUME, 1, Duration.ofSeconds(5)),
                        "the held handle moved to the twin too");
                assertEquals(held.handleId(), held.info().handleId());
                assertEquals(granted.handleId(), granted.info().handleId());
                assertEquals(2, twin.inUse(PRODUCT), "two seats: the held one and the new one, none twice");
            }
            held.close();
            assertEquals(0, twin.inUse(PRODUCT));
        }
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // closing a client stuck on the frozen node may take its request timeout
    void aStandbyNamingTheFrozenNodeIsNotFollowedBackToItWhileItTakesOver() throws Exception {
        client.close(); // only the client under test says HELLO to the frozen node
        server.serverKind(ServerKind.TMR_ACTIVE);
        try (FakeLicenseServer twin = server.startTwin("node-b");
             TmrClient twinAware = TmrClient.connect(options(server.address(), twin.address())
                     .requestTimeout(Duration.ofSeconds(30)).build())) {
            twin.answerHelloWith(new Message.NotActive(server.address()));
            LicenseHandle held = twinAware.access(FIRM, PRODUCT);
            server.freeze();
            int hellosBeforeFreeze = server.received(MessageType.HELLO);
            CompletableFuture<Long> decrement = CompletableFuture.supplyAsync(() -> held.decrementUnits(5));
            // The standby still names the frozen node as the active one, as a real standby does until it has the lease.
            assertTrue(twin.awaitReceived(MessageType.HELLO, 3, Duration.ofSeconds(20)), "the standby was asked");
            twin.answerHelloWith(null);
            twin.serverKind(ServerKind.TMR_ACTIVE);

            assertEquals(95, decrement.get(20, TimeUnit.SECONDS));
            assertEquals(twin.port(), twinAware.connectedAddress().getPort());
            int frozenHellos = server.received(MessageType.HELLO) - hellosBeforeFreeze;
            // Followed, each of the standby's answers would cost the frozen node a second visit per round.
            assertTrue(frozenHellos < twin.received(MessageType.HELLO), "HELLOs to the frozen node " + frozenHellos
                    + ", to the standby " + twin.received(MessageType.HELLO));
        }
    }

    @Test
    void aSlowAnswerFromANodeThatAnswersTheProbeIsWaitedForOnTheSameConnection() throws Exception {
        try (FakeLicenseServer twin = server.startTwin("node-b");
             TmrClient patient = TmrClient.connect(options(server.address(), twin.address())
                     .requestTimeout(Duration.ofSeconds(30)).build())) {
            int hellos = server.received(MessageType.HELLO);
            // Busy, not dead: the answer takes longer than the silence that starts a probe (1 s by default),
            // KEEPALIVE is answered at once.
            server.delay(MessageType.ACCESS, Duration.ofSeconds(4));
            try (LicenseHandle handle = patient.access(FIRM, PRODUCT)) {
                assertTrue(server.received(MessageType.KEEPALIVE) >= 1, "the silence was probed with KEEPALIVE");
                assertEquals(1, server.received(MessageType.ACCESS), "answered where it was sent, not repeated");
                assertEquals(hellos, server.received(MessageType.HELLO), "the connection was kept");
                assertEquals(0, twin.received(MessageType.HELLO), "the other address was not tried");
                assertEquals(server.port(), patient.connectedAddress().getPort());
                assertEquals(1, server.inUse(PRODUCT));
                assertEquals(handle.handleId(), handle.info().handleId());
            }
        }
    }

    @Test
    void aLostAccessReplyIsRepeatedWithTheSameRequestIdAndGrantedOnce() {
        server.dropReplyAndCloseOnce(MessageType.ACCESS);
        try (LicenseHandle handle = client.access(FIRM, PRODUCT)) {
            List<Integer> ids = server.requestIds(MessageType.ACCESS);
            assertEquals(2, ids.size());
            assertEquals(ids.get(0), ids.get(1), "the retry carries the original request id");
            assertEquals(1, server.inUse(PRODUCT), "one seat, not two");
            assertEquals(1, server.handleCount());
            assertEquals(handle.handleId(), handle.info().handleId());
        }
        assertEquals(0, server.inUse(PRODUCT));
    }

    @Test
    void aLostDecrementReplyIsRepeatedAndAppliedOnce() {
        try (LicenseHandle handle = client.access(FIRM, PRODUCT)) {
            server.dropReplyAndCloseOnce(MessageType.DECREMENT_UNITS);
            assertEquals(95, handle.decrementUnits(5));
            assertEquals(95, server.units(PRODUCT), "decremented once");
            List<Integer> ids = server.requestIds(MessageType.DECREMENT_UNITS);
            assertEquals(2, ids.size());
            assertEquals(ids.get(0), ids.get(1));
            assertEquals(1, server.received(MessageType.RESUME), "the handle was resumed before the retry");
        }
    }

    @Test
    void aLostBorrowReplyIsANetworkFaultNotARetry() {
        try (LicenseHandle handle = client.access(FIRM, PRODUCT)) {
            server.dropReplyAndCloseOnce(MessageType.BORROW);
            CmException e = assertCode(CmError.NETWORK_FAULT, () -> handle.borrow(Duration.ofMinutes(5)));
            assertTrue(e.text().contains("not idempotent"), e.text());
            assertEquals(1, server.received(MessageType.BORROW));
            assertEquals(handle.handleId(), handle.info().handleId(), "the handle survives the reconnect");
        }
    }

    @Test
    void anUnansweredKeepAliveTriggersAReconnect() throws Exception {
        server.keepAliveMillis(30);
        server.neverAnswer(MessageType.KEEPALIVE);
        try (TmrClient watchful = TmrClient.connect(options(server.address())
                .requestTimeout(Duration.ofMillis(200)).build());
             LicenseHandle handle = watchful.access(FIRM, PRODUCT)) {
            assertTrue(server.awaitReceived(MessageType.RESUME, 1, Duration.ofSeconds(10)),
                    "a silent server is left and the handle resumed on a new connection");
            assertTrue(server.received(MessageType.HELLO) >= 3);
            assertEquals(FIRM, handle.firmCode());
        }
    }

    @Test
    void requestsWhileNoServerAnswersFailWith101() {
        try (TmrClient shortWait = TmrClient.connect(options(server.address())
                .requestTimeout(Duration.ofMillis(400)).build())) {
            LicenseHandle handle = shortWait.access(FIRM, PRODUCT);
            server.stop();
            CmException e = assertCode(CmError.SERVER_NOT_FOUND, handle::info);
            assertTrue(e.text().contains(server.address()), e.text());
            assertCode(CmError.SERVER_NOT_FOUND, shortWait::listContainers);
        }
    }

    @Test
    void roundsOfAddressesAreAtMost200MsApartForARequestTimeoutAfterASessionWasLost() {
        TmrClientOptions options = TmrClientOptions.builder().addresses("127.0.0.1:1")
                .reconnectBackoff(java.time.Duration.ofMillis(100), java.time.Duration.ofSeconds(1))
                .requestTimeout(java.time.Duration.ofSeconds(10)).build();
        long second = java.time.Duration.ofSeconds(1).toNanos();
        assertEquals(200, ClientConnection.maxPauseMillis(options, 0), "just lost: a fail-over");
        assertEquals(200, ClientConnection.maxPauseMillis(options, 10 * second - 1));
        assertEquals(1_000, ClientConnection.maxPauseMillis(options, 10 * second), "past the request timeout");
        assertEquals(1_000, ClientConnection.maxPauseMillis(options, Long.MAX_VALUE), "never connected");
        TmrClientOptions tight = TmrClientOptions.builder().addresses("127.0.0.1:1")
                .reconnectBackoff(java.time.Duration.ofMillis(50), java.time.Duration.ofMillis(150)).build();
        assertEquals(150, ClientConnection.maxPauseMillis(tight, 0), "never above the configured maximum");
    }
}
