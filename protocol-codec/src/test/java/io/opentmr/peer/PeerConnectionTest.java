package io.opentmr.peer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.channel.Channel;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.EventExecutor;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.CodecLimits;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.protocol.testing.AllAtOnce;
import io.opentmr.protocol.testing.NoLeaks;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** The TMR node's peer client against a backend's peer side on loopback. */
@ExtendWith(NoLeaks.class)
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class PeerConnectionTest {

    private static final PeerOptions OPTIONS = new PeerOptions(Duration.ofSeconds(5), Duration.ofSeconds(5), 64,
            CodecLimits.DEFAULT);

    private NioEventLoopGroup group;
    private FakeBackend backend;
    private final List<PeerConnection> connections = new ArrayList<>();

    @BeforeEach
    void start() {
        group = new NioEventLoopGroup(2, new DefaultThreadFactory("node-io", true));
        backend = FakeBackend.start();
    }

    @AfterEach
    void stop() {
        connections.forEach(PeerConnection::close);
        for (PeerConnection connection : connections) {
            connection.closeFuture().orTimeout(5, TimeUnit.SECONDS).join();
        }
        backend.close();
        group.shutdownGracefully(0, 100, TimeUnit.MILLISECONDS).syncUninterruptibly();
    }

    private CompletableFuture<PeerConnection> connecting(PeerAuth auth, PeerOptions options) {
        return PeerConnection.connect(backend.address(), "node-a", auth, options, group);
    }

    private PeerConnection connect(PeerOptions options) throws Exception {
        PeerConnection connection = connecting(FakeBackend.auth(FakeBackend.SECRET), options).get(5, TimeUnit.SECONDS);
        connections.add(connection);
        return connection;
    }

    /** Why the future failed; it must fail within 5 s. */
    private static Throwable failure(CompletableFuture<?> future) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> future.get(5, TimeUnit.SECONDS));
        return e.getCause();
    }

    private static int code(CompletableFuture<?> future) {
        return assertInstanceOf(CmFailure.class, failure(future)).code();
    }

    /** A request that carries a number the fake backend can echo. */
    private static Message numbered(long n) {
        return new Message.ListAllocations(n, 10);
    }

    private static long echoed(Message reply) {
        return ((Message.UnitsOk) reply).remaining();
    }

    // ---------------------------------------------------------------- the challenge

    @Test
    void theChallengeAuthenticatesBothSidesAndRequestsFollow() throws Exception {
        PeerConnection connection = connect(OPTIONS);
        Message.PeerHello hello = backend.nextHello();
        assertEquals("node-a", hello.nodeName());
        assertEquals(PeerAuth.NONCE_BYTES, hello.nodeNonce().length(), "a fresh 32-byte nonce");
        assertTrue(connection.isOpen());
        assertEquals("backend-1", connection.backendName());
        assertEquals(backend.address(), connection.address());

        CompletableFuture<Message> inventory = connection.request(new Message.Inventory());
        FakeBackend.Request request = backend.nextRequest();
        assertInstanceOf(Message.Inventory.class, request.message());
        request.reply(new Message.InventoryOk(List.of()));
        assertEquals(new Message.InventoryOk(List.of()), inventory.get(5, TimeUnit.SECONDS));
    }

    @Test
    void eachConnectionSendsItsOwnNonce() throws Exception {
        connect(OPTIONS);
        connect(OPTIONS);
        Bytes first = backend.nextHello().nodeNonce();
        Bytes second = backend.nextHello().nodeNonce();
        assertFalse(first.equals(second), "a nonce is never reused");
    }

    /** The connect fails with a {@link CmFailure}, and the connection does not stay open. */
    private CmFailure refused(FakeBackend.Challenge how, String nodeSecret) throws Exception {
        backend.challenge(how);
        Throwable failure = failure(connecting(FakeBackend.auth(nodeSecret), OPTIONS));
        assertTrue(backend.nextConnection().closeFuture().await(5, TimeUnit.SECONDS), "the connection closed");
        return assertInstanceOf(CmFailure.class, failure);
    }

    @Test
    void aBackendWhoseProofIsWrongIsRefusedAndTheConnectionCloses() throws Exception {
        CmFailure refused = refused(FakeBackend.Challenge.WRONG_PROOF, FakeBackend.SECRET);
        assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(), refused.code());
        assertTrue(refused.text().contains("backend-1") && refused.text().contains("proof does not match"),
                refused.text());
    }

    @Test
    void aNodeWithAnotherSecretFailsTheChallengeToo() throws Exception {
        assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(),
                refused(FakeBackend.Challenge.HONEST, FakeBackend.OTHER_SECRET).code(),
                "the backend's proof does not match the node's secret either");
    }

    @Test
    void aRefusedProofFailsWithTheBackendsError135() throws Exception {
        CmFailure refused = refused(FakeBackend.Challenge.REFUSE_PROOF, FakeBackend.SECRET);
        assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(), refused.code());
        assertEquals("wrong peer proof", refused.text());
    }

    @Test
    void aBackendWithoutSecretRefusesWith231() throws Exception {
        assertEquals(CmError.ACCESS_DENIED.code(), refused(FakeBackend.Challenge.NO_SECRET, FakeBackend.SECRET).code());
    }

    @Test
    void aSilentBackendFailsTheConnectWithATimeout() throws Exception {
        backend.challenge(FakeBackend.Challenge.SILENT);
        PeerOptions quick = new PeerOptions(Duration.ofMillis(300), Duration.ofSeconds(5), 8, CodecLimits.DEFAULT);
        assertInstanceOf(TimeoutException.class, failure(connecting(FakeBackend.auth(FakeBackend.SECRET), quick)));
        assertTrue(backend.nextConnection().closeFuture().await(5, TimeUnit.SECONDS), "the node gave up the socket");
    }

    @Test
    void aRefusedTcpConnectFailsWithTheTransportsError() throws Exception {
        int port;
        try (ServerSocket unused = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            port = unused.getLocalPort();
        }
        CompletableFuture<PeerConnection> connecting = PeerConnection.connect(new InetSocketAddress("127.0.0.1", port),
                "node-a", FakeBackend.auth(FakeBackend.SECRET), OPTIONS, group);
        assertInstanceOf(IOException.class, failure(connecting));
    }

    @Test
    void aCallerThatGivesUpOnConnectingClosesTheSocket() throws Exception {
        backend.challenge(FakeBackend.Challenge.SILENT);
        CompletableFuture<PeerConnection> connecting = connecting(FakeBackend.auth(FakeBackend.SECRET), OPTIONS);
        Channel backendSide = backend.nextConnection();
        backend.nextHello();
        connecting.cancel(false);
        assertTrue(backendSide.closeFuture().await(5, TimeUnit.SECONDS), "no half-open connection is left behind");
    }

    // ---------------------------------------------------------------- requests

    @Test
    void repliesAreMatchedByIdInWhateverOrderTheyCome() throws Exception {
        PeerConnection connection = connect(OPTIONS);
        List<CompletableFuture<Message>> answers = new ArrayList<>();
        List<FakeBackend.Request> requests = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            answers.add(connection.request(numbered(i)));
            requests.add(backend.nextRequest());
        }
        for (int i = requests.size() - 1; i >= 0; i--) {
            FakeBackend.Request request = requests.get(i);
            request.reply(new Message.UnitsOk(((Message.ListAllocations) request.message()).afterHandleId()));
        }
        for (int i = 0; i < answers.size(); i++) {
            assertEquals(i, echoed(answers.get(i).get(5, TimeUnit.SECONDS)));
        }
    }

    @Test
    void requestsGivenWhileTheEventLoopIsBusyGoOutInOneWrite() throws Exception {
        PeerConnection connection = connect(OPTIONS);
        CountDownLatch busy = new CountDownLatch(group.executorCount());
        CountDownLatch release = new CountDownLatch(1);
        for (EventExecutor loop : group) {
            loop.execute(() -> {
                busy.countDown();
                try {
                    release.await(5, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
        }
        assertTrue(busy.await(5, TimeUnit.SECONDS), "every event loop of the node is held");
        int readsBefore = backend.reads();
        List<CompletableFuture<Message>> answers = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            answers.add(connection.request(numbered(i)));
        }
        release.countDown();
        List<FakeBackend.Request> requests = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            requests.add(backend.nextRequest());
        }
        assertEquals(1, backend.reads() - readsBefore, "the five requests reached the backend in one read");
        for (FakeBackend.Request request : requests) {
            request.reply(new Message.UnitsOk(((Message.ListAllocations) request.message()).afterHandleId()));
        }
        for (int i = 0; i < answers.size(); i++) {
            assertEquals(i, echoed(answers.get(i).get(5, TimeUnit.SECONDS)), "each its own answer");
        }
    }

    @Test
    void aCallerMayChainItsNextRequestOnAReply() throws Exception {
        backend.respondWith(request -> new Message.UnitsOk(((Message.ListAllocations) request).afterHandleId()));
        PeerConnection connection = connect(OPTIONS);
        CompletableFuture<Message> chained = connection.request(numbered(1))
                .thenCompose(first -> connection.request(numbered(echoed(first) + 1)))
                .thenCompose(second -> connection.request(numbered(echoed(second) + 1)));
        assertEquals(3, echoed(chained.get(5, TimeUnit.SECONDS)), "completions hold no lock the next request needs");
    }

    @Test
    void anErrorReplyFailsOnlyItsRequest() throws Exception {
        PeerConnection connection = connect(OPTIONS);
        CompletableFuture<Message> refused = connection.request(new Message.LeaseAcquire("tmr", "node-a", 1, 1000));
        backend.nextRequest().reply(new Message.Error(CmError.TMR_LEASE_REFUSED, "held by node-b"));
        CmFailure error = assertInstanceOf(CmFailure.class, failure(refused));
        assertEquals(CmError.TMR_LEASE_REFUSED.code(), error.code());
        assertEquals("held by node-b", error.text());

        assertTrue(connection.isOpen());
        CompletableFuture<Message> next = connection.request(new Message.Inventory());
        backend.nextRequest().reply(new Message.InventoryOk(List.of()));
        assertInstanceOf(Message.InventoryOk.class, next.get(5, TimeUnit.SECONDS));
    }

    @Test
    void aRequestTimesOutAndItsLateReplyIsDropped() throws Exception {
        PeerOptions options = new PeerOptions(Duration.ofSeconds(5), Duration.ofMillis(200), 1, CodecLimits.DEFAULT);
        PeerConnection connection = connect(options);
        CompletableFuture<Message> slow = connection.request(numbered(1));
        FakeBackend.Request late = backend.nextRequest();
        Throwable timeout = failure(slow);
        assertInstanceOf(TimeoutException.class, timeout);
        assertTrue(timeout.getMessage().contains("LIST_ALLOCATIONS"), timeout.getMessage());

        late.reply(new Message.UnitsOk(1));
        // maxInFlight is 1: the timed-out request gave its permit back.
        CompletableFuture<Message> next = connection.request(numbered(2));
        FakeBackend.Request request = backend.nextRequest();
        assertTrue(request.frame().requestId() != late.frame().requestId());
        request.reply(new Message.UnitsOk(2));
        assertEquals(2, echoed(next.get(5, TimeUnit.SECONDS)), "the late reply went to nobody");
        assertTrue(connection.isOpen());
    }

    @Test
    void moreThanMaxInFlightFailsAtOnceWith309() throws Exception {
        PeerOptions options = new PeerOptions(Duration.ofSeconds(5), Duration.ofSeconds(5), 2, CodecLimits.DEFAULT);
        PeerConnection connection = connect(options);
        CompletableFuture<Message> first = connection.request(numbered(1));
        CompletableFuture<Message> second = connection.request(numbered(2));
        CompletableFuture<Message> third = connection.request(numbered(3));
        assertTrue(third.isDone(), "refused at once, not after a timeout");
        assertEquals(CmError.REQUEST_OVERLOAD.code(), code(third));

        FakeBackend.Request one = backend.nextRequest();
        one.reply(new Message.UnitsOk(((Message.ListAllocations) one.message()).afterHandleId()));
        first.get(5, TimeUnit.SECONDS);
        CompletableFuture<Message> fourth = connection.request(numbered(4));
        assertFalse(fourth.isDone() && fourth.isCompletedExceptionally(), "a permit came back with the reply");
        backend.nextRequest().reply(new Message.UnitsOk(2));
        backend.nextRequest().reply(new Message.UnitsOk(4));
        second.get(5, TimeUnit.SECONDS);
        fourth.get(5, TimeUnit.SECONDS);
    }

    @Test
    void aLeaseRenewalGoesOutWhileDataRequestsFillTheBound() throws Exception {
        PeerOptions options = new PeerOptions(Duration.ofSeconds(5), Duration.ofSeconds(5), 2, CodecLimits.DEFAULT);
        PeerConnection connection = connect(options);
        CompletableFuture<Message> first = connection.request(numbered(1));
        CompletableFuture<Message> second = connection.request(numbered(2));
        assertEquals(CmError.REQUEST_OVERLOAD.code(), code(connection.request(numbered(3))), "data: the bound holds");
        // A backend slow with two ALLOCATEs must still get the heartbeat that keeps the node's lease.
        CompletableFuture<Message> renew = connection.request(new Message.LeaseRenew("opentmr-active", "node-a", 1,
                2000));
        assertFalse(renew.isDone(), "sent, not refused");
        backend.nextRequest();
        backend.nextRequest();
        FakeBackend.Request renewal = backend.nextRequest();
        assertInstanceOf(Message.LeaseRenew.class, renewal.message());
        renewal.reply(new Message.Ok());
        assertInstanceOf(Message.Ok.class, renew.get(5, TimeUnit.SECONDS));
        assertFalse(first.isDone() || second.isDone());
    }

    @Test
    void requestIdsWrapAroundTheU32Range() throws Exception {
        PeerConnection connection = PeerConnection.connect(backend.address(), "node-a",
                FakeBackend.auth(FakeBackend.SECRET), OPTIONS, group, -3).get(5, TimeUnit.SECONDS);
        connections.add(connection);
        List<CompletableFuture<Message>> answers = new ArrayList<>();
        List<Integer> ids = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            answers.add(connection.request(numbered(i)));
            FakeBackend.Request request = backend.nextRequest();
            ids.add(request.frame().requestId());
            request.reply(new Message.UnitsOk(i));
        }
        assertEquals(List.of(0xFFFFFFFF, 0, 1), ids, "PEER_HELLO and PEER_PROOF took 0xFFFFFFFD and 0xFFFFFFFE");
        for (int i = 0; i < 3; i++) {
            assertEquals(i, echoed(answers.get(i).get(5, TimeUnit.SECONDS)));
        }
    }

    @Test
    void manyThreadsAtOnceEachGetTheirOwnAnswers() throws Exception {
        int threads = 8;
        int perThread = 100;
        backend.respondWith(request -> new Message.UnitsOk(((Message.ListAllocations) request).afterHandleId()));
        PeerOptions options = new PeerOptions(Duration.ofSeconds(5), Duration.ofSeconds(10), threads * perThread,
                CodecLimits.DEFAULT);
        PeerConnection connection = connect(options);
        int answered = AllAtOnce.run(threads, Duration.ofSeconds(20), thread -> {
            List<CompletableFuture<Message>> answers = new ArrayList<>();
            for (int i = 0; i < perThread; i++) {
                answers.add(connection.request(numbered(thread * 1_000L + i)));
            }
            for (int i = 0; i < perThread; i++) {
                assertEquals(thread * 1_000L + i, echoed(answers.get(i).get(10, TimeUnit.SECONDS)));
            }
            return perThread;
        });
        assertEquals(threads * perThread, answered);
    }

    // ---------------------------------------------------------------- the end of a connection

    @Test
    void whenTheBackendClosesOutstandingRequestsFailAndTheCloseFutureCompletes() throws Exception {
        PeerConnection connection = connect(OPTIONS);
        Channel backendSide = backend.nextConnection();
        CompletableFuture<Message> first = connection.request(numbered(1));
        CompletableFuture<Message> second = connection.request(numbered(2));
        backend.nextRequest();
        backend.nextRequest();
        backendSide.close();

        assertEquals(CmError.NETWORK_FAULT.code(), code(first));
        assertEquals(CmError.NETWORK_FAULT.code(), code(second));
        connection.closeFuture().get(5, TimeUnit.SECONDS);
        assertFalse(connection.isOpen());
        CompletableFuture<Message> after = connection.request(numbered(3));
        assertTrue(after.isDone(), "a closed connection refuses at once");
        assertEquals(CmError.NETWORK_FAULT.code(), code(after));
    }

    @Test
    void anOversizedFrameFromTheBackendClosesTheConnection() throws Exception {
        PeerOptions small = new PeerOptions(Duration.ofSeconds(5), Duration.ofSeconds(5), 8,
                new CodecLimits(256, 256, 100));
        PeerConnection connection = connect(small);
        CompletableFuture<Message> big = connection.request(numbered(1));
        CompletableFuture<Message> other = connection.request(numbered(2));
        backend.nextRequest().reply(new Message.CryptOk(Bytes.of(new byte[1_000])));
        backend.nextRequest();

        assertEquals(CmError.NETWORK_FAULT.code(), code(big));
        assertEquals(CmError.NETWORK_FAULT.code(), code(other));
        connection.closeFuture().get(5, TimeUnit.SECONDS);
        assertFalse(connection.isOpen());
    }

    @Test
    void aMalformedFrameFromTheBackendClosesTheConnection() throws Exception {
        PeerConnection connection = connect(OPTIONS);
        Channel backendSide = backend.nextConnection();
        CompletableFuture<Message> outstanding = connection.request(numbered(1));
        FakeBackend.Request request = backend.nextRequest();
        // length 6, version 1, type 0x7E (no such type), the request's id
        byte[] unknownType = {0, 0, 0, 6, 1, 0x7E, 0, 0, 0, 0};
        java.nio.ByteBuffer.wrap(unknownType).putInt(6, request.frame().requestId());
        FakeBackend.writeRaw(backendSide, unknownType);

        assertEquals(CmError.NETWORK_FAULT.code(), code(outstanding));
        connection.closeFuture().get(5, TimeUnit.SECONDS);
        assertTrue(backendSide.closeFuture().await(5, TimeUnit.SECONDS));
    }

    @Test
    void closingFailsOutstandingRequestsAndLeavesTheSharedGroupRunning() throws Exception {
        PeerConnection a = connect(OPTIONS);
        PeerConnection b = connect(OPTIONS);
        PeerConnection c = connect(OPTIONS);
        Set<Channel> backendSides = Set.of(backend.nextConnection(), backend.nextConnection(),
                backend.nextConnection());
        CompletableFuture<Message> outstanding = a.request(numbered(1));
        backend.nextRequest();

        a.close();
        a.close();
        assertEquals(CmError.NETWORK_FAULT.code(), code(outstanding));
        a.closeFuture().get(5, TimeUnit.SECONDS);
        assertTrue(b.isOpen() && c.isOpen(), "the other two connections are not affected");
        b.close();
        c.close();
        CompletableFuture.allOf(b.closeFuture(), c.closeFuture()).get(5, TimeUnit.SECONDS);
        for (Channel side : backendSides) {
            assertTrue(side.closeFuture().await(5, TimeUnit.SECONDS), "the backend saw every connection close");
        }
        assertFalse(group.isShuttingDown(), "the caller's group is the caller's");
        assertTrue(connect(OPTIONS).isOpen(), "and still serves new connections");
    }
}
