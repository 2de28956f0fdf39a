package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.license.Ed25519;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.protocol.ServerKind;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.testing.MutableClock;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/** A real backend on loopback, driven through the client SDK and, where the wire matters, raw frames. */
@Timeout(60)
@ExtendWith(NoLeaks.class)
class BackendServerTest {

    private static final long FIRM = 6_000_010;

    @TempDir
    Path dir;

    private final MutableClock clock = new MutableClock(Instant.parse("2026-11-23T12:00:00Z"));
    private final List<AutoCloseable> open = new ArrayList<>();
    private TestBackend backend;

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private TestBackend start(Map<String, Object> overrides) throws Exception {
        backend = new TestBackend(dir, clock, overrides);
        open.add(backend);
        return backend;
    }

    private TmrClient client() {
        TmrClient client = TmrClient.connect(backend.address());
        open.add(client);
        return client;
    }

    private RawConnection raw() throws IOException {
        RawConnection connection = new RawConnection(backend.address());
        open.add(connection);
        return connection;
    }

    private void issueAndImport(long product, long quantity, boolean tmr, Long units, Instant expires,
                                Instant activates, Duration usage, Duration borrowMax) throws Exception {
        backend.issueAndImport(new LicenseIssuer.Request(FIRM, product, quantity, tmr, units, expires, activates, usage,
                borrowMax, 0b1, "product " + product));
    }

    private static void assertCode(CmError expected, Executable call) {
        CmException e = assertThrows(CmException.class, call);
        assertEquals(expected.code(), e.code(), e.getMessage());
    }

    @Test
    void theNewcomerPathQuantityTwoThirdRefusedReleaseTmrCopyRefused() throws Exception {
        start(Map.of());
        issueAndImport(42, 2, false, null, null, null, null, null);
        issueAndImport(43, 3, true, null, null, null, null, null);
        TmrClient client = client();
        assertEquals(ServerKind.BACKEND, client.serverKind());

        LicenseHandle first = client.access(FIRM, 42);
        LicenseHandle second = client.access(FIRM, 42);
        assertCode(CmError.NO_MORE_LICENSES, () -> client.access(FIRM, 42));
        first.close();
        LicenseHandle third = client.access(FIRM, 42);
        assertCode(CmError.ACCESS_DENIED, () -> client.access(FIRM, 43));

        ContainerInfo container = client.listContainers().get(0);
        assertEquals(backend.identity().serial(), container.serial());
        assertEquals(2, container.products().stream().filter(p -> p.productCode() == 42).findFirst().orElseThrow()
                .inUse());
        second.close();
        third.close();
    }

    @Test
    void everyOperationAndItsErrors() throws Exception {
        start(Map.of());
        issueAndImport(42, 5, false, 10L, null, null, null, Duration.ofDays(7));
        issueAndImport(50, 1, false, null, clock.instant().minusSeconds(1), null, null, null);
        issueAndImport(51, 1, false, null, null, clock.instant().plusSeconds(60), null, null);
        issueAndImport(52, 1, false, null, null, null, Duration.ofHours(1), null);
        TmrClient client = client();

        LicenseHandle handle = client.access(FIRM, 42, 0b1, AccessMode.USERLIMIT);
        assertEquals(42, handle.info().product().productCode());
        assertEquals(7, handle.decrementUnits(3));
        assertCode(CmError.UNIT_COUNTER_TOO_SMALL, () -> handle.decrementUnits(8));
        assertEquals(0, handle.decrementUnits(7));
        assertCode(CmError.UNIT_COUNTER_ZERO, () -> handle.decrementUnits(1));

        byte[] encrypted = handle.crypt(CryptDirection.ENCRYPT, 5, "hello".getBytes());
        assertArrayEquals("hello".getBytes(), handle.crypt(CryptDirection.DECRYPT, 5, encrypted));
        assertCode(CmError.INVALID_PARAMETER, () -> handle.crypt(CryptDirection.DECRYPT, 5, new byte[3]));

        assertCode(CmError.ENTRY_NOT_FOUND, () -> client.access(FIRM, 999));
        assertCode(CmError.ENTRY_NOT_FOUND, () -> client.access(FIRM, 42, 0b10, AccessMode.USERLIMIT));
        assertCode(CmError.EXPIRED, () -> client.access(FIRM, 50));
        assertCode(CmError.NOT_YET_ACTIVATED, () -> client.access(FIRM, 51));
        LicenseHandle emergency = client.access(FIRM, 52);
        assertCode(CmError.NO_UNIT_COUNTER, () -> emergency.decrementUnits(1));
        emergency.close();
        clock.advance(Duration.ofHours(1));
        assertCode(CmError.USAGE_PERIOD_ELAPSED, () -> client.access(FIRM, 52));
        clock.advance(Duration.ofHours(-2));
        assertCode(CmError.USAGE_PERIOD_START_INVALID, () -> client.access(FIRM, 52));
        clock.advance(Duration.ofHours(1));

        LicenseHandle exclusive = client.access(FIRM, 42, 0, AccessMode.NOUSERLIMIT);
        assertCode(CmError.EXCLUSIVE_CONFLICT, () -> client.access(FIRM, 42, 0, AccessMode.EXCLUSIVE));
        exclusive.close();

        BorrowTicket ticket = handle.borrow(Duration.ofDays(1));
        ContainerInfo container = client.listContainers().get(0);
        assertTrue(Ed25519.verify(Ed25519.publicKey(container.publicKey().toArray()), ticket.signedPayload(),
                ticket.signature().toArray()), "the ticket verifies against the container key the server lists");
        client.returnBorrow(ticket.ticketId());
        assertCode(CmError.INVALID_HANDLE, () -> client.returnBorrow(ticket.ticketId()));
    }

    @Test
    void aReleasedHandleIsInvalidAndCryptMatchesTheDocumentedTransform() throws Exception {
        start(Map.of());
        issueAndImport(42, 1, false, null, null, null, null, null);
        try (RawConnection connection = raw()) {
            connection.hello();
            Message.AccessOk granted = (Message.AccessOk) connection.request(new Message.Access(FIRM, 42, 0,
                    AccessMode.USERLIMIT));
            assertInstanceOf(Message.Ok.class, connection.request(new Message.Release(granted.handleId())));
            Message again = connection.request(new Message.Release(granted.handleId()));
            assertEquals(CmError.INVALID_HANDLE.code(), ((Message.Error) again).code());
            Message info = connection.request(new Message.GetInfo(granted.handleId()));
            assertEquals(CmError.INVALID_HANDLE.code(), ((Message.Error) info).code());
        }
    }

    @Test
    void protocolMisuseIsAnsweredAndTheConnectionStays() throws Exception {
        start(Map.of());
        RawConnection connection = raw();
        Message early = connection.request(new Message.ListContainers());
        assertEquals(CmError.INVALID_PARAMETER.code(), ((Message.Error) early).code());
        assertTrue(((Message.Error) early).text().contains("before HELLO"));
        assertInstanceOf(Message.HelloOk.class, connection.hello());
        assertEquals(CmError.INVALID_PARAMETER.code(), ((Message.Error) connection.hello()).code());
        assertEquals(CmError.INVALID_PARAMETER.code(),
                ((Message.Error) connection.request(new Message.Ok())).code(), "a reply sent as a request");
        assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(), ((Message.Error) connection.request(
                new Message.PeerHello("node", Bytes.of(new byte[32])))).code(), "not on a client connection");
        assertInstanceOf(Message.Ok.class, connection.request(new Message.KeepAlive()));
    }

    @Test
    void aContextForAnotherContainerIs201() throws Exception {
        start(Map.of());
        RawConnection admin = raw();
        admin.hello();
        Message answer = admin.request(new Message.LicenseContext("", new io.opentmr.protocol.Serial(129, 1)));
        assertEquals(CmError.BOX_NOT_FOUND.code(), ((Message.Error) answer).code());
        Message own = admin.request(new Message.LicenseContext("", backend.identity().serial()));
        assertInstanceOf(Message.LicenseContextOk.class, own);
    }

    /** The tracking log's lines from now on, until the test ends. */
    private ListAppender<ILoggingEvent> trackingLines() {
        ListAppender<ILoggingEvent> lines = new ListAppender<>();
        lines.start();
        Logger trackingLogger = (Logger) LoggerFactory.getLogger(TrackingLog.LOGGER);
        trackingLogger.addAppender(lines);
        open.add(() -> trackingLogger.detachAppender(lines));
        return lines;
    }

    @Test
    void aDeniedHostGets231AndATrackingLineThenTheConnectionCloses() throws Exception {
        ListAppender<ILoggingEvent> tracking = trackingLines();

        start(Map.of("opentmr.backend.access-list.deny", List.of("127.0.0.0/8")));
        RawConnection connection = raw();
        Message reply = connection.hello();
        assertEquals(CmError.ACCESS_DENIED.code(), ((Message.Error) reply).code());
        assertTrue(connection.closedByServer());
        assertTrue(tracking.list.stream().anyMatch(e -> e.getFormattedMessage().contains("\"event\":\"denial\"")
                && e.getFormattedMessage().contains("\"error\":231")), "tracking line for the denial");
    }

    @Test
    void moreRequestsInFlightThanAllowedAre309AndEveryRequestGetsOneAnswer() throws Exception {
        start(Map.of("opentmr.backend.limits.max-in-flight-per-connection", 1));
        issueAndImport(42, 100, false, null, null, null, null, null);
        RawConnection connection = raw();
        connection.hello();
        int requests = 20;
        List<byte[]> frames = new ArrayList<>();
        for (int id = 100; id < 100 + requests; id++) {
            frames.add(RawConnection.encode(new Frame(id, new Message.Access(FIRM, 42, 0, AccessMode.USERLIMIT))));
        }
        connection.sendRaw(RawConnection.concat(frames));
        Map<Integer, Message> answers = new HashMap<>();
        for (int i = 0; i < requests; i++) {
            Frame frame = connection.read();
            assertEquals(null, answers.put(frame.requestId(), frame.message()), "one answer per request");
        }
        long overloaded = answers.values().stream().filter(m -> m instanceof Message.Error e
                && e.code() == CmError.REQUEST_OVERLOAD.code()).count();
        long granted = answers.values().stream().filter(m -> m instanceof Message.AccessOk).count();
        assertTrue(overloaded > 0, "pipelined requests beyond the limit are refused: " + answers.values());
        assertEquals(requests, overloaded + granted);
    }

    @Test
    void aClientThatNeverReadsItsRepliesDoesNotSlowOthers() throws Exception {
        start(Map.of());
        issueAndImport(42, 5, false, null, null, null, null, null);
        RawConnection flooder = raw();
        flooder.hello();
        // Far more than the socket buffers hold: the server must stop reading this client, not queue for it.
        byte[] keepAlive = RawConnection.encode(new Frame(9, new Message.KeepAlive()));
        byte[] burst = new byte[keepAlive.length * 2_000];
        for (int i = 0; i < 2_000; i++) {
            System.arraycopy(keepAlive, 0, burst, i * keepAlive.length, keepAlive.length);
        }
        Thread writer = new Thread(() -> {
            try {
                for (int i = 0; i < 100; i++) {
                    flooder.sendRaw(burst);
                }
            } catch (IOException expectedOnceTheTestCloses) {
                // the socket is closed at the end of the test while this writer is blocked
            }
        }, "flooder");
        writer.setDaemon(true);
        writer.start();

        TmrClient client = client();
        for (int i = 0; i < 50; i++) {
            client.access(FIRM, 42).close();
        }
        assertEquals(0, client.listContainers().get(0).products().get(0).inUse());
        flooder.close();
        writer.join(5_000);
    }

    @Test
    void aConnectionWithoutHelloIsClosedAfterTheHelloTimeout() throws Exception {
        start(Map.of("opentmr.backend.limits.hello-timeout", "300ms"));
        RawConnection silent = raw();
        assertTrue(silent.closedByServer(), "closed within the 5 s read bound");
    }

    @Test
    void connectionsBeyondTheLimitAreRefused() throws Exception {
        start(Map.of("opentmr.backend.limits.max-connections", 2));
        RawConnection first = raw();
        RawConnection second = raw();
        assertInstanceOf(Message.HelloOk.class, first.hello());
        assertInstanceOf(Message.HelloOk.class, second.hello());
        RawConnection third = raw();
        Frame refused = third.read();
        assertEquals(CmError.REQUEST_OVERLOAD.code(), ((Message.Error) refused.message()).code());
        assertTrue(third.closedByServer());
        first.close();
        second.close();
    }

    @Test
    void aBadConfigurationNamesTheKey() {
        com.typesafe.config.Config bad = com.typesafe.config.ConfigFactory.parseMap(Map.of("opentmr.backend.data-dir", dir.toString(),
                "opentmr.backend.cm-act-id", 0)).withFallback(com.typesafe.config.ConfigFactory.load());
        com.typesafe.config.ConfigException e = assertThrows(com.typesafe.config.ConfigException.class,
                () -> BackendSettings.from(bad));
        assertTrue(e.getMessage().contains("opentmr.backend.cm-act-id"), e.getMessage());
        com.typesafe.config.Config badList = com.typesafe.config.ConfigFactory.parseMap(Map.of("opentmr.backend.data-dir", dir.toString(),
                "opentmr.backend.cm-act-id", 7, "opentmr.backend.access-list.allow", List.of("not a/rule")))
                .withFallback(com.typesafe.config.ConfigFactory.load());
        e = assertThrows(com.typesafe.config.ConfigException.class, () -> BackendSettings.from(badList));
        assertTrue(e.getMessage().contains("opentmr.backend.access-list"), e.getMessage());
        com.typesafe.config.Config keepAlive = com.typesafe.config.ConfigFactory.parseMap(Map.of(
                "opentmr.backend.data-dir", dir.toString(), "opentmr.backend.cm-act-id", 7,
                "opentmr.backend.keep-alive-interval", "2m")).withFallback(com.typesafe.config.ConfigFactory.load());
        e = assertThrows(com.typesafe.config.ConfigException.class, () -> BackendSettings.from(keepAlive));
        assertTrue(e.getMessage().contains("opentmr.backend.keep-alive-interval"), e.getMessage());
        assertFalse(e.getMessage().isEmpty());
    }

    /**
     * With {@code threads.actors-on-io} and the durable journal (its writes on the caller): the container decides,
     * writes and answers on the connections' I/O threads.
     */
    @Test
    void aBackendWhoseActorsRunOnItsIoThreadsServes() throws Exception {
        ListAppender<ILoggingEvent> lines = trackingLines();
        Map<String, Object> settings = new HashMap<>(TestBackend.durable(dir));
        settings.put("opentmr.backend.threads.actors-on-io", "on");
        start(settings);
        issueAndImport(42, 2, false, null, null, null, null, null);
        TmrClient client = client();
        LicenseHandle first = client.access(FIRM, 42);
        client.access(FIRM, 42);
        assertCode(CmError.NO_MORE_LICENSES, () -> client.access(FIRM, 42));
        first.close();
        // A chain of work stays on an I/O thread for 1 ms at most, more than the first, not yet compiled,
        // requests take: pairs until one was written there, a few hundred at most.
        List<String> threads = List.of();
        for (int i = 0; i < 500 && threads.stream().noneMatch(thread -> thread.startsWith("opentmr-io-")); i++) {
            client.access(FIRM, 42).close();
            synchronized (lines) {
                threads = lines.list.stream().filter(line -> line.getFormattedMessage().contains("\"access\""))
                        .map(ILoggingEvent::getThreadName).distinct().toList();
            }
        }
        assertTrue(threads.stream().anyMatch(thread -> thread.startsWith("opentmr-io-")),
                "the accesses' tracking lines were written on: " + threads);
    }

    @Test
    void actorsOnTheIoThreadsAreForABackendNoTmrNodeUses() throws Exception {
        Map<String, Object> onIo = Map.of("opentmr.backend.data-dir", dir.toString(), "opentmr.backend.cm-act-id", 7,
                "opentmr.backend.threads.actors-on-io", "on");
        assertFalse(BackendSettings.from(com.typesafe.config.ConfigFactory.parseMap(Map.of("opentmr.backend.data-dir",
                dir.toString(), "opentmr.backend.cm-act-id", 7)).withFallback(com.typesafe.config.ConfigFactory.load()))
                .threads().actorsOnIo(), "off by default");
        assertTrue(BackendSettings.from(com.typesafe.config.ConfigFactory.parseMap(onIo)
                .withFallback(com.typesafe.config.ConfigFactory.load())).threads().actorsOnIo());
        java.nio.file.Path secret = java.nio.file.Files.writeString(dir.resolve("cluster.secret"), "s".repeat(64));
        com.typesafe.config.Config withSecret = com.typesafe.config.ConfigFactory.parseMap(Map.of(
                "opentmr.cluster.secret-file", secret.toString())).withFallback(com.typesafe.config.ConfigFactory
                .parseMap(onIo)).withFallback(com.typesafe.config.ConfigFactory.load());
        com.typesafe.config.ConfigException e = assertThrows(com.typesafe.config.ConfigException.BadValue.class,
                () -> BackendSettings.from(withSecret));
        assertTrue(e.getMessage().contains("opentmr.backend.threads.actors-on-io"), e.getMessage());
    }

}
