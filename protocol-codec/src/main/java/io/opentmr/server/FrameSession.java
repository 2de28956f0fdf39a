package io.opentmr.server;

import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.util.concurrent.ScheduledFuture;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import java.time.Duration;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.Objects;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What every session on a {@link FrameServer} does besides its own requests, so that a backend's and
 * a TMR node's sessions behave alike on the wire:
 *
 * <ul>
 *   <li>a connection that has not said HELLO (or passed the peer challenge, see {@link #helloDone})
 *       within the hello timeout is closed;</li>
 *   <li>while the client does not take its replies (the channel is not writable), no more requests are
 *       read from it, so a slow client only slows itself;</li>
 *   <li>an I/O error closes the connection, never the server;</li>
 *   <li>{@link #answer} and {@link #answerLater} bound the requests in flight (ERROR 309 beyond) and write
 *       each reply, in any order, with its request id, on the channel's event loop; a failed answer becomes
 *       an ERROR.</li>
 * </ul>
 *
 * <p>A subclass handles {@link #channelRead0} and calls {@code super} when it overrides a channel
 * event. Everything runs on the channel's event loop, so no state here needs a lock.
 */
public abstract class FrameSession extends SimpleChannelInboundHandler<Frame> {

    /**
     * @param helloTimeout   how long a connection may stay without HELLO
     * @param requestTimeout the bound the session's answers are asked with (named in the ERROR 100 text)
     * @param maxInFlight    requests answered at once; the next is refused with 309
     */
    public record Limits(Duration helloTimeout, Duration requestTimeout, int maxInFlight) {

        public Limits {
            Objects.requireNonNull(helloTimeout, "helloTimeout");
            Objects.requireNonNull(requestTimeout, "requestTimeout");
            if (maxInFlight < 1) {
                throw new IllegalArgumentException("maxInFlight must be at least 1: " + maxInFlight);
            }
        }
    }

    /** Logs under the concrete session's name, where operators look for its connection events. */
    private final Logger log = LoggerFactory.getLogger(getClass());
    private final Limits limits;
    private final RequestObserver observer;
    /** The request being read now (set around {@link #channelRead0}), for the answers written while it is. */
    private MessageType readType;
    private long readAt;
    /** The in-flight bound now: the limits' own, or a higher one a session granted later (an authenticated peer). */
    private int maxInFlight;
    private ScheduledFuture<?> helloDeadline;
    private boolean helloDone;
    private int inFlight;
    private String remote = "?";
    /** Requests of {@link #answerLater} not answered yet, oldest first: the oldest has the nearest deadline. */
    private final LinkedHashSet<Pending<?>> pending = new LinkedHashSet<>();
    /** Whether a sweep of {@link #pending} for answers past the request timeout is scheduled. */
    private boolean sweepScheduled;
    /** Sweeps so far; a request waits {@value #SWEEPS_PER_TIMEOUT} whole sweep periods at least. */
    private long sweeps;
    /** A sweep every request timeout / this: a request is answered ERROR 100 within 1.25 times the timeout. */
    private static final int SWEEPS_PER_TIMEOUT = 4;

    protected FrameSession(Limits limits) {
        this(limits, RequestObserver.NONE);
    }

    /** @param observer told of every request answered (metrics), on the event loop */
    protected FrameSession(Limits limits, RequestObserver observer) {
        this.limits = Objects.requireNonNull(limits, "limits");
        this.observer = Objects.requireNonNull(observer, "observer");
        this.maxInFlight = limits.maxInFlight();
    }

    /** Notes which request is read and when, so that its answer, now or later, is observed with it. */
    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
        if (msg instanceof Frame frame) {
            readType = frame.message().type();
            readAt = System.nanoTime();
            try {
                super.channelRead(ctx, msg);
            } finally {
                readType = null;
            }
        } else {
            super.channelRead(ctx, msg);
        }
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) throws Exception {
        remote = String.valueOf(ctx.channel().remoteAddress());
        helloDeadline = ctx.executor().schedule(() -> {
            if (!helloDone) {
                log.info("Closing connection {}: no HELLO within {} ms", remote, limits.helloTimeout().toMillis());
                ctx.close();
            }
        }, limits.helloTimeout().toNanos(), TimeUnit.NANOSECONDS);
        super.channelActive(ctx);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
        if (helloDeadline != null) {
            helloDeadline.cancel(false);
        }
        // Nobody reads the answers any more: late ones are dropped, and no sweep needs to time them out.
        pending.forEach(p -> p.answered = true);
        pending.clear();
        super.channelInactive(ctx);
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) throws Exception {
        // Back-pressure: while the client does not take its replies, take no more requests from it.
        ctx.channel().config().setAutoRead(ctx.channel().isWritable());
        super.channelWritabilityChanged(ctx);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        log.info("Closing connection {} after an I/O error: {}", remote, cause.toString());
        ctx.close();
    }

    /**
     * Allows this connection more requests in flight from now on: a TMR node carries the requests of all its
     * clients on one connection per backend.
     */
    protected final void maxInFlight(int bound) {
        if (bound < 1) {
            throw new IllegalArgumentException("maxInFlight must be at least 1: " + bound);
        }
        maxInFlight = bound;
    }

    /**
     * Whether the request being read finds no room: {@code maxInFlight} requests are in flight, or, for one that keeps
     * the connection alive ({@link MessageType#keepsAlive()}), {@link MessageType#LIVENESS_RESERVE} more.
     */
    private boolean full() {
        int bound = readType != null && readType.keepsAlive() ? maxInFlight + MessageType.LIVENESS_RESERVE
                : maxInFlight;
        return inFlight >= bound;
    }

    /** The connection said HELLO (or passed the peer challenge): the hello deadline no longer applies. */
    protected final void helloDone() {
        helloDone = true;
        if (helloDeadline != null) {
            helloDeadline.cancel(false);
        }
    }

    /** Whether {@link #helloDone()} was called on this connection. */
    protected final boolean isHelloDone() {
        return helloDone;
    }

    /**
     * Asks for the answer to request {@code id} and writes it when it comes, as {@code reply} makes it,
     * or as {@link #failure} makes it from a failure. Beyond {@link Limits#maxInFlight()} unanswered
     * requests, {@code request} is not called and the answer is ERROR 309 at once.
     */
    protected final <T> void answer(ChannelHandlerContext ctx, int id, Supplier<? extends CompletionStage<T>> request,
                                    Function<? super T, ? extends Message> reply) {
        if (full()) {
            error(ctx, id, CmError.REQUEST_OVERLOAD, "more than " + maxInFlight
                    + " requests in flight on this connection");
            return;
        }
        inFlight++;
        MessageType type = readType;
        long since = readAt;
        CompletionStage<T> answer;
        try {
            answer = request.get();
        } catch (RuntimeException e) {
            inFlight--;
            reply(ctx, id, failure(id, e));
            return;
        }
        // On the channel's event loop: the reply is written there anyway, and the JDK's default async
        // executor would otherwise run this on a new thread per reply on a 2-core machine. An actor that completes
        // answers inside a ReplyBatch (a TMR license after a journal write) hands each loop its replies in one task.
        answer.whenCompleteAsync((value, failed) -> {
            inFlight--;
            Message message;
            if (failed == null) {
                try {
                    message = reply.apply(value);
                } catch (RuntimeException e) {
                    message = failure(id, e);
                }
            } else {
                message = failure(id, failed instanceof CompletionException && failed.getCause() != null
                        ? failed.getCause() : failed);
            }
            send(ctx, id, message, type, since);
        }, task -> ReplyBatch.execute(ctx.executor(), task));
    }

    /**
     * The answer to one request of {@link #answerLater}: completed once, from any thread (an actor's), with
     * {@link #succeed} or {@link #fail}; the reply is written on the channel's event loop. Past the request
     * timeout the client has been told ERROR 100 and a completion is dropped.
     */
    public static final class Pending<T> {

        private final FrameSession session;
        private final ChannelHandlerContext ctx;
        private final int id;
        private final Function<? super T, ? extends Message> reply;
        /** The session's sweep count when the request came. */
        private final long since;
        private final MessageType type;
        private final long readAt;
        /** Set on the event loop only: answered, timed out, or the connection closed. */
        private boolean answered;

        private Pending(FrameSession session, ChannelHandlerContext ctx, int id,
                        Function<? super T, ? extends Message> reply, long since,
                        MessageType type, long readAt) {
            this.type = type;
            this.readAt = readAt;
            this.session = session;
            this.ctx = ctx;
            this.id = id;
            this.reply = reply;
            this.since = since;
        }

        /** Completes the answer; inside a {@link ReplyBatch#run} the reply waits for the batch's end. */
        public void succeed(T value) {
            ReplyBatch.execute(ctx.executor(), () -> session.finish(this, value, null));
        }

        /** Fails the answer; inside a {@link ReplyBatch#run} the reply waits for the batch's end. */
        public void fail(Throwable cause) {
            ReplyBatch.execute(ctx.executor(), () -> session.finish(this, null, cause));
        }
    }

    /**
     * As {@link #answer}, for a request that an actor answers directly instead of through an ask: {@code request}
     * is handed the {@link Pending} to complete. No ask, no future and no timer per request: a sweep per
     * connection, while it has requests waiting, answers those left past the request timeout with ERROR 100.
     * It counts its own runs rather than reading a clock, so it keeps the event loop's time (a test's too).
     */
    protected final <T> void answerLater(ChannelHandlerContext ctx, int id, Consumer<Pending<T>> request,
                                         Function<? super T, ? extends Message> reply) {
        if (full()) {
            error(ctx, id, CmError.REQUEST_OVERLOAD, "more than " + maxInFlight
                    + " requests in flight on this connection");
            return;
        }
        Pending<T> answer = new Pending<>(this, ctx, id, reply, sweeps, readType, readAt);
        inFlight++;
        pending.add(answer);
        if (!sweepScheduled) {
            sweepScheduled = true;
            scheduleSweep(ctx);
        }
        try {
            request.accept(answer);
        } catch (RuntimeException e) {
            finish(answer, null, e);
        }
    }

    private <T> void finish(Pending<T> answer, T value, Throwable failed) {
        if (answer.answered) {
            return;
        }
        answer.answered = true;
        pending.remove(answer);
        inFlight--;
        Message message;
        if (failed == null) {
            try {
                message = answer.reply.apply(value);
            } catch (RuntimeException e) {
                message = failure(answer.id, e);
            }
        } else {
            message = failure(answer.id, failed);
        }
        send(answer.ctx, answer.id, message, answer.type, answer.readAt);
    }

    private void scheduleSweep(ChannelHandlerContext ctx) {
        ctx.executor().schedule(() -> sweep(ctx), limits.requestTimeout().toNanos() / SWEEPS_PER_TIMEOUT,
                TimeUnit.NANOSECONDS);
    }

    /** Answers the requests that waited the request timeout with ERROR 100; goes on while any wait. */
    private void sweep(ChannelHandlerContext ctx) {
        sweeps++;
        for (Iterator<Pending<?>> oldest = pending.iterator(); oldest.hasNext(); ) {
            Pending<?> next = oldest.next();
            if (sweeps - next.since <= SWEEPS_PER_TIMEOUT) {
                break;
            }
            oldest.remove();
            next.answered = true;
            inFlight--;
            send(ctx, next.id, failure(next.id, new TimeoutException("not answered within "
                    + limits.requestTimeout().toMillis() + " ms")), next.type, next.readAt);
        }
        if (pending.isEmpty()) {
            sweepScheduled = false;
        } else {
            scheduleSweep(ctx);
        }
    }

    /**
     * The answer for a request that failed with {@code cause}: ERROR 100, the request was not answered in time
     * or not carried out. A session whose answers fail with refusals of their own maps those first (a TMR node that
     * no longer serves answers NOT_ACTIVE).
     */
    protected Message failure(int id, Throwable cause) {
        if (cause instanceof TimeoutException) {
            log.warn("Request {} of {} not answered within {} ms", Integer.toUnsignedString(id), who(),
                    limits.requestTimeout().toMillis());
            return new Message.Error(CmError.NETWORK_FAULT, "the server did not answer within "
                    + limits.requestTimeout().toMillis() + " ms");
        }
        log.error("Request {} of {} failed", Integer.toUnsignedString(id), who(), cause);
        return new Message.Error(CmError.NETWORK_FAULT, "the server failed to process the request: " + cause);
    }

    /** Who this connection is, for log lines: the session id once known, by default the remote address. */
    protected String who() {
        return "connection " + remote;
    }

    /** Writes the answer to the request being read now. */
    protected final void reply(ChannelHandlerContext ctx, int id, Message message) {
        send(ctx, id, message, readType, readAt);
    }

    private void send(ChannelHandlerContext ctx, int id, Message message, MessageType type,
                      long since) {
        Frame frame = new Frame(id, message);
        // Counted before it is written: a client that has its answer finds it in the metrics.
        observe(type, message, since);
        if (ReplyBatch.flushLater(ctx.channel())) {
            ctx.channel().write(frame, ctx.channel().voidPromise());
        } else {
            ctx.channel().writeAndFlush(frame, ctx.channel().voidPromise());
        }
    }

    private void observe(MessageType type, Message message, long since) {
        if (type != null) {
            observer.answered(type, message, System.nanoTime() - since);
        }
    }

    protected final void error(ChannelHandlerContext ctx, int id, CmError error, String text) {
        reply(ctx, id, new Message.Error(error, text));
    }

    /** The last frame of a connection: a refusal, after which the server closes it. */
    protected final void replyAndClose(ChannelHandlerContext ctx, int id, Message message) {
        observe(readType, message, readAt);
        ctx.writeAndFlush(new Frame(id, message)).addListener(ChannelFutureListener.CLOSE);
    }
}
