package io.opentmr.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.ServerKind;
import io.opentmr.protocol.testing.NoLeaks;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Every SDK operation against the fake server, and every way an error reaches the caller. */
@ExtendWith(NoLeaks.class)
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class TmrClientTest {

    private static final long FIRM = FakeLicenseServer.FIRM;
    private static final long PRODUCT = FakeLicenseServer.PRODUCT;

    private FakeLicenseServer server;
    private TmrClient client;

    static TmrClientOptions.Builder options(String... addresses) {
        return TmrClientOptions.builder()
                .addresses(addresses)
                .clientName("sdk-test")
                .host("ws-17")
                .user("anna")
                .pid(4242)
                .connectTimeout(Duration.ofSeconds(2))
                .attemptTimeout(Duration.ofSeconds(1))
                .requestTimeout(Duration.ofSeconds(2))
                .reconnectBackoff(Duration.ofMillis(20), Duration.ofMillis(200));
    }

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
    void helloReportsTheServer() throws Exception {
        assertEquals(ServerKind.BACKEND, client.serverKind());
        assertEquals("node-a", client.serverName());
        assertEquals(server.port(), client.connectedAddress().getPort());
        assertTrue(server.awaitReceived(MessageType.HELLO, 1, Duration.ofSeconds(5)));
    }

    @Test
    void requestIdsComeFromOneCounterForTheWholeProcess() {
        // A node recognises a repeated ACCESS by the client's address, host, user and pid plus its request id.
        // Two clients of one process share all but the id, so no two of their requests may share one either.
        try (TmrClient second = TmrClient.connect(options(server.address()).build())) {
            client.listContainers();
            second.listContainers();
            client.listContainers();
            List<Integer> ids = server.requestIds(MessageType.LIST_CONTAINERS);
            assertEquals(3, ids.size());
            for (int i = 1; i < ids.size(); i++) {
                int step = ids.get(i) - ids.get(i - 1);
                assertTrue(step > 0 && step < 10, "ids follow each other across clients: " + ids);
            }
        }
    }

    @Test
    void listsContainers() {
        List<ContainerInfo> containers = client.listContainers();
        assertEquals(1, containers.size());
        assertEquals(FakeLicenseServer.CONTAINER, containers.get(0).serial());
        assertEquals(2, containers.get(0).products().size());
    }

    @Test
    void accessInfoAndCloseTakeAndGiveBackASeat() {
        try (LicenseHandle handle = client.access(FIRM, PRODUCT)) {
            assertEquals(1, server.inUse(PRODUCT));
            assertEquals(FakeLicenseServer.CONTAINER, handle.container());
            assertEquals(AccessMode.USERLIMIT, handle.accessMode());
            Message.Info info = handle.info();
            assertEquals(handle.handleId(), info.handleId());
            assertEquals(PRODUCT, info.product().productCode());
            assertEquals(1, info.product().inUse());
            assertEquals(1, client.openHandles());
        }
        assertEquals(0, server.inUse(PRODUCT));
        assertEquals(0, client.openHandles());
    }

    @Test
    void accessAsyncAndCloseAsyncTakeAndGiveBackASeatWithoutACallerThread() throws Exception {
        // A pair chained on the I/O thread, as a caller with no thread per request uses it.
        CompletableFuture<Long> pair = client.accessAsync(FIRM, PRODUCT, 0, AccessMode.USERLIMIT)
                .thenCompose(handle -> {
                    assertEquals(1, server.inUse(PRODUCT));
                    assertTrue(handle.isOpen());
                    return handle.closeAsync().thenApply(released -> handle.handleId());
                });
        long handleId = pair.get(5, TimeUnit.SECONDS);
        assertEquals(0, server.inUse(PRODUCT));
        assertEquals(0, client.openHandles());
        assertEquals(1, server.received(MessageType.RELEASE));
        assertNotEquals(0, handleId);
    }

    @Test
    void anAsynchronousRefusalFailsTheFutureWithTheServersNumber() {
        server.errorOnce(MessageType.ACCESS, 212);
        ExecutionException refused = assertThrows(ExecutionException.class,
                () -> client.accessAsync(FIRM, PRODUCT, 0, AccessMode.USERLIMIT).get(5, TimeUnit.SECONDS));
        assertEquals(212, assertInstanceOf(CmException.class, refused.getCause()).code());
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        server.errorOnce(MessageType.RELEASE, 106);
        assertDoesNotThrow(() -> handle.closeAsync().get(5, TimeUnit.SECONDS), "106: the handle is gone already");
        assertTrue(handle.closeAsync().isDone(), "a second close has nothing to send");
        assertEquals(1, server.received(MessageType.RELEASE));
    }

    @Test
    void aBlockingCallOnTheIoThreadIsRefusedInsteadOfWaitingForItself() throws Exception {
        // The answer comes late, so the callback below is attached first and runs on the I/O thread.
        server.delay(MessageType.ACCESS, Duration.ofMillis(300));
        CompletableFuture<Throwable> seen = client.accessAsync(FIRM, PRODUCT, 0, AccessMode.USERLIMIT)
                .thenApply(handle -> {
                    try {
                        handle.info();
                        return null;
                    } catch (IllegalStateException e) {
                        handle.closeAsync();
                        return e;
                    }
                });
        Throwable refused = seen.get(5, TimeUnit.SECONDS);
        assertNotNull(refused, "info() on the I/O thread would wait its whole timeout for that thread");
        assertTrue(refused.getMessage().contains("I/O thread"), refused.getMessage());
        // The pair's release went out from the I/O thread without waiting.
        assertTrue(server.awaitReceived(MessageType.RELEASE, 1, Duration.ofSeconds(5)));
    }

    @Test
    void aReleaseTheClientRefusesBeforeSendingItLeavesTheHandleOpenToBeClosedLater() throws Exception {
        try (TmrClient small = TmrClient.connect(options(server.address()).maxInFlight(2).build())) {
            LicenseHandle handle = small.access(FIRM, PRODUCT);
            server.delay(MessageType.ACCESS, Duration.ofMillis(500));
            CompletableFuture<LicenseHandle> first = small.accessAsync(FIRM, PRODUCT, 0, AccessMode.USERLIMIT);
            CompletableFuture<LicenseHandle> second = small.accessAsync(FIRM, PRODUCT, 0, AccessMode.USERLIMIT);

            ExecutionException refused = assertThrows(ExecutionException.class,
                    () -> handle.closeAsync().get(5, TimeUnit.SECONDS));
            assertEquals(309, assertInstanceOf(CmException.class, refused.getCause()).code());
            assertTrue(handle.isOpen(), "nothing was sent: the seat is still the handle's");

            server.delay(MessageType.ACCESS, Duration.ZERO);
            first.get(5, TimeUnit.SECONDS).close();
            second.get(5, TimeUnit.SECONDS).close();
            handle.close();
            assertFalse(handle.isOpen());
            assertEquals(0, server.inUse(PRODUCT), "every seat given back, the refused RELEASE's too");
            assertEquals(0, small.openHandles());
        }
    }

    @Test
    void aSecondCloseWaitsForTheFirstRelease() throws Exception {
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        server.delay(MessageType.RELEASE, Duration.ofMillis(300));
        CompletableFuture<Void> first = handle.closeAsync();
        assertSame(first, handle.closeAsync(), "done only when the server has released it");
        first.get(5, TimeUnit.SECONDS);
        assertEquals(0, server.inUse(PRODUCT));
        assertEquals(1, server.received(MessageType.RELEASE));
    }

    @Test
    void closingAnOpenHandleOrTheClientOnTheIoThreadIsRefusedBeforeAnythingIsSent() throws Exception {
        server.delay(MessageType.ACCESS, Duration.ofMillis(300));
        CompletableFuture<List<Throwable>> seen = client.accessAsync(FIRM, PRODUCT, 0, AccessMode.USERLIMIT)
                .thenApply(handle -> {
                    List<Throwable> refusals = new java.util.ArrayList<>();
                    for (Executable blocking : List.<Executable>of(handle::close, client::close, client::openHandles)) {
                        try {
                            blocking.execute();
                        } catch (Throwable e) {
                            refusals.add(e);
                        }
                    }
                    if (handle.isOpen()) {
                        handle.closeAsync();
                    } else {
                        refusals.add(null);
                    }
                    return refusals;
                });
        List<Throwable> refusals = seen.get(5, TimeUnit.SECONDS);
        assertFalse(refusals.contains(null), "the refused close left the handle open");
        assertEquals(3, refusals.size(), "close, close of the client, openHandles: " + refusals);
        refusals.forEach(e -> assertInstanceOf(IllegalStateException.class, e));
        assertTrue(server.awaitReceived(MessageType.RELEASE, 1, Duration.ofSeconds(5)), "closeAsync still works");
        assertEquals(1, server.received(MessageType.RELEASE), "the refused close sent nothing");
    }

    @Test
    void accessWithFeatureBitsAndMode() {
        try (LicenseHandle handle = client.access(FIRM, PRODUCT, 0b0101, AccessMode.NOUSERLIMIT)) {
            assertEquals(AccessMode.NOUSERLIMIT, handle.info().accessMode());
            assertEquals(0b0101, handle.featureBits());
            assertEquals(0, server.inUse(PRODUCT), "NOUSERLIMIT takes no seat");
        }
        CmException missingFeature = assertThrows(CmException.class,
                () -> client.access(FIRM, PRODUCT, 0b1000, AccessMode.USERLIMIT));
        assertEquals(CmError.ENTRY_NOT_FOUND, missingFeature.error());
        assertCode(CmError.ENTRY_NOT_FOUND, () -> client.access(FIRM, 999));
    }

    @Test
    void cryptRoundTrips() {
        byte[] plain = "challenge".getBytes(StandardCharsets.UTF_8);
        try (LicenseHandle handle = client.access(FIRM, PRODUCT)) {
            byte[] encrypted = handle.crypt(CryptDirection.ENCRYPT, 0x1234, plain);
            assertFalse(Arrays.equals(plain, encrypted));
            assertArrayEquals(plain, handle.crypt(CryptDirection.DECRYPT, 0x1234, encrypted));
        }
    }

    @Test
    void decrementUnitsAndItsErrors() {
        try (LicenseHandle handle = client.access(FIRM, PRODUCT)) {
            assertEquals(95, handle.decrementUnits(5));
            assertEquals(95, server.units(PRODUCT));
            assertCode(CmError.UNIT_COUNTER_TOO_SMALL, () -> handle.decrementUnits(96));
            assertEquals(0, handle.decrementUnits(95));
            assertCode(CmError.UNIT_COUNTER_ZERO, () -> handle.decrementUnits(1));
        }
        try (LicenseHandle noCounter = client.access(FIRM, FakeLicenseServer.SINGLE_SEAT)) {
            assertCode(CmError.NO_UNIT_COUNTER, () -> noCounter.decrementUnits(1));
        }
    }

    @Test
    void borrowAndReturn() {
        try (LicenseHandle handle = client.access(FIRM, PRODUCT)) {
            BorrowTicket ticket = handle.borrow(Duration.ofHours(1));
            assertEquals(PRODUCT, ticket.productCode());
            assertEquals(FakeLicenseServer.CONTAINER, ticket.issuer());
            client.returnBorrow(ticket.ticketId());
            assertCode(CmError.ENTRY_NOT_FOUND, () -> client.returnBorrow(ticket.ticketId()));
        }
    }

    @Test
    void noMoreLicenses() {
        try (LicenseHandle only = client.access(FIRM, FakeLicenseServer.SINGLE_SEAT)) {
            CmException refused = assertCode(CmError.NO_MORE_LICENSES,
                    () -> client.access(FIRM, FakeLicenseServer.SINGLE_SEAT));
            assertTrue(refused.text().contains("seats are taken"), refused.text());
            assertTrue(only.isOpen());
        }
        assertDoesNotThrow(() -> client.access(FIRM, FakeLicenseServer.SINGLE_SEAT).close());
    }

    @ParameterizedTest
    @ValueSource(ints = {130, 213, 231, 309, 35, 999})
    void everyServerErrorNumberReachesTheCaller(int code) {
        server.errorOnce(MessageType.ACCESS, code);
        CmException e = assertThrows(CmException.class, () -> client.access(FIRM, PRODUCT));
        assertEquals(code, e.code());
        assertEquals(CmError.fromCode(code), e.error());
        assertEquals("forced by the test", e.text());
        assertTrue(e.getMessage().contains(Integer.toString(code)), e.getMessage());
        assertEquals(0, server.inUse(PRODUCT));
    }

    @Test
    void serverSideInvalidHandle() {
        try (LicenseHandle handle = client.access(FIRM, PRODUCT)) {
            server.errorOnce(MessageType.GET_INFO, 106);
            assertCode(CmError.INVALID_HANDLE, handle::info);
            assertEquals(handle.handleId(), handle.info().handleId());
        }
    }

    @Test
    void aClosedHandleThrows106AndClosesOnce() {
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        handle.close();
        handle.close();
        assertEquals(1, server.received(MessageType.RELEASE));
        assertFalse(handle.isOpen());
        assertCode(CmError.INVALID_HANDLE, handle::info);
        assertCode(CmError.INVALID_HANDLE, () -> handle.crypt(CryptDirection.ENCRYPT, 1, new byte[1]));
    }

    @Test
    void closingTheClientReleasesItsHandlesAndEndsIt() {
        LicenseHandle first = client.access(FIRM, PRODUCT);
        LicenseHandle second = client.access(FIRM, PRODUCT);
        assertEquals(2, server.inUse(PRODUCT));
        client.close();
        client.close();
        assertEquals(0, server.inUse(PRODUCT));
        assertFalse(first.isOpen());
        assertFalse(second.isOpen());
        assertDoesNotThrow(first::close);
        assertCode(CmError.NETWORK_FAULT, client::listContainers);
    }

    @Test
    void keepAlivesAreSentAtTheServersInterval() throws Exception {
        server.keepAliveMillis(30);
        try (TmrClient fast = TmrClient.connect(options(server.address()).build())) {
            assertTrue(server.awaitReceived(MessageType.KEEPALIVE, 3, Duration.ofSeconds(10)),
                    "three keep-alives at a 30 ms interval");
            assertEquals(FakeLicenseServer.CONTAINER, fast.listContainers().get(0).serial());
        }
    }

    @Test
    void aRequestWithoutAnswerFailsWithinItsTimeout() {
        server.delay(MessageType.GET_INFO, Duration.ofSeconds(30));
        try (TmrClient impatient = TmrClient.connect(options(server.address())
                .requestTimeout(Duration.ofMillis(300)).build());
             LicenseHandle handle = impatient.access(FIRM, PRODUCT)) {
            CmException e = assertCode(CmError.NETWORK_FAULT, handle::info);
            assertTrue(e.text().contains("no answer to GET_INFO"), e.text());
            assertEquals(95, handle.decrementUnits(5), "the connection is still usable");
        }
    }

    @Test
    void aHandleGrantedAfterItsAccessTimedOutIsReleased() throws Exception {
        server.delay(MessageType.ACCESS, Duration.ofMillis(600));
        try (TmrClient impatient = TmrClient.connect(options(server.address())
                .requestTimeout(Duration.ofMillis(200)).build())) {
            assertCode(CmError.NETWORK_FAULT, () -> impatient.access(FIRM, PRODUCT));
            assertTrue(server.awaitReceived(MessageType.RELEASE, 1, Duration.ofSeconds(10)),
                    "the late grant is given back at once");
            assertEquals(0, impatient.openHandles());
            assertEquals(0, server.handleCount());
        }
    }

    @Test
    void closingWhileNoServerAnswersIsQuickAndEndsTheHandles() {
        LicenseHandle handle = client.access(FIRM, PRODUCT);
        server.stop();
        client.close();
        assertFalse(handle.isOpen());
        assertDoesNotThrow(handle::close);
    }

    @Test
    void theClientsOwnInFlightLimitFailsFastWith309() throws Exception {
        server.neverAnswer(MessageType.GET_INFO);
        try (TmrClient single = TmrClient.connect(options(server.address()).maxInFlight(1)
                .requestTimeout(Duration.ofMillis(1500)).build())) {
            LicenseHandle handle = single.access(FIRM, PRODUCT);
            CompletableFuture<Message.Info> stuck = CompletableFuture.supplyAsync(handle::info);
            assertTrue(server.awaitReceived(MessageType.GET_INFO, 1, Duration.ofSeconds(5)));
            CmException overload = assertCode(CmError.REQUEST_OVERLOAD, single::listContainers);
            assertTrue(overload.text().contains("maxInFlight"), overload.text());
            Throwable timedOut = assertThrows(ExecutionException.class, () -> stuck.get(10, TimeUnit.SECONDS))
                    .getCause();
            assertEquals(CmError.NETWORK_FAULT, ((CmException) timedOut).error());
            assertEquals(1, single.listContainers().size(), "the permit came back with the timeout");
        }
    }

    @Test
    void helloRefusedIsTheServersError() {
        server.answerHelloWith(new Message.Error(CmError.ACCESS_DENIED, "host ws-17 is denied"));
        CmException e = assertThrows(CmException.class, () -> TmrClient.connect(options(server.address())
                .connectTimeout(Duration.ofMillis(500)).build()));
        assertEquals(CmError.ACCESS_DENIED, e.error());
        assertEquals("host ws-17 is denied", e.text());
    }

    @Test
    void serverNotFoundWhenNothingListens() throws Exception {
        int freePort;
        try (ServerSocket probe = new ServerSocket(0)) {
            freePort = probe.getLocalPort();
        }
        CmException e = assertThrows(CmException.class, () -> TmrClient.connect(
                options("127.0.0.1:" + freePort).connectTimeout(Duration.ofMillis(400)).build()));
        assertEquals(CmError.SERVER_NOT_FOUND, e.error());
        assertTrue(e.text().contains(Integer.toString(freePort)), e.text());
    }

    @Test
    void addressesParse() {
        assertEquals(22350, TmrClientOptions.parseAddress("tmr.example.com").getPort());
        assertEquals("tmr.example.com", TmrClientOptions.parseAddress("tmr.example.com:1234").getHostString());
        assertEquals("::1", TmrClientOptions.parseAddress("[::1]:1234").getHostString());
        assertEquals(1234, TmrClientOptions.parseAddress("[::1]:1234").getPort());
        assertThrows(IllegalArgumentException.class, () -> TmrClientOptions.parseAddress("::1"));
        assertThrows(IllegalArgumentException.class, () -> TmrClientOptions.parseAddress("host:99999"));
        assertThrows(IllegalArgumentException.class, () -> TmrClientOptions.parseAddress(":80"));
        assertThrows(IllegalArgumentException.class, () -> TmrClientOptions.builder().build());
        TmrClientOptions defaults = TmrClientOptions.builder().addresses("h").build();
        assertNotEquals("", defaults.clientName());
        assertEquals(ProcessHandle.current().pid() & 0xFFFF_FFFFL, defaults.pid());
        assertNull(new CmException(4711, "x").error());
    }

    static CmException assertCode(CmError expected, Executable call) {
        CmException e = assertThrows(CmException.class, call);
        assertEquals(expected.code(), e.code(), e.getMessage());
        return e;
    }
}
