package io.opentmr.peer;

import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ConnectTimeoutException;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.EncoderException;
import io.netty.util.concurrent.ScheduledFuture;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.FrameClients;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.PeerAuth;
import java.net.InetSocketAddress;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A TMR node's authenticated connection to one backend.
 *
 * <p>{@link #connect} opens it and passes the mutual challenge ({@code docs/protocol.md}, peer messages):
 * PEER_HELLO with a fresh nonce, the backend's proof in PEER_CHALLENGE checked against our cluster secret,
 * PEER_PROOF, OK. Then {@link #request} sends peer requests; replies are matched by request id, so they
 * may come in any order.
 *
 * <p>Every piece of mutable state is confined to the channel's event loop; caller threads only take an
 * in-flight permit and put the request in the outbox, so a reply, a timeout and the connection's end can never
 * race for the same request. The requests that reach the outbox while the loop is busy or waking up are sent
 * together, in one task and one write to the socket: a TMR license that sends an ALLOCATE to each backend for
 * each of a batch of clients' ACCESSes costs each connection one wake-up and one write, not one per request.
 * Futures complete on that event loop, holding no lock: callers may chain on them, but must not block there (an
 * actor's {@code pipeToSelf} is the intended use).
 *
 * <p>The connection never reconnects and never sends anything on its own: when it closes, for whatever
 * reason, every outstanding request fails and {@link #closeFuture()} completes; what comes next is the
 * caller's decision.
 */
public final class PeerConnection implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(PeerConnection.class);
    private static final SecureRandom NONCES = new SecureRandom();

    private final InetSocketAddress address;
    private final String nodeName;
    /** The CmActId PEER_HELLO names (0: none, the backend's first container). */
    private final long cmActId;
    private final PeerAuth auth;
    private final PeerOptions options;
    private final EventLoop loop;
    private final Semaphore permits;
    /** Room for requests that keep the lease alive once {@link #permits} are all taken (MessageType#keepsAlive). */
    private final Semaphore livenessPermits = new Semaphore(MessageType.LIVENESS_RESERVE);
    private final CompletableFuture<PeerConnection> authenticated = new CompletableFuture<>();
    private final CompletableFuture<Void> closed = new CompletableFuture<>();
    /** Requests given to {@link #request}, not yet taken by the event loop; bounded by the in-flight permits. */
    private final Queue<Pending> outbox = new ConcurrentLinkedQueue<>();
    /** A task that empties {@link #outbox} is on the loop's queue and has not begun to. */
    private final AtomicBoolean drainQueued = new AtomicBoolean();

    // ------------------------------------------------ read by any thread
    private volatile boolean closing;
    private volatile boolean open;
    private volatile String backendName = "";

    // ------------------------------------------------ confined to the event loop
    private final Map<Integer, Pending> pending = new HashMap<>();
    private int nextRequestId;
    private Channel channel;
    private ChannelFuture connecting;
    private ScheduledFuture<?> handshakeDeadline;

    private PeerConnection(InetSocketAddress address, String nodeName, PeerAuth auth, PeerOptions options,
                           EventLoop loop, int firstRequestId, long cmActId) {
        this.cmActId = cmActId;
        this.address = address;
        this.nodeName = nodeName;
        this.auth = auth;
        this.options = options;
        this.loop = loop;
        this.permits = new Semaphore(options.maxInFlight());
        this.nextRequestId = firstRequestId;
    }

    /**
     * Connects to {@code backend} and authenticates this node to it and it to this node, within
     * {@code options.connectTimeout()}.
     *
     * @param group an NIO event loop group, typically the node's own, shared by its three connections;
     *              the connection uses one of its loops and never shuts it down
     * @return completes with the authenticated connection, or exceptionally: with the transport's
     *         {@link java.io.IOException} when the TCP connect fails; a {@link TimeoutException} when the
     *         connection is not authenticated within the connect timeout; {@link CmFailure} 231 when the
     *         backend has no cluster secret, 135 when it refuses our proof (another secret) and also 135
     *         when the backend's own proof is wrong (then it is not one of ours, and we close), 105 for an
     *         answer that does not belong in the challenge, 100 when the backend closes during it
     */
    public static CompletableFuture<PeerConnection> connect(InetSocketAddress backend, String nodeName,
                                                            PeerAuth auth, PeerOptions options,
                                                            EventLoopGroup group) {
        return connect(backend, nodeName, auth, options, group, 1, 0);
    }

    /**
     * As {@link #connect(InetSocketAddress, String, PeerAuth, PeerOptions, EventLoopGroup)}, bound to the backend's
     * container of {@code cmActId} (PEER_HELLO names it; 0: the backend's first container). A backend without such a
     * container refuses with ERROR 201; one older than container binding with 105.
     */
    public static CompletableFuture<PeerConnection> connect(InetSocketAddress backend, String nodeName,
                                                            PeerAuth auth, PeerOptions options,
                                                            EventLoopGroup group, long cmActId) {
        return connect(backend, nodeName, auth, options, group, 1, cmActId);
    }

    /** {@link #connect}, numbering requests from {@code firstRequestId} (tests of the u32 wrap-around). */
    static CompletableFuture<PeerConnection> connect(InetSocketAddress backend, String nodeName, PeerAuth auth,
                                                     PeerOptions options, EventLoopGroup group,
                                                     int firstRequestId) {
        return connect(backend, nodeName, auth, options, group, firstRequestId, 0);
    }

    private static CompletableFuture<PeerConnection> connect(InetSocketAddress backend, String nodeName, PeerAuth auth,
                                                             PeerOptions options, EventLoopGroup group,
                                                             int firstRequestId, long cmActId) {
        Objects.requireNonNull(backend, "backend");
        Objects.requireNonNull(nodeName, "nodeName");
        Objects.requireNonNull(auth, "auth");
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(group, "group");
        PeerConnection connection = new PeerConnection(backend, nodeName, auth, options, group.next(),
                firstRequestId, cmActId);
        // A caller that gives up on the future (cancel, or its own timeout) gives up the connection too.
        connection.authenticated.whenComplete((done, error) -> {
            if (error != null) {
                connection.close();
            }
        });
        try {
            connection.loop.execute(connection::start);
        } catch (RejectedExecutionException e) {
            connection.authenticated.completeExceptionally(new CmFailure(CmError.NETWORK_FAULT,
                    "cannot connect to " + show(backend) + ": the event loop group is shut down"));
        }
        return connection.authenticated;
    }

    /**
     * Sends one request.
     *
     * @return completes with the backend's reply, or exceptionally: {@link CmFailure} with the code and
     *         text of an ERROR reply; a {@link TimeoutException} after {@code options.requestTimeout()}
     *         (the request id is then forgotten, and a late reply is dropped); {@link CmFailure} 309 at
     *         once when {@code options.maxInFlight()} requests are already outstanding; {@link CmFailure}
     *         100 when the connection is closed or closes before the reply; {@link CmFailure} 105 when
     *         the request cannot be encoded (larger than any frame)
     */
    public CompletableFuture<Message> request(Message request) {
        Objects.requireNonNull(request, "request");
        if (closing || !open) {
            return CompletableFuture.failedFuture(closedError("is closed"));
        }
        Semaphore held = permits.tryAcquire() ? permits
                : request.type().keepsAlive() && livenessPermits.tryAcquire() ? livenessPermits : null;
        if (held == null) {
            return CompletableFuture.failedFuture(new CmFailure(CmError.REQUEST_OVERLOAD, "the connection to "
                    + describe() + " already has " + options.maxInFlight() + " requests in flight (maxInFlight)"));
        }
        Pending p = new Pending(request, held);
        outbox.add(p);
        if (!drainQueued.getAndSet(true)) {
            try {
                loop.execute(this::drainOutbox);
            } catch (RejectedExecutionException e) {
                drainQueued.set(false);
                failOutbox(closedError("lost its event loop"));
            }
        }
        return p.future;
    }

    /** How long a request waits for its reply before it fails with a {@link TimeoutException}. */
    public Duration requestTimeout() {
        return options.requestTimeout();
    }

    /** The backend's name from its PEER_CHALLENGE; empty until then. */
    public String backendName() {
        return backendName;
    }

    public InetSocketAddress address() {
        return address;
    }

    /** Authenticated, not closed, and the TCP connection still up. */
    public boolean isOpen() {
        return open && !closing;
    }

    /** Completes, after every outstanding request has failed, when the connection closes for any reason. */
    public CompletableFuture<Void> closeFuture() {
        return closed;
    }

    /** Closes the connection without waiting; {@link #closeFuture()} tells when it is done. Idempotent. */
    @Override
    public void close() {
        closing = true;
        try {
            loop.execute(this::closeOnLoop);
        } catch (RejectedExecutionException e) {
            // A loop that has shut down has closed its channels already.
            LOG.debug("Closing the connection to {}: its event loop has stopped", show(address));
        }
    }

    @Override
    public String toString() {
        return "PeerConnection[" + describe() + (isOpen() ? "" : ", closed") + "]";
    }

    // ================================================================ connecting (event loop)

    private void start() {
        if (closing) {
            onClosed();
            return;
        }
        handshakeDeadline = loop.schedule(this::handshakeTimedOut, options.connectTimeout().toNanos(),
                TimeUnit.NANOSECONDS);
        connecting = FrameClients.bootstrap(loop, options.limits(), options.connectTimeout(), ReplyHandler::new)
                .connect(address);
        channel = connecting.channel();
        channel.closeFuture().addListener(done -> onClosed());
        connecting.addListener((ChannelFuture done) -> {
            if (done.isSuccess()) {
                sayHello();
            } else {
                failHandshake(connectFailure(done.cause()));
            }
        });
    }

    private void sayHello() {
        byte[] nodeNonce = new byte[PeerAuth.NONCE_BYTES];
        NONCES.nextBytes(nodeNonce);
        Pending hello = new Pending(new Message.PeerHello(nodeName, Bytes.of(nodeNonce), cmActId));
        send(hello);
        hello.future.whenComplete((reply, error) -> {
            if (error != null) {
                failHandshake(error);
            } else {
                answerChallenge(nodeNonce, reply);
            }
        });
    }

    private void answerChallenge(byte[] nodeNonce, Message reply) {
        if (!(reply instanceof Message.PeerChallenge challenge)) {
            failHandshake(unexpected(reply, "PEER_HELLO"));
            return;
        }
        byte[] backendNonce = challenge.backendNonce().toArray();
        if (!PeerAuth.matches(auth.backendProof(nodeNonce, backendNonce), challenge.backendProof().toArray())) {
            LOG.warn("Backend {} at {} failed the peer challenge: its proof does not match our cluster secret "
                    + "(another secret, or not one of our backends); closing", challenge.backendName(), show(address));
            failHandshake(new CmFailure(CmError.TMR_PEER_NOT_AUTHENTICATED, "backend '" + challenge.backendName()
                    + "' at " + show(address) + " failed the peer challenge: its proof does not match our cluster "
                    + "secret"));
            return;
        }
        backendName = challenge.backendName();
        Pending proof = new Pending(new Message.PeerProof(Bytes.of(auth.nodeProof(backendNonce, nodeNonce, nodeName))));
        send(proof);
        proof.future.whenComplete((answer, error) -> {
            if (error != null) {
                failHandshake(error);
            } else if (!(answer instanceof Message.Ok)) {
                failHandshake(unexpected(answer, "PEER_PROOF"));
            } else {
                admitted();
            }
        });
    }

    private void admitted() {
        if (closing || !channel.isActive()) {
            failHandshake(closedError("closed during the peer challenge"));
            return;
        }
        handshakeDeadline.cancel(false);
        open = true;
        LOG.info("Peer connection to backend {} at {} authenticated (node {})", backendName, show(address), nodeName);
        if (!authenticated.complete(this)) {
            // The caller gave up just now; the connection is nobody's.
            channel.close();
        }
    }

    private void handshakeTimedOut() {
        failHandshake(new TimeoutException("no authenticated connection to " + show(address) + " within "
                + options.connectTimeout().toMillis() + " ms"));
    }

    /** The connect fails with {@code error} (unless it already ended) and the channel closes. */
    private void failHandshake(Throwable error) {
        if (authenticated.completeExceptionally(error)) {
            LOG.debug("Peer connection to {} not established: {}", show(address), error.toString());
        }
        if (channel != null) {
            channel.close();
        }
    }

    private Throwable connectFailure(Throwable cause) {
        if (cause instanceof ConnectTimeoutException) {
            TimeoutException timeout = new TimeoutException("TCP connect to " + show(address) + " timed out after "
                    + options.connectTimeout().toMillis() + " ms");
            timeout.initCause(cause);
            return timeout;
        }
        return cause;
    }

    private CmFailure unexpected(Message reply, String request) {
        return new CmFailure(CmError.INVALID_PARAMETER, show(address) + " answered " + request + " with "
                + reply.type() + ", which has no place in the peer challenge");
    }

    // ================================================================ requests (event loop)

    /** Sends every request in the outbox, flushing once at the end. */
    private void drainOutbox() {
        // Cleared first: a request added after the last poll below queues a task of its own.
        drainQueued.set(false);
        boolean written = false;
        for (Pending p = outbox.poll(); p != null; p = outbox.poll()) {
            written |= write(p);
        }
        if (written) {
            channel.flush();
        }
    }

    /**
     * The requests in the outbox fail and give their permits back: the connection closed, or its loop shut down (then
     * on the caller's thread). A request polled here was never sent, so it holds no request id and no timer.
     */
    private void failOutbox(Throwable error) {
        for (Pending p = outbox.poll(); p != null; p = outbox.poll()) {
            p.released = true;
            p.permits.release();
            p.future.completeExceptionally(error);
        }
    }

    /** Writes and flushes one request (the challenge's). */
    private void send(Pending p) {
        if (write(p)) {
            channel.flush();
        }
    }

    /** Writes {@code p} without flushing; false when it failed at once instead (the connection is not usable). */
    private boolean write(Pending p) {
        if (channel == null || !channel.isActive() || (p.counted() && (closing || !open))) {
            fail(p, closedError(channel != null && channel.isActive() ? "is closing" : "is closed"));
            return false;
        }
        p.requestId = nextFreeRequestId();
        pending.put(p.requestId, p);
        if (p.counted()) {
            // Handshake messages need no timer of their own: the connect deadline bounds them.
            p.timer = loop.schedule(() -> timedOut(p), options.requestTimeout().toNanos(), TimeUnit.NANOSECONDS);
        }
        Channel ch = channel;
        ch.write(new Frame(p.requestId, p.request)).addListener((ChannelFuture written) -> {
            if (written.isSuccess()) {
                return;
            }
            if (written.cause() instanceof EncoderException) {
                // The request itself cannot be sent; the connection is fine.
                fail(p, new CmFailure(CmError.INVALID_PARAMETER, String.valueOf(written.cause().getMessage())));
            } else {
                LOG.debug("Write to {} failed: {}", show(address), written.cause().toString());
                ch.close();
            }
        });
        return true;
    }

    /** The next id no outstanding request holds; ids wrap around the u32 range like the wire's field. */
    private int nextFreeRequestId() {
        int id;
        do {
            id = nextRequestId++;
        } while (pending.containsKey(id));
        return id;
    }

    private void onFrame(Frame frame) {
        Pending p = pending.get(frame.requestId());
        if (p == null) {
            LOG.debug("Dropping {} from backend {} at {} for request id {}, which is not outstanding (timed out?)",
                    frame.message().type(), backendName, show(address), Integer.toUnsignedString(frame.requestId()));
            return;
        }
        remove(p);
        if (frame.message() instanceof Message.Error error) {
            p.future.completeExceptionally(new CmFailure(error.code(), error.text()));
        } else {
            p.future.complete(frame.message());
        }
    }

    private void timedOut(Pending p) {
        if (pending.get(p.requestId) != p) {
            return;
        }
        remove(p);
        p.future.completeExceptionally(new TimeoutException("no answer to " + p.request.type() + " (request id "
                + Integer.toUnsignedString(p.requestId) + ") from " + describe() + " within "
                + options.requestTimeout().toMillis() + " ms"));
    }

    private void fail(Pending p, Throwable error) {
        remove(p);
        p.future.completeExceptionally(error);
    }

    private void remove(Pending p) {
        pending.remove(p.requestId, p);
        if (p.timer != null) {
            p.timer.cancel(false);
        }
        if (p.counted() && !p.released) {
            p.released = true;
            p.permits.release();
        }
    }

    // ================================================================ closing (event loop)

    private void closeOnLoop() {
        if (channel != null) {
            channel.close();
        } else {
            onClosed();
        }
    }

    /** The channel is gone: everything outstanding fails, then the close future completes. */
    private void onClosed() {
        if (closed.isDone()) {
            return;
        }
        boolean wasOpen = open;
        closing = true;
        open = false;
        if (handshakeDeadline != null) {
            handshakeDeadline.cancel(false);
        }
        List<Pending> outstanding = new ArrayList<>(pending.values());
        CmFailure lost = closedError("closed before the answer");
        for (Pending p : outstanding) {
            fail(p, lost);
        }
        failOutbox(closedError("is closed"));
        Throwable why = connecting != null && connecting.cause() != null ? connectFailure(connecting.cause())
                : closedError("closed during the peer challenge");
        authenticated.completeExceptionally(why);
        if (wasOpen) {
            LOG.info("Peer connection to backend {} at {} closed; {} outstanding request(s) failed", backendName,
                    show(address), outstanding.size());
        }
        closed.complete(null);
    }

    private CmFailure closedError(String what) {
        return new CmFailure(CmError.NETWORK_FAULT, "the connection to " + describe() + " " + what);
    }

    private String describe() {
        return backendName.isEmpty() ? "backend at " + show(address) : "backend " + backendName + " at "
                + show(address);
    }

    /** {@code host:port} as given, without the resolver's {@code /<unresolved>} noise. */
    private static String show(InetSocketAddress address) {
        return address.getHostString() + ":" + address.getPort();
    }

    /** A request from its submission to its reply, timeout or failure. Touched only on the event loop. */
    private static final class Pending {
        final Message request;
        /** Where its in-flight permit came from and goes back to; null for a request of the challenge. */
        final Semaphore permits;
        final CompletableFuture<Message> future = new CompletableFuture<>();
        int requestId;
        ScheduledFuture<?> timer;
        boolean released;

        /** A caller's request, holding a permit of {@code permits}. */
        Pending(Message request, Semaphore permits) {
            this.request = request;
            this.permits = permits;
        }

        /** A request of the challenge: no permit, no timer. */
        Pending(Message request) {
            this.request = request;
            this.permits = null;
        }

        /** Holds an in-flight permit and a timer: a caller's request, not one of the challenge. */
        boolean counted() {
            return permits != null;
        }
    }

    /** Hands every frame to the event-loop logic above; the channel's end is seen through its close future. */
    private final class ReplyHandler extends SimpleChannelInboundHandler<Frame> {

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
            onFrame(frame);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            LOG.debug("Closing the connection to {} after an error: {}", describe(), cause.toString());
            ctx.close();
        }
    }
}
