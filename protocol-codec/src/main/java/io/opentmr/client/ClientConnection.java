package io.opentmr.client;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.handler.codec.EncoderException;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.ScheduledFuture;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.FrameClients;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ServerKind;
import java.net.InetSocketAddress;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.StringJoiner;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The asynchronous core under {@link TmrClient}: one TCP connection at a time, the requests in flight
 * keyed by request id, the open handles, keep-alive, and the reconnect loop.
 *
 * <p>All mutable state is confined to the single event-loop thread; caller threads only create a
 * {@link Pending} (taking an in-flight permit) and hand it over with {@code loop.execute}. That keeps
 * reconnect, RESUME and retry free of locks: a reply, a timeout and a connection loss for the same
 * request can never race.
 *
 * <p>Connection life: TCP connect, HELLO (a standby's NOT_ACTIVE sends us to the active node), RESUME
 * of the open handles that waiting requests name, then the session is ready: queued requests go out and
 * keep-alives start, and the other handles are resumed behind them, in RESUME_MANYs where the server
 * takes them ({@link Resumption}).
 * Requests wait in {@link #pending} until their reply, their timeout, or a connection loss; a loss
 * re-queues the ones that are safe to repeat (they go out again with the same request id) and fails
 * the others with 100.
 *
 * <p>A frozen server (SIGSTOP, a network black hole) closes nothing: its connection stays open and
 * silent. {@link Liveness} watches the bytes read while requests wait, probes a silence with KEEPALIVE
 * and treats an unanswered probe like a closed connection (see {@link TmrClientOptions#silenceTimeout()}).
 */
final class ClientConnection {

    /** Operators look for connection events under the SDK's public class name. */
    private static final Logger LOG = LoggerFactory.getLogger(TmrClient.class);

    /** NOT_ACTIVE hops followed per round of addresses, so two confused standbys cannot ping-pong us forever. */
    private static final int MAX_REDIRECTS_PER_ROUND = 3;

    /** How many timed-out ACCESS request ids are remembered, to release a handle whose grant arrives late. */
    private static final int MAX_ABANDONED_ACCESSES = 1024;

    /** Extra wait of a caller thread beyond the I/O thread's own timer, which normally fires first. */
    private static final long CALLER_SLACK_NANOS = TimeUnit.SECONDS.toNanos(1);

    /**
     * RESUMEs sent at once on a new connection: below the servers' default bound on requests in flight
     * per connection (64), and halved on each 309 for a server configured tighter.
     */
    private static final int RESUME_WINDOW = 32;

    /**
     * Handles of one RESUME_MANY: the protocol's cap. A full one costs a node a few milliseconds, so the session's own
     * requests behind it are not held up for long.
     */
    static final int RESUME_BATCH = Message.ResumeMany.MAX_ITEMS;

    /** RESUME_MANYs in flight at once: one being worked on while the next travels. */
    private static final int RESUME_BATCHES_IN_FLIGHT = 2;

    /**
     * Request ids of every connection of this process. A node recognises a repeated ACCESS by the
     * client's address, host, user and pid plus the request id; all clients of one process share the
     * first four, so they must not share an id while a request may still be repeated. The random start
     * keeps a restarted process (which may get the same pid) clear of its predecessor's ids.
     */
    private static final AtomicInteger NEXT_REQUEST_ID = new AtomicInteger(new SecureRandom().nextInt());

    private final TmrClientOptions options;
    private final Message.Hello hello;
    private final EventLoopGroup group;
    private final EventLoop loop;
    private final Bootstrap bootstrap;
    private final Semaphore permits;
    private final AtomicBoolean closing = new AtomicBoolean();
    private final CompletableFuture<Void> firstSession = new CompletableFuture<>();

    // ------------------------------------------------ confined to the event loop
    private final Map<Integer, Pending<?>> pending = new LinkedHashMap<>();
    private final Map<Long, LicenseHandle> handles = new HashMap<>();
    /**
     * Whether the server at an address takes RESUME_MANY: true once it answered one, false once it refused the type
     * (a server older than it); absent until then. Remembered for the client's life, so a reconnect does not ask again.
     */
    private final Map<InetSocketAddress, Boolean> resumesMany = new HashMap<>();
    private final Set<Integer> abandonedAccesses = new LinkedHashSet<>();
    private Channel channel;
    private boolean ready;
    private boolean closed;
    private int nextAddress;
    private int failuresInRound;
    private int redirectsInRound;
    private int failedRounds;
    /** When the last session was lost (System.nanoTime()); 0 before the first. */
    private long lostAtNanos;
    /** The longest pause between rounds of addresses during a fail-over, see {@link #maxPauseMillis}. */
    static final long FAILOVER_PAUSE_MILLIS = 200;
    private long backoffMillis;
    private InetSocketAddress redirect;
    private InetSocketAddress lastConnected;
    private CmException lastConnectError;
    /** Why the last connection attempt failed, for the error of requests that found no session. */
    private String lastAttemptFailure;
    private ScheduledFuture<?> keepAliveTask;
    /** The silence watch of the current connection, from HELLO_OK on; {@code null} without one. */
    private Liveness liveness;
    /** When a byte was last read from {@link #channel} (System.nanoTime()), or it connected. */
    private long lastReadNanos;
    /** The address of the connection last left for its silence, until a session is up again. */
    private InetSocketAddress leftSilent;
    /** The RESUME of the handles on the connection of the moment, until every handle is answered. */
    private Resumption resuming;

    // ------------------------------------------------ read by any thread
    private volatile ServerKind serverKind;
    private volatile long sessionId;
    private volatile String serverName;
    private volatile InetSocketAddress connectedAddress;

    ClientConnection(TmrClientOptions options) {
        this.options = options;
        this.hello = new Message.Hello(options.clientName(), options.host(), options.user(), options.pid());
        this.permits = new Semaphore(options.maxInFlight());
        this.backoffMillis = options.reconnectBackoffMin().toMillis();
        this.group = new NioEventLoopGroup(1, new DefaultThreadFactory("opentmr-client", true));
        this.loop = group.next();
        this.bootstrap = FrameClients.bootstrap(group, options.codecLimits(), options.attemptTimeout(),
                ReplyHandler::new);
    }

    // ================================================================ API for TmrClient and LicenseHandle

    /**
     * Starts the reconnect loop and waits until the first session is ready.
     *
     * @throws CmException 101 when no address answered within {@code connectTimeout}, or the error a
     *                     server answered HELLO with (e.g. 231)
     */
    /** A connection with its session up; closed again if it cannot get one. */
    static ClientConnection open(TmrClientOptions options) {
        ClientConnection connection = new ClientConnection(options);
        try {
            connection.start();
        } catch (RuntimeException e) {
            connection.close();
            throw e;
        }
        return connection;
    }

    void start() {
        Duration timeout = options.connectTimeout();
        try {
            loop.execute(this::startReconnect);
        } catch (RejectedExecutionException e) {
            throw new CmException(CmError.NETWORK_FAULT.code(), "the client's I/O thread is not running", e);
        }
        loop.schedule(() -> {
            if (!firstSession.isDone()) {
                firstSession.completeExceptionally(notConnected(timeout));
            }
        }, timeout.toNanos(), TimeUnit.NANOSECONDS);
        await(firstSession, timeout, "the first connection");
    }

    /**
     * Sends a request and returns its reply, converted by {@code onReply} on the I/O thread.
     *
     * @param retryable whether the request may be sent again, with the same request id, after the
     *                  connection broke while it was outstanding
     * @param handle    the handle the request acts on, or {@code null}; its requests fail with 106 once
     *                  it cannot be resumed
     */
    <T> CompletableFuture<T> request(Message request, boolean retryable, LicenseHandle handle,
                                     Function<Message, T> onReply) {
        if (closing.get()) {
            return notSent(request, handle, new CmException(CmError.NETWORK_FAULT, "the client is closed"));
        }
        if (!permits.tryAcquire()) {
            return notSent(request, handle, new CmException(CmError.REQUEST_OVERLOAD,
                    "the client already has " + options.maxInFlight() + " requests in flight (maxInFlight)"));
        }
        Pending<T> p = new Pending<>(NEXT_REQUEST_ID.getAndIncrement(), request, retryable, true, handle, onReply,
                options.requestTimeout());
        submit(p);
        return p.future;
    }

    /**
     * A request refused before it was queued. A RELEASE refused so leaves its handle open, as it still is on the
     * server: a later close, or the client's own, releases it (closed, it would be neither released nor dropped).
     */
    private static <T> CompletableFuture<T> notSent(Message request, LicenseHandle handle, CmException why) {
        reopenIfRelease(request, handle);
        return CompletableFuture.failedFuture(why);
    }

    private static void reopenIfRelease(Message request, LicenseHandle handle) {
        if (request instanceof Message.Release && handle != null) {
            handle.releaseNotSent();
        }
    }

    /**
     * {@link #request} and wait for the reply in the caller's thread, at most the request timeout.
     *
     * @throws IllegalStateException on the client's I/O thread (in a callback of an asynchronous request): the
     *                               reply could only come on that thread, so the wait would end by its timeout
     */
    <T> T call(Message request, boolean retryable, LicenseHandle handle, Function<Message, T> onReply) {
        refuseToBlockTheLoop(request.type());
        return await(request(request, retryable, handle, onReply), options.requestTimeout(), request.type().name());
    }

    /**
     * Waits in the caller's thread for {@code reply}, the future of a {@code what} request, as {@link #call} does;
     * a future already complete is also read on the I/O thread.
     */
    <T> T awaitReply(CompletableFuture<T> reply, String what) {
        if (!reply.isDone()) {
            refuseToBlockTheLoop(what);
        }
        return await(reply, options.requestTimeout(), what);
    }

    /** @throws IllegalStateException on the client's I/O thread, where waiting for {@code what} would never end */
    void refuseToBlockTheLoop(Object what) {
        if (loop.inEventLoop()) {
            throw new IllegalStateException("a blocking " + what + " on the client's I/O thread would wait "
                    + "for that thread: use the asynchronous method, or move the work to another executor");
        }
    }

    ServerKind serverKind() {
        return serverKind;
    }

    long sessionId() {
        return sessionId;
    }

    String serverName() {
        return serverName;
    }

    InetSocketAddress connectedAddress() {
        return connectedAddress;
    }

    /** Called on the I/O thread by an ACCESS reply, before the caller sees the handle. */
    void register(LicenseHandle handle) {
        handles.put(handle.handleId(), handle);
    }

    /** Open handles, as the I/O thread sees them. */
    int openHandles() {
        refuseToBlockTheLoop("openHandles");
        return onLoop(handles::size);
    }

    /**
     * Releases the open handles if a session is up (bounded by the request timeout), then fails every
     * outstanding request with 100 and stops the I/O thread. Idempotent.
     */
    void close() {
        refuseToBlockTheLoop("close");
        if (!closing.compareAndSet(false, true)) {
            return;
        }
        try {
            List<CompletableFuture<Message>> releases = onLoop(this::releaseAllOnClose);
            CompletableFuture.allOf(releases.toArray(new CompletableFuture<?>[0]))
                    .get(options.requestTimeout().toNanos() + CALLER_SLACK_NANOS, TimeUnit.NANOSECONDS);
        } catch (ExecutionException | TimeoutException | RuntimeException e) {
            LOG.debug("Releasing handles while closing the client did not complete: {}", e.toString());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try {
            onLoop(() -> {
                shutDown();
                return null;
            });
        } catch (RuntimeException e) {
            LOG.debug("Client I/O thread already stopped: {}", e.toString());
        }
        group.shutdownGracefully(0, 200, TimeUnit.MILLISECONDS).awaitUninterruptibly(5, TimeUnit.SECONDS);
    }

    // ================================================================ requests (I/O thread)

    private void submit(Pending<?> p) {
        try {
            loop.execute(() -> enqueue(p));
        } catch (RejectedExecutionException e) {
            p.release(permits);
            reopenIfRelease(p.request, p.handle);
            p.future.completeExceptionally(new CmException(CmError.NETWORK_FAULT, "the client is closed"));
        }
    }

    private void enqueue(Pending<?> p) {
        if (closed) {
            fail(p, new CmException(CmError.NETWORK_FAULT, "the client is closed"));
            return;
        }
        if (p.handle != null && p.handle.invalidReason() != null) {
            fail(p, p.handle.invalidReason());
            return;
        }
        pending.put(p.requestId, p);
        p.timer = loop.schedule(() -> timedOut(p), p.timeout.toNanos(), TimeUnit.NANOSECONDS);
        if (ready && !waitsForResume(p)) {
            send(p, channel);
        }
    }

    /** An internal request (HELLO, RESUME, KEEPALIVE) on one particular connection: no permit, never retried. */
    private Pending<Message> sendInternal(Message request, Channel ch, Duration timeout) {
        return sendInternal(request, null, ch, timeout);
    }

    private Pending<Message> sendInternal(Message request, LicenseHandle handle, Channel ch, Duration timeout) {
        Pending<Message> p = new Pending<>(NEXT_REQUEST_ID.getAndIncrement(), request, false, false, handle,
                Function.identity(), timeout);
        pending.put(p.requestId, p);
        p.timer = loop.schedule(() -> timedOut(p), timeout.toNanos(), TimeUnit.NANOSECONDS);
        send(p, ch);
        return p;
    }

    private void send(Pending<?> p, Channel ch) {
        p.sentOn = ch;
        p.sentAtNanos = System.nanoTime();
        ch.writeAndFlush(new Frame(p.requestId, p.request)).addListener((ChannelFuture f) -> {
            if (f.isSuccess()) {
                return;
            }
            if (f.cause() instanceof EncoderException) {
                // The request itself cannot be sent (larger than any frame); the connection is fine.
                fail(p, new CmException(CmError.INVALID_PARAMETER.code(), f.cause().getMessage(), f.cause()));
            } else {
                LOG.debug("Write to {} failed: {}", ch.remoteAddress(), f.cause().toString());
                ch.close();
            }
        });
    }

    private void onFrame(Channel ch, Frame frame) {
        Pending<?> p = pending.get(frame.requestId());
        if (p == null || p.sentOn != ch) {
            onUnexpectedFrame(ch, frame);
            return;
        }
        if (frame.message() instanceof Message.NotActive notActive && (p.counted || ready)) {
            if (p.counted) {
                // Not carried out: sent again, whatever its kind, once a node serves.
                p.sentOn = null;
            } else {
                complete(p, notActive);
            }
            leaveNotActiveNode(ch, p, notActive.activeAddress());
            return;
        }
        if (frame.message() instanceof Message.Error refusal && refusal.code() == CmError.REQUEST_OVERLOAD.code()
                && p.counted && resuming != null && resuming.holdsBack(p, ch)) {
            return;
        }
        complete(p, frame.message());
    }

    /**
     * A node that lost the active role, or is not ready to serve (restarting, recovering, reconciling,
     * without a lease certificate), answers requests with NOT_ACTIVE. Whatever the request, also a
     * KEEPALIVE, the client leaves it: staying would keep its handles' keep-alives away from the node
     * that serves them, which would reclaim them.
     */
    private void leaveNotActiveNode(Channel ch, Pending<?> p, String activeAddress) {
        if (!activeAddress.isEmpty()) {
            try {
                redirect = activeNamed(activeAddress);
            } catch (IllegalArgumentException e) {
                LOG.debug("NOT_ACTIVE named an unusable address: {}", e.getMessage());
            }
        }
        LOG.warn("{} answered {} with NOT_ACTIVE: it is not the active node or not ready; reconnecting via {}",
                show(lastConnected), p.request.type(), redirect != null ? show(redirect) : configured());
        ch.close();
    }

    private <T> void complete(Pending<T> p, Message reply) {
        remove(p);
        T value;
        try {
            value = p.onReply.apply(reply);
        } catch (CmException e) {
            p.future.completeExceptionally(e);
            return;
        } catch (RuntimeException e) {
            p.future.completeExceptionally(new CmException(CmError.INVALID_PARAMETER.code(),
                    "could not use the answer to " + p.request.type() + ": " + e, e));
            return;
        }
        p.future.complete(value);
    }

    private void fail(Pending<?> p, CmException error) {
        remove(p);
        p.future.completeExceptionally(error);
    }

    private void remove(Pending<?> p) {
        pending.remove(p.requestId, p);
        if (p.request instanceof Message.Release && p.handle != null) {
            // Answered or given up: either way the handle must not be resumed on a later connection.
            handles.remove(p.handle.handleId(), p.handle);
        }
        if (p.timer != null) {
            p.timer.cancel(false);
        }
        p.release(permits);
    }

    private void timedOut(Pending<?> p) {
        if (pending.get(p.requestId) != p) {
            return;
        }
        if (p.request instanceof Message.Access && p.sentOn != null) {
            abandonedAccesses.add(p.requestId);
            if (abandonedAccesses.size() > MAX_ABANDONED_ACCESSES) {
                abandonedAccesses.remove(abandonedAccesses.iterator().next());
            }
        }
        if (p.sentOn != null && p.sentOn.isActive()) {
            fail(p, new CmException(CmError.NETWORK_FAULT, "no answer to " + p.request.type() + " (request id "
                    + Integer.toUnsignedString(p.requestId) + ") from " + p.sentOn.remoteAddress() + " within "
                    + p.timeout.toMillis() + " ms"));
        } else {
            fail(p, notConnected(p.timeout));
        }
    }

    /** The failure of a request that found no session: the last refusal of HELLO, else 101. */
    private CmException notConnected(Duration timeout) {
        if (lastConnectError != null) {
            return new CmException(lastConnectError.code(), lastConnectError.text(), lastConnectError);
        }
        return new CmException(CmError.SERVER_NOT_FOUND, "no license server answered at " + configured()
                + " within " + timeout.toMillis() + " ms" + (lastAttemptFailure == null ? ""
                : " (last attempt: " + lastAttemptFailure + ")"));
    }

    /**
     * A reply nobody waits for: its request timed out. A handle granted to a timed-out ACCESS would hold
     * a seat until the server reclaims it, so it is released at once.
     */
    private void onUnexpectedFrame(Channel ch, Frame frame) {
        if (frame.message() instanceof Message.AccessOk ok && abandonedAccesses.remove(frame.requestId())
                && ch == channel && ready) {
            LOG.info("Releasing handle {} granted by {} after its ACCESS (request id {}) had timed out",
                    Long.toUnsignedString(ok.handleId()), ch.remoteAddress(),
                    Integer.toUnsignedString(frame.requestId()));
            sendInternal(new Message.Release(ok.handleId()), ch, options.requestTimeout());
            return;
        }
        if (frame.message() instanceof Message.Error error) {
            LOG.debug("ERROR {} from {} for request id {} that is not outstanding: {}", error.code(),
                    ch.remoteAddress(), Integer.toUnsignedString(frame.requestId()), error.text());
        } else {
            LOG.debug("Ignoring {} from {} for request id {} that is not outstanding", frame.message().type(),
                    ch.remoteAddress(), Integer.toUnsignedString(frame.requestId()));
        }
    }

    private void channelInactive(Channel ch) {
        for (Pending<?> p : new ArrayList<>(pending.values())) {
            if (p.sentOn != ch) {
                continue;
            }
            if (p.retryable && !closed) {
                p.sentOn = null;
            } else {
                fail(p, new CmException(CmError.NETWORK_FAULT, "connection to " + ch.remoteAddress()
                        + " lost before the answer to " + p.request.type() + " (request id "
                        + Integer.toUnsignedString(p.requestId) + ")"
                        + (p.counted ? "; not repeated because " + p.request.type() + " is not idempotent" : "")));
            }
        }
        if (ch != channel) {
            return;
        }
        channel = null;
        boolean wasReady = ready;
        ready = false;
        connectedAddress = null;
        cancelKeepAlive();
        if (wasReady && !closed) {
            LOG.warn("Connection to {} lost (session {}, {} handle(s) open); reconnecting via {}",
                    show(lastConnected), Long.toUnsignedString(sessionId), handles.size(), configured());
            startReconnect();
        }
    }

    // ================================================================ connecting (I/O thread)

    /**
     * The longest pause between two rounds of addresses: {@link #FAILOVER_PAUSE_MILLIS} while the session was lost
     * less than a request timeout ago (a fail-over: the standby takes over within seconds, and a waiting request
     * should see it at once), the configured maximum otherwise (no server at all: no need to knock often).
     */
    static long maxPauseMillis(TmrClientOptions options, long sinceLostNanos) {
        long max = options.reconnectBackoffMax().toMillis();
        return sinceLostNanos < options.requestTimeout().toNanos() ? Math.min(FAILOVER_PAUSE_MILLIS, max) : max;
    }

    private void startReconnect() {
        lostAtNanos = System.nanoTime();
        failuresInRound = 0;
        redirectsInRound = 0;
        if (leftSilent != null) {
            // A frozen node still accepts connections (its kernel does) and answers no HELLO: it would cost an
            // attempt timeout first. Its turn comes after the other addresses.
            if (leftSilent.equals(options.addresses().get(nextAddress % options.addresses().size()))) {
                nextAddress++;
            }
        } else if (redirect == null && lastConnected != null && !options.addresses().contains(lastConnected)) {
            // First back to where we were: a restarted server or a moved virtual IP answers there again.
            redirect = lastConnected;
        }
        attemptNext();
    }

    private void attemptNext() {
        if (closed) {
            return;
        }
        InetSocketAddress target;
        boolean redirected;
        if (redirect != null) {
            target = redirect;
            redirect = null;
            redirected = true;
        } else {
            target = options.addresses().get(nextAddress % options.addresses().size());
            redirected = false;
        }
        bootstrap.connect(target).addListener((ChannelFuture connected) -> {
            if (closed) {
                connected.channel().close();
                return;
            }
            if (!connected.isSuccess()) {
                attemptFailed(target, redirected, connected.cause().toString());
                return;
            }
            Channel ch = connected.channel();
            channel = ch;
            lastReadNanos = System.nanoTime();
            ch.pipeline().addFirst(new ReadClock());
            sendInternal(hello, ch, options.attemptTimeout()).future.whenCompleteAsync(
                    (reply, error) -> onHelloAnswer(ch, target, redirected, reply, error), loop);
        });
    }

    private void onHelloAnswer(Channel ch, InetSocketAddress target, boolean redirected, Message reply,
                               Throwable error) {
        if (closed) {
            ch.close();
            return;
        }
        if (error != null) {
            abandon(ch);
            attemptFailed(target, redirected, error.getMessage());
        } else if (channel != ch || !ch.isActive()) {
            abandon(ch);
            attemptFailed(target, redirected, "connection lost after HELLO");
        } else if (reply instanceof Message.HelloOk ok) {
            resumeHandles(ch, target, redirected, ok);
        } else if (reply instanceof Message.NotActive notActive) {
            abandon(ch);
            followNotActive(target, redirected, notActive.activeAddress());
        } else if (reply instanceof Message.Error refusal) {
            abandon(ch);
            if (lastConnectError == null || lastConnectError.code() != refusal.code()) {
                LOG.warn("{} refused HELLO with error {}: {}", show(target), refusal.code(), refusal.text());
            }
            lastConnectError = new CmException(refusal.code(), refusal.text());
            attemptFailed(target, redirected, "HELLO refused with " + refusal.code());
        } else {
            abandon(ch);
            attemptFailed(target, redirected, "unexpected answer to HELLO: " + reply.type());
        }
    }

    private void followNotActive(InetSocketAddress standby, boolean redirected, String activeAddress) {
        if (activeAddress.isEmpty() || redirectsInRound >= MAX_REDIRECTS_PER_ROUND) {
            attemptFailed(standby, redirected, "NOT_ACTIVE: a standby, or a node not ready to serve yet; active node "
                    + (activeAddress.isEmpty() ? "unknown" : activeAddress + " (too many redirects)"));
            return;
        }
        InetSocketAddress active;
        try {
            active = activeNamed(activeAddress);
        } catch (IllegalArgumentException e) {
            attemptFailed(standby, redirected, "NOT_ACTIVE named an unusable address: " + e.getMessage());
            return;
        }
        if (active.equals(leftSilent) && options.addresses().contains(active)) {
            // A standby names the node it last saw active until it takes over; that node was just left for its
            // silence, and each visit costs an attempt timeout. It is one of ours: its turn in the round still
            // comes, should it answer again.
            attemptFailed(standby, redirected, "NOT_ACTIVE names " + show(active)
                    + ", the node just left for answering nothing; not followed");
            return;
        }
        redirectsInRound++;
        if (!redirected) {
            // The standby answered; the next round starts after it, not at it again.
            nextAddress++;
        }
        LOG.info("{} is a standby; following NOT_ACTIVE to the active node {}", show(standby), show(active));
        redirect = active;
        attemptNext();
    }

    /**
     * The active node's address that NOT_ACTIVE names: the configured address when it is one of ours (same host text
     * and port), so that it compares equal to it (a frozen node left, the address connected to); else as written.
     */
    private InetSocketAddress activeNamed(String text) {
        InetSocketAddress named = TmrClientOptions.parseAddress(text);
        for (InetSocketAddress configured : options.addresses()) {
            if (configured.getPort() == named.getPort() && configured.getHostString().equals(named.getHostString())) {
                return configured;
            }
        }
        return named;
    }

    private void abandon(Channel ch) {
        if (channel == ch) {
            channel = null;
        }
        ch.close();
    }

    private void attemptFailed(InetSocketAddress target, boolean redirected, String reason) {
        LOG.debug("Connection attempt to {} failed: {}", show(target), reason);
        lastAttemptFailure = show(target) + ": " + reason;
        if (closed) {
            return;
        }
        if (!redirected) {
            nextAddress++;
            failuresInRound++;
        }
        if (failuresInRound < options.addresses().size()) {
            attemptNext();
            return;
        }
        failuresInRound = 0;
        redirectsInRound = 0;
        long max = maxPauseMillis(options, lostAtNanos == 0 ? Long.MAX_VALUE : System.nanoTime() - lostAtNanos);
        long pause = Math.min(backoffMillis, max);
        backoffMillis = Math.min(backoffMillis * 2, options.reconnectBackoffMax().toMillis());
        if (failedRounds++ == 0) {
            LOG.warn("No license server answered at {} (last: {}: {}); retrying every {}..{} ms", configured(),
                    show(target), reason, pause, max);
        }
        loop.schedule(this::attemptNext, pause, TimeUnit.MILLISECONDS);
    }

    private void resumeHandles(Channel ch, InetSocketAddress target, boolean redirected, Message.HelloOk ok) {
        watchSilence(ch, target);
        resuming = new Resumption(ch, target, redirected, ok);
        resuming.sendMore();
    }

    /**
     * Whether {@code p} waits for its handle's RESUME on the connection of the moment: the session is ready, but that
     * handle has not been answered yet. It is sent once it is ({@link Resumption#answered}), and its handle goes first.
     */
    private boolean waitsForResume(Pending<?> p) {
        Resumption r = resuming;
        if (p.handle == null || r == null || !r.holds(p.handle)) {
            return false;
        }
        r.hurry(p.handle);
        return true;
    }

    /**
     * The RESUME of every open handle on a new connection. The handles that requests wait for are resumed first; once
     * they are answered the session counts as ready and those requests go out, while the other handles are resumed
     * behind them (a request for one of those waits for its RESUME, which then goes first). So a client holding many
     * handles sees its waiting request answered after a few round trips, not after a RESUME of every handle.
     *
     * <p>The handles that requests wait for go one RESUME each. The others, when they are more than one window of
     * RESUMEs ({@link #RESUME_WINDOW}; fewer all go at once anyway), go in RESUME_MANYs of up to {@link #RESUME_BATCH},
     * {@link #RESUME_BATCHES_IN_FLIGHT} at once, to a server that takes them. Whether it does is
     * learnt once per address: on the first reconnect there, one RESUME_MANY of one handle goes out with the urgent
     * RESUMEs and the session waits for it too, so that an older server's refusal of the type (ERROR 105, after which it
     * closes the connection) comes before any request of the application is sent. That address then gets RESUMEs only,
     * and the client connects to it again at once.
     *
     * <p>Only 106 (unknown handle, wrong token), to a RESUME or for an item of a RESUME_MANY, loses a handle. Any other
     * outcome leaves every handle open: 309 is paced (fewer RESUMEs at once, then again on this connection);
     * NOT_ACTIVE (a node not ready to serve, or not the active one), any other ERROR or other code of an item, a
     * timeout or a lost connection fail this connection attempt (or, once the session is ready, close the connection),
     * and the reconnect loop RESUMEs them all again on the next one.
     */
    private final class Resumption {
        private final Channel ch;
        private final InetSocketAddress target;
        private final boolean redirected;
        private final Message.HelloOk ok;
        private final ArrayDeque<LicenseHandle> waiting = new ArrayDeque<>();
        /** Handles not answered yet (waiting or in flight), by identity. */
        private final Set<LicenseHandle> unanswered = Collections.newSetFromMap(new IdentityHashMap<>());
        /** Handles that requests waited for when the connection came: answered before the session is ready. */
        private final Set<LicenseHandle> urgent = Collections.newSetFromMap(new IdentityHashMap<>());
        /** Handles resumed one RESUME each: those requests wait for (the urgent ones, and those hurried). */
        private final Set<LicenseHandle> single = Collections.newSetFromMap(new IdentityHashMap<>());
        private int batchesInFlight;
        /** A RESUME_MANY is out to learn whether the server takes them; no other goes until it is answered. */
        private boolean probing;
        /** More handles than one window to resume behind the urgent ones: they go in RESUME_MANYs where taken. */
        private final boolean batching;
        private int window = RESUME_WINDOW;
        private int inFlight;
        private int resumed;
        private int lost;
        /** The session is ready: the handles left are resumed behind its requests. */
        private boolean behind;
        /** Requests answered 309 for want of room the RESUMEs took, to be sent again ({@link #holdsBack}). */
        private boolean heldBack;
        private boolean over;

        Resumption(Channel ch, InetSocketAddress target, boolean redirected, Message.HelloOk ok) {
            this.ch = ch;
            this.target = target;
            this.redirected = redirected;
            this.ok = ok;
            for (Pending<?> p : pending.values()) {
                if (p.handle != null && handles.get(p.handle.handleId()) == p.handle) {
                    urgent.add(p.handle);
                }
            }
            waiting.addAll(urgent);
            single.addAll(urgent);
            batching = handles.size() - urgent.size() > RESUME_WINDOW;
            boolean probe = batching && !resumesMany.containsKey(target);
            for (LicenseHandle handle : handles.values()) {
                if (!urgent.contains(handle)) {
                    if (probe) {
                        // The first RESUME_MANY to this address: the session waits for its answer as for the urgent
                        // handles' (see above).
                        probe = false;
                        urgent.add(handle);
                    }
                    waiting.add(handle);
                }
            }
            unanswered.addAll(handles.values());
        }

        boolean holds(LicenseHandle handle) {
            return behind && !over && unanswered.contains(handle);
        }

        /**
         * A request of the application answered 309 while RESUMEs of this connection are in flight: the server's room
         * was taken by them, not by the application. Fewer RESUMEs at once, and the request goes out again when one is
         * answered. False (the 309 is the answer) when no RESUME of this connection is in flight.
         */
        boolean holdsBack(Pending<?> p, Channel on) {
            if (!behind || over || on != ch || inFlight == 0) {
                return false;
            }
            p.sentOn = null;
            window = Math.max(1, window / 2);
            heldBack = true;
            return true;
        }

        /**
         * A request waits for {@code handle}: its RESUME goes now, or next when the window is full, unless it is on its
         * way already (alone or in a RESUME_MANY).
         */
        void hurry(LicenseHandle handle) {
            if (waiting.remove(handle)) {
                single.add(handle);
                if (inFlight < window) {
                    sendOne(handle);
                } else {
                    waiting.addFirst(handle);
                }
            }
        }

        void sendMore() {
            if (over) {
                return;
            }
            if (closed) {
                over = true;
                ch.close();
                return;
            }
            if (channel != ch || !ch.isActive()) {
                failed("connection lost during RESUME");
                return;
            }
            if (!behind && urgent.isEmpty()) {
                behind = true;
                sessionReady(ch, target, ok, resumed, lost, unanswered.size());
                if (over || channel != ch) {
                    return;
                }
            }
            if (heldBack) {
                heldBack = false;
                for (Pending<?> p : new ArrayList<>(pending.values())) {
                    if (p.counted && p.sentOn == null && ready && channel == ch && !waitsForResume(p)) {
                        send(p, ch);
                    }
                }
            }
            while (inFlight < window && !waiting.isEmpty()) {
                LicenseHandle handle = waiting.peek();
                if (handles.get(handle.handleId()) != handle) {
                    waiting.poll();
                    done(handle);
                    continue;
                }
                Boolean many = resumesMany.get(target);
                if (!batching || single.contains(handle) || Boolean.FALSE.equals(many)) {
                    waiting.poll();
                    sendOne(handle);
                } else if (many == null ? probing : batchesInFlight >= RESUME_BATCHES_IN_FLIGHT) {
                    break;
                } else {
                    sendBatch(many == null ? 1 : RESUME_BATCH);
                }
            }
            if (!behind && urgent.isEmpty()) {
                sendMore();
                return;
            }
            if (inFlight == 0 && waiting.isEmpty()) {
                over = true;
                forget();
                if (lost > 0 || resumed > 0) {
                    LOG.debug("Every handle answered on {}: {} resumed, {} lost", show(target), resumed, lost);
                }
            }
        }

        private void sendOne(LicenseHandle handle) {
            inFlight++;
            sendInternal(new Message.Resume(handle.handleId(), handle.resumeToken()), ch, options.requestTimeout())
                    .future.whenCompleteAsync((answer, error) -> answered(handle, answer, error), loop);
        }

        /** One RESUME_MANY of the next handles waiting, at most {@code max}, none of those that go alone. */
        private void sendBatch(int max) {
            List<LicenseHandle> batch = new ArrayList<>(Math.min(max, waiting.size()));
            List<Message.Resume> items = new ArrayList<>(Math.min(max, waiting.size()));
            while (batch.size() < max && !waiting.isEmpty() && !single.contains(waiting.peek())) {
                LicenseHandle handle = waiting.poll();
                if (handles.get(handle.handleId()) != handle) {
                    done(handle);
                    continue;
                }
                batch.add(handle);
                items.add(new Message.Resume(handle.handleId(), handle.resumeToken()));
            }
            if (batch.isEmpty()) {
                return;
            }
            inFlight++;
            batchesInFlight++;
            probing = !resumesMany.containsKey(target);
            sendInternal(new Message.ResumeMany(items), ch, options.requestTimeout())
                    .future.whenCompleteAsync((answer, error) -> answeredMany(batch, answer, error), loop);
        }

        private void answeredMany(List<LicenseHandle> batch, Message answer, Throwable error) {
            boolean unknownType = answer instanceof Message.Error refusal
                    && refusal.code() == CmError.INVALID_PARAMETER.code();
            if (unknownType && !Boolean.FALSE.equals(resumesMany.put(target, false))) {
                // Never sent beyond its cap, so the type itself is refused: a server older than RESUME_MANY, which
                // closes the connection after the refusal. RESUMEs there from now on (remembered also when this
                // connection is given up already, for the next one).
                LOG.info("{} does not take RESUME_MANY ({}): resuming there with one RESUME per handle", show(target),
                        ((Message.Error) answer).text());
            }
            if (over) {
                return;
            }
            inFlight--;
            batchesInFlight--;
            probing = false;
            if (unknownType) {
                // Back to the same server at once.
                over = true;
                forget();
                if (behind) {
                    ch.close();
                    return;
                }
                abandon(ch);
                redirect = target;
                attemptNext();
                return;
            }
            if (!(answer instanceof Message.ResumedMany many) || !answers(batch, many)) {
                if (answer instanceof Message.Error refusal && refusal.code() == CmError.REQUEST_OVERLOAD.code()) {
                    overloaded(batch);
                } else {
                    refused(error, answer, "RESUME_MANY of " + batch.size() + " handle(s)");
                }
                return;
            }
            resumesMany.put(target, true);
            List<LicenseHandle> notNow = new ArrayList<>();
            int notNowCode = 0;
            boolean overloadOnly = true;
            for (int i = 0; i < batch.size(); i++) {
                LicenseHandle handle = batch.get(i);
                int code = many.items().get(i).code();
                if (code == Message.ResumedMany.RESUMED) {
                    resumedOne(handle);
                } else if (code == CmError.INVALID_HANDLE.code()) {
                    gone(handle, "RESUME_MANY answered 106 for it");
                } else {
                    notNow.add(handle);
                    notNowCode = code;
                    overloadOnly &= code == CmError.REQUEST_OVERLOAD.code();
                }
            }
            if (notNow.isEmpty()) {
                sendMore();
            } else if (overloadOnly) {
                // A backend's queue was full for these: paced as a 309 to the whole request.
                overloaded(notNow);
            } else {
                LOG.info("{} could not resume {} of {} handle(s) now (code {}, e.g. handle {}); handles kept, trying "
                        + "again", show(target), notNow.size(), batch.size(), notNowCode,
                        Long.toUnsignedString(notNow.get(0).handleId()));
                failed("RESUME_MANY: " + notNow.size() + " handle(s) not resumed now (code " + notNowCode + ")");
            }
        }

        /** Whether {@code many} answers {@code batch}: an outcome for each handle, in its order. */
        private boolean answers(List<LicenseHandle> batch, Message.ResumedMany many) {
            if (many.items().size() != batch.size()) {
                return false;
            }
            for (int i = 0; i < batch.size(); i++) {
                if (many.items().get(i).handleId() != batch.get(i).handleId()) {
                    return false;
                }
            }
            return true;
        }

        private void resumedOne(LicenseHandle handle) {
            resumed++;
            done(handle);
            if (behind) {
                for (Pending<?> p : new ArrayList<>(pending.values())) {
                    if (p.handle == handle && p.sentOn == null && ready && channel == ch) {
                        send(p, ch);
                    }
                }
            }
        }

        /** The server does not know the handle (106): lost, or released if its RELEASE got there first. */
        private void gone(LicenseHandle handle, String why) {
            if (handle.releasing()) {
                // Its RELEASE reached the node, which carried it out and was gone before it answered: released, not
                // lost. The RELEASE waiting to be sent again ends here; close() takes 106 as done.
                LOG.info("Handle {} ({}/{}) was released on the node before the connection was lost (RESUME on {}: {})",
                        Long.toUnsignedString(handle.handleId()), handle.firmCode(), handle.productCode(), show(target),
                        why);
                failPending(handle, new CmException(CmError.INVALID_HANDLE, "handle "
                        + Long.toUnsignedString(handle.handleId()) + " was released before the connection was lost"));
            } else {
                invalidate(handle, target, new Message.Error(CmError.INVALID_HANDLE, why));
                lost++;
            }
            done(handle);
        }

        private void answered(LicenseHandle handle, Message answer, Throwable error) {
            if (over) {
                return;
            }
            inFlight--;
            if (error != null) {
                failed("RESUME did not complete: " + error.getMessage());
            } else if (answer instanceof Message.AccessOk) {
                resumedOne(handle);
                sendMore();
            } else if (answer instanceof Message.Error refusal && refusal.code() == CmError.INVALID_HANDLE.code()) {
                gone(handle, refusal.text());
                sendMore();
            } else if (answer instanceof Message.Error refusal && refusal.code() == CmError.REQUEST_OVERLOAD.code()) {
                overloaded(List.of(handle));
            } else {
                refused(null, answer, "RESUME of handle " + Long.toUnsignedString(handle.handleId()));
            }
        }

        /** Any answer to a RESUME or a RESUME_MANY other than its success, 106 or 309: the handles are kept. */
        private void refused(Throwable error, Message answer, String what) {
            if (error != null) {
                failed(what + " did not complete: " + error.getMessage());
            } else if (answer instanceof Message.NotActive notActive) {
                over = true;
                forget();
                LOG.info("{} answered {} with NOT_ACTIVE: not ready to serve yet; handles kept, trying again",
                        show(target), what);
                if (behind) {
                    // The session was ready: the answer itself closed the connection, and the session reconnects.
                    ch.close();
                    return;
                }
                abandon(ch);
                followNotActive(target, redirected, notActive.activeAddress());
            } else {
                String why = answer instanceof Message.Error refusal
                        ? what + " refused with " + refusal.code() + ": " + refusal.text()
                        : "unexpected answer to " + what + ": " + answer.type();
                LOG.info("{} could not resume now ({}); handles kept, trying again", show(target), why);
                failed(why);
            }
        }

        private void done(LicenseHandle handle) {
            unanswered.remove(handle);
            urgent.remove(handle);
        }

        /** 309: the server takes fewer requests at once than we sent. Fewer, and these again (in their order). */
        private void overloaded(List<LicenseHandle> again) {
            for (int i = again.size() - 1; i >= 0; i--) {
                waiting.addFirst(again.get(i));
            }
            if (inFlight > 0) {
                // The answers still to come make room; the next is sent then.
                window = Math.max(1, window / 2);
                return;
            }
            if (window == 1) {
                failed("RESUME refused with 309 even one at a time");
                return;
            }
            window = Math.max(1, window / 2);
            loop.schedule(this::sendMore, options.reconnectBackoffMin().toNanos(), TimeUnit.NANOSECONDS);
        }

        private void failed(String reason) {
            over = true;
            forget();
            if (behind) {
                // The session was ready: losing its connection reconnects it, and every handle is resumed again.
                LOG.info("Closing the connection to {}: {}", show(target), reason);
                ch.close();
                return;
            }
            abandon(ch);
            attemptFailed(target, redirected, reason);
        }

        private void forget() {
            if (resuming == this) {
                resuming = null;
            }
        }
    }

    private void invalidate(LicenseHandle handle, InetSocketAddress target, Message answer) {
        String why = answer instanceof Message.Error refusal
                ? "RESUME refused with " + refusal.code() + ": " + refusal.text()
                : "unexpected answer to RESUME: " + answer.type();
        LOG.warn("Handle {} ({}/{}) lost on {}: {}", Long.toUnsignedString(handle.handleId()), handle.firmCode(),
                handle.productCode(), show(target), why);
        CmException invalid = new CmException(CmError.INVALID_HANDLE, "handle "
                + Long.toUnsignedString(handle.handleId()) + " could not be resumed after a reconnect: " + why);
        handle.invalidate(invalid);
        failPending(handle, invalid);
    }

    /** The handle is gone on the server: not resumed again, and its requests waiting to be sent fail with {@code why}. */
    private void failPending(LicenseHandle handle, CmException why) {
        handles.remove(handle.handleId(), handle);
        for (Pending<?> p : new ArrayList<>(pending.values())) {
            if (p.handle == handle) {
                fail(p, why);
            }
        }
    }

    private void sessionReady(Channel ch, InetSocketAddress target, Message.HelloOk ok, int resumed, int lost,
                              int behind) {
        boolean reconnect = lastConnected != null;
        ready = true;
        leftSilent = null;
        lastConnected = target;
        lastConnectError = null;
        lastAttemptFailure = null;
        backoffMillis = options.reconnectBackoffMin().toMillis();
        failuresInRound = 0;
        redirectsInRound = 0;
        failedRounds = 0;
        serverKind = ok.serverKind();
        sessionId = ok.sessionId();
        serverName = ok.serverName();
        connectedAddress = target;
        if (reconnect) {
            LOG.info("Reconnected to {} ({} {}, session {}): {} handle(s) resumed, {} lost, {} resumed behind the {} "
                    + "request(s) to send", show(target), ok.serverKind(), ok.serverName(),
                    Long.toUnsignedString(ok.sessionId()), resumed, lost, behind, countUnsent());
        } else {
            LOG.info("Connected to {} ({} {}, session {})", show(target), ok.serverKind(), ok.serverName(),
                    Long.toUnsignedString(ok.sessionId()));
        }
        for (Pending<?> p : new ArrayList<>(pending.values())) {
            if (p.sentOn == null && ch.isActive() && channel == ch && !waitsForResume(p)) {
                send(p, ch);
            }
        }
        if (ok.keepAliveMillis() > 0) {
            keepAliveTask = loop.scheduleAtFixedRate(() -> keepAlive(ch), ok.keepAliveMillis(),
                    ok.keepAliveMillis(), TimeUnit.MILLISECONDS);
        }
        firstSession.complete(null);
    }

    private int countUnsent() {
        int unsent = 0;
        for (Pending<?> p : pending.values()) {
            if (p.sentOn == null) {
                unsent++;
            }
        }
        return unsent;
    }

    private void keepAlive(Channel ch) {
        if (channel != ch || !ready) {
            return;
        }
        sendInternal(new Message.KeepAlive(), ch, options.requestTimeout()).future.whenCompleteAsync((reply, error) -> {
            if (error != null && channel == ch && ch.isActive()) {
                LOG.warn("No answer to KEEPALIVE from {} within {} ms; closing the connection to reconnect",
                        ch.remoteAddress(), options.requestTimeout().toMillis());
                ch.close();
            }
        }, loop);
    }

    private void cancelKeepAlive() {
        if (keepAliveTask != null) {
            keepAliveTask.cancel(false);
            keepAliveTask = null;
        }
        if (liveness != null) {
            liveness.stop();
        }
    }

    // ================================================================ silence (I/O thread)

    private void watchSilence(Channel ch, InetSocketAddress target) {
        if (liveness != null) {
            liveness.stop();
        }
        liveness = new Liveness(ch, target);
    }

    /**
     * The rule for a connection that stays open and says nothing. Every byte read counts as life. When a
     * request sent on the connection has waited {@code silenceTimeout} and nothing was read for as long,
     * one KEEPALIVE goes out as a probe; if nothing at all is read within {@code silenceTimeout} after it,
     * the server is taken for frozen or cut off, and the connection is closed: the requests safe to repeat
     * wait for the next session, as after any lost connection. An answered probe (or any other byte) lets
     * the requests wait on, up to their own timeout; the next probe needs a new silence. Checked four
     * times per {@code silenceTimeout}: one timer per connection, at most one probe outstanding.
     */
    private final class Liveness implements Runnable {
        private final Channel ch;
        private final InetSocketAddress target;
        private final long silenceNanos;
        private final ScheduledFuture<?> task;
        /** When the probe went out (System.nanoTime()); meaningful while {@link #probing}. */
        private long probeAtNanos;
        private boolean probing;

        Liveness(Channel ch, InetSocketAddress target) {
            this.ch = ch;
            this.target = target;
            this.silenceNanos = options.silenceTimeout().toNanos();
            long tick = Math.max(TimeUnit.MILLISECONDS.toNanos(1), silenceNanos / 4);
            this.task = loop.scheduleAtFixedRate(this, tick, tick, TimeUnit.NANOSECONDS);
        }

        void stop() {
            task.cancel(false);
            if (liveness == this) {
                liveness = null;
            }
        }

        @Override
        public void run() {
            if (channel != ch || !ch.isActive() || closed) {
                stop();
                return;
            }
            long now = System.nanoTime();
            if (probing && lastReadNanos - probeAtNanos >= 0) {
                probing = false;
            }
            if (now - lastReadNanos < silenceNanos) {
                return;
            }
            if (probing) {
                if (now - probeAtNanos >= silenceNanos) {
                    leave(now);
                }
                return;
            }
            if (waitedSilently(now - silenceNanos)) {
                probing = true;
                probeAtNanos = now;
                LOG.debug("Nothing read from {} for {} ms while a request waits; probing with KEEPALIVE",
                        show(target), TimeUnit.NANOSECONDS.toMillis(now - lastReadNanos));
                // Its answer counts through the read clock; its own timeout only tidies up.
                sendInternal(new Message.KeepAlive(), ch, options.requestTimeout());
            }
        }

        /** Whether a request on this connection was sent at or before {@code sinceNanos} and still waits. */
        private boolean waitedSilently(long sinceNanos) {
            for (Pending<?> p : pending.values()) {
                if (p.sentOn == ch && p.sentAtNanos - sinceNanos <= 0) {
                    return true;
                }
            }
            return false;
        }

        private void leave(long now) {
            LOG.warn("Nothing read from {} for {} ms while requests waited, not even an answer to a KEEPALIVE "
                    + "probe: taking it for frozen or cut off; leaving it and reconnecting via {}", show(target),
                    TimeUnit.NANOSECONDS.toMillis(now - lastReadNanos), configured());
            stop();
            leftSilent = target;
            ch.close();
        }
    }

    /** Stamps the time of every read of the current connection, before any frame is whole. */
    private final class ReadClock extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (ctx.channel() == channel) {
                lastReadNanos = System.nanoTime();
            }
            ctx.fireChannelRead(msg);
        }
    }

    // ================================================================ closing (I/O thread)

    private List<CompletableFuture<Message>> releaseAllOnClose() {
        List<CompletableFuture<Message>> releases = new ArrayList<>();
        if (!ready) {
            return releases;
        }
        for (LicenseHandle handle : new ArrayList<>(handles.values())) {
            if (handle.markClosed()) {
                Pending<Message> p = sendInternal(new Message.Release(handle.handleId()), handle, channel,
                        options.requestTimeout());
                releases.add(p.future);
            }
        }
        return releases;
    }

    private void shutDown() {
        closed = true;
        ready = false;
        cancelKeepAlive();
        CmException closedError = new CmException(CmError.NETWORK_FAULT, "the client is closed");
        for (Pending<?> p : new ArrayList<>(pending.values())) {
            fail(p, closedError);
        }
        for (LicenseHandle handle : handles.values()) {
            handle.markClosed();
        }
        handles.clear();
        if (channel != null) {
            channel.close();
            channel = null;
        }
        connectedAddress = null;
        firstSession.completeExceptionally(closedError);
    }

    // ================================================================ threads

    private <T> T onLoop(Callable<T> task) {
        try {
            return loop.submit(task).get(options.requestTimeout().toNanos() + CALLER_SLACK_NANOS, TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CmException(CmError.NETWORK_FAULT.code(), "interrupted", e);
        } catch (ExecutionException | TimeoutException | RejectedExecutionException e) {
            throw new CmException(CmError.NETWORK_FAULT.code(), "the client's I/O thread did not answer: " + e, e);
        }
    }

    /** {@code host:port} as configured, without the resolver's {@code /<unresolved>} noise. */
    static String show(InetSocketAddress address) {
        return address == null ? "none" : address.getHostString() + ":" + address.getPort();
    }

    private String configured() {
        StringJoiner joined = new StringJoiner(", ", "[", "]");
        options.addresses().forEach(address -> joined.add(show(address)));
        return joined.toString();
    }

    /** Waits for a future in the caller's thread; the I/O thread's timer normally ends it first. */
    static <T> T await(CompletableFuture<T> future, Duration timeout, String what) {
        try {
            return future.get(timeout.toNanos() + CALLER_SLACK_NANOS, TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof CmException cm) {
                throw cm.inCallerThread();
            }
            throw new CmException(CmError.NETWORK_FAULT.code(), what + " failed: " + e.getCause(), e.getCause());
        } catch (TimeoutException e) {
            throw new CmException(CmError.NETWORK_FAULT.code(), "no answer to " + what + " within "
                    + timeout.toMillis() + " ms", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CmException(CmError.NETWORK_FAULT.code(), "interrupted while waiting for " + what, e);
        }
    }

    /** A request from its submission to its reply, timeout or failure. Fields are touched only on the I/O thread. */
    private static final class Pending<T> {
        final int requestId;
        final Message request;
        final boolean retryable;
        final boolean counted;
        final LicenseHandle handle;
        final Function<Message, T> onReply;
        final Duration timeout;
        final CompletableFuture<T> future = new CompletableFuture<>();
        ScheduledFuture<?> timer;
        /** The connection it was last written to; {@code null} while it waits for a session. */
        Channel sentOn;
        /** When it was last written (System.nanoTime()). */
        long sentAtNanos;
        private boolean released;

        Pending(int requestId, Message request, boolean retryable, boolean counted, LicenseHandle handle,
                Function<Message, T> onReply, Duration timeout) {
            this.requestId = requestId;
            this.request = request;
            this.retryable = retryable;
            this.counted = counted;
            this.handle = handle;
            this.onReply = onReply;
            this.timeout = timeout;
        }

        void release(Semaphore permits) {
            if (counted && !released) {
                released = true;
                permits.release();
            }
        }
    }

    /** Hands every frame and connection loss to the I/O-thread logic above. */
    private final class ReplyHandler extends SimpleChannelInboundHandler<Frame> {

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
            onFrame(ctx.channel(), frame);
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            ClientConnection.this.channelInactive(ctx.channel());
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            LOG.debug("Closing connection to {} after an error: {}", ctx.channel().remoteAddress(), cause.toString());
            ctx.close();
        }
    }
}
