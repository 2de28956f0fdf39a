package io.opentmr.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundHandlerAdapter;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.embedded.EmbeddedChannel;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.ServerKind;
import io.opentmr.protocol.testing.NoLeaks;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** The plumbing every session shares, on an {@link EmbeddedChannel} whose clock the test moves. */
@ExtendWith(NoLeaks.class)
@Timeout(10)
class FrameSessionTest {

    private static final FrameSession.Limits LIMITS = new FrameSession.Limits(Duration.ofSeconds(10),
            Duration.ofSeconds(3), 2);

    private final TestSession session = new TestSession();
    private final EmbeddedChannel channel = new EmbeddedChannel(session);

    @AfterEach
    void release() {
        channel.finishAndReleaseAll();
    }

    @Test
    void aConnectionWithoutHelloIsClosedAtTheHelloTimeout() {
        channel.advanceTimeBy(9, TimeUnit.SECONDS);
        channel.runScheduledPendingTasks();
        assertTrue(channel.isOpen(), "not before the timeout");
        channel.advanceTimeBy(2, TimeUnit.SECONDS);
        channel.runScheduledPendingTasks();
        assertFalse(channel.isOpen());
    }

    @Test
    void aConnectionThatSaidHelloIsKept() {
        channel.writeInbound(new Frame(1, new Message.Hello("t", "h", "u", 1)));
        assertInstanceOf(Message.HelloOk.class, next(1));
        channel.advanceTimeBy(11, TimeUnit.SECONDS);
        channel.runScheduledPendingTasks();
        assertTrue(channel.isOpen());
    }

    @Test
    void noRequestIsReadWhileTheClientDoesNotTakeItsReplies() {
        channel.config().setWriteBufferWaterMark(new WriteBufferWaterMark(8, 16));
        channel.write(Unpooled.buffer(64).writeZero(64));
        channel.runPendingTasks();
        assertFalse(channel.isWritable());
        assertFalse(channel.config().isAutoRead(), "reading stops above the high water mark");
        channel.flush();
        channel.runPendingTasks();
        assertTrue(channel.isWritable());
        assertTrue(channel.config().isAutoRead(), "and starts again once the replies are taken");
    }

    @Test
    void anIoErrorClosesTheConnection() {
        channel.pipeline().fireExceptionCaught(new IOException("Connection reset by peer"));
        assertFalse(channel.isOpen());
    }

    @Test
    void requestsBeyondTheBoundAre309AndEachGetsOneAnswerWithItsId() {
        CompletableFuture<Message> first = session.nextAnswer();
        CompletableFuture<Message> second = session.nextAnswer();
        channel.writeInbound(access(10), access(11), access(12));
        assertEquals(CmError.REQUEST_OVERLOAD.code(), ((Message.Error) next(12)).code(), "the third is refused");
        assertEquals(2, session.asked, "and never asked for");
        assertNull(channel.readOutbound(), "the others wait for their answers");

        second.complete(new Message.Ok());
        channel.runPendingTasks();
        assertInstanceOf(Message.Ok.class, next(11), "answers go out in the order they come");
        CompletableFuture<Message> third = session.nextAnswer();
        channel.writeInbound(access(13));
        assertEquals(3, session.asked, "room again for one more");
        first.complete(new Message.Ok());
        third.complete(new Message.Ok());
        channel.runPendingTasks();
        assertInstanceOf(Message.Ok.class, next(10));
        assertInstanceOf(Message.Ok.class, next(13));
    }

    @Test
    void asksAnsweredTogetherInsideAReplyBatchAreWrittenInOneTaskWithOneFlush() {
        CompletableFuture<Message> first = session.nextAnswer();
        CompletableFuture<Message> second = session.nextAnswer();
        channel.writeInbound(access(50), access(51));
        int[] flushes = {0};
        channel.pipeline().addFirst(new ChannelOutboundHandlerAdapter() {
            @Override
            public void flush(ChannelHandlerContext ctx) {
                flushes[0]++;
                ctx.flush();
            }
        });
        ReplyBatch.run(() -> {
            first.complete(new Message.Ok());
            second.complete(new Message.Ok());
        });
        channel.runPendingTasks();
        assertInstanceOf(Message.Ok.class, next(50));
        assertInstanceOf(Message.Ok.class, next(51));
        assertEquals(1, flushes[0], "both answers went to the socket in one write");
    }

    @Test
    void aKeepAliveIsAnsweredWhileRequestsFillTheBound() {
        session.nextAnswer();
        session.nextAnswer();
        channel.writeInbound(access(10), access(11), access(12));
        assertEquals(CmError.REQUEST_OVERLOAD.code(), ((Message.Error) next(12)).code(), "the bound holds for data");
        CompletableFuture<Message> alive = session.nextAnswer();
        channel.writeInbound(new Frame(13, new Message.KeepAlive()));
        assertEquals(3, session.asked, "the keep-alive was taken beyond the bound");
        alive.complete(new Message.Ok());
        channel.runPendingTasks();
        assertInstanceOf(Message.Ok.class, next(13));
    }

    @Test
    void aTimedOutAnswerIs100AndARefusalIsWhatTheSessionMakesOfIt() {
        CompletableFuture<Message> timedOut = session.nextAnswer();
        CompletableFuture<Message> refused = session.nextAnswer();
        channel.writeInbound(access(20), access(21));
        timedOut.completeExceptionally(new TimeoutException("ask timed out"));
        refused.completeExceptionally(new CompletionException(new Refusal(CmError.NO_MORE_LICENSES)));
        channel.runPendingTasks();
        Message.Error error = (Message.Error) next(20);
        assertEquals(CmError.NETWORK_FAULT.code(), error.code());
        assertTrue(error.text().contains("did not answer within 3000 ms"), error.text());
        assertEquals(CmError.NO_MORE_LICENSES.code(), ((Message.Error) next(21)).code());
    }

    @Test
    void anAnswerThatCannotBeTurnedIntoAReplyIs100NotSilence() {
        session.nextAnswer().complete(null);
        channel.writeInbound(access(30));
        channel.runPendingTasks();
        assertEquals(CmError.NETWORK_FAULT.code(), ((Message.Error) next(30)).code());
        CompletableFuture<Message> after = session.nextAnswer();
        channel.writeInbound(access(31));
        after.complete(new Message.Ok());
        channel.runPendingTasks();
        assertInstanceOf(Message.Ok.class, next(31), "its slot was given back");
    }

    @Test
    void anAnswerGivenLaterIsWrittenAndOneNotGivenInTimeIs100AndItsLateAnswerIsDropped() {
        channel.writeInbound(release(40), release(41), release(42));
        assertEquals(CmError.REQUEST_OVERLOAD.code(), ((Message.Error) next(42)).code(), "the same bound");
        FrameSession.Pending<Message> answered = session.later.remove();
        FrameSession.Pending<Message> never = session.later.remove();
        answered.succeed(new Message.Ok());
        channel.runPendingTasks();
        assertInstanceOf(Message.Ok.class, next(40));

        pass(2_900);
        assertNull(channel.readOutbound(), "not before the request timeout");
        pass(1_000);
        Message.Error error = (Message.Error) next(41);
        assertEquals(CmError.NETWORK_FAULT.code(), error.code());
        assertTrue(error.text().contains("did not answer within 3000 ms"), error.text());

        never.succeed(new Message.Ok());
        channel.runPendingTasks();
        assertNull(channel.readOutbound(), "answered once: the late answer is dropped");
        channel.writeInbound(release(43), release(44));
        session.later.remove().fail(new Refusal(CmError.INVALID_HANDLE));
        channel.runPendingTasks();
        assertEquals(CmError.INVALID_HANDLE.code(), ((Message.Error) next(43)).code(), "both slots were given back");
        assertEquals(1, session.later.size());
    }

    @Test
    void everyAnsweredRequestIsObservedOnceWithItsTypeAndItsReplyAndADroppedLateAnswerIsNot() {
        channel.writeInbound(new Frame(1, new Message.Hello("t", "h", "u", 1)));
        session.nextAnswer().complete(new Message.Ok());
        session.nextAnswer().completeExceptionally(new CompletionException(new Refusal(CmError.NO_MORE_LICENSES)));
        channel.writeInbound(access(2), access(3));
        channel.runPendingTasks();
        // Both slots taken by two RELEASEs answered later: the third request of the batch is refused at once.
        channel.writeInbound(release(4), release(5), access(6));
        assertEquals(List.of(
                new Observed(MessageType.HELLO, "HelloOk"),
                new Observed(MessageType.ACCESS, "Ok"),
                new Observed(MessageType.ACCESS, "Error " + CmError.NO_MORE_LICENSES.code()),
                new Observed(MessageType.ACCESS, "Error " + CmError.REQUEST_OVERLOAD.code())), session.observed(),
                "a reply written now, an answer, a refusal and an overload: each once, with its request's type");
        assertEquals(4, outbound(), "and each one written");

        // A RELEASE answered later is observed as a RELEASE (the type read with it, not the last one read: ACCESS),
        // when its answer is written.
        session.later.remove().succeed(new Message.Ok());
        channel.runPendingTasks();
        assertEquals(new Observed(MessageType.RELEASE, "Ok"), session.observed().get(4));
        // One never answered is observed once as the ERROR 100 it gets at the request timeout; its late answer,
        // dropped, is not observed again.
        FrameSession.Pending<Message> late = session.later.remove();
        pass(4_000);
        assertEquals(new Observed(MessageType.RELEASE, "Error " + CmError.NETWORK_FAULT.code()),
                session.observed().get(5));
        late.succeed(new Message.Ok());
        channel.runPendingTasks();
        assertEquals(6, session.observed().size(), "the late answer is dropped, not counted: " + session.observed());
        assertEquals(2, outbound());
        assertTrue(session.nanos.stream().allMatch(nanos -> nanos >= 0), "durations: " + session.nanos);
    }

    /** Reads (and drops) every frame written so far: how many. */
    private int outbound() {
        int frames = 0;
        while (channel.readOutbound() != null) {
            frames++;
        }
        return frames;
    }

    /** Moves the channel's clock on in small steps, running what falls due, as an event loop would. */
    private void pass(long millis) {
        for (long step = 0; step < millis; step += 50) {
            channel.advanceTimeBy(50, TimeUnit.MILLISECONDS);
            channel.runScheduledPendingTasks();
        }
    }

    private static Frame release(int id) {
        return new Frame(id, new Message.Release(7));
    }

    private static Frame access(int id) {
        return new Frame(id, new Message.Access(6_000_010, 42, 0, AccessMode.USERLIMIT));
    }

    private Message next(int expectedId) {
        Frame frame = channel.readOutbound();
        assertEquals(expectedId, frame.requestId(), "reply to request " + expectedId + ": " + frame);
        return frame.message();
    }

    /** A refusal of the session's own kind, like the backend's container refusals. */
    private static final class Refusal extends RuntimeException {
        private static final long serialVersionUID = 1L;
        final CmError error;

        Refusal(CmError error) {
            super(error.text());
            this.error = error;
        }
    }

    /** What the session's observer was told of one request: its type, and its reply's class (and error code). */
    private record Observed(MessageType request, String reply) {
        static Observed of(MessageType request, Message reply) {
            return new Observed(request, reply instanceof Message.Error error ? "Error " + error.code()
                    : reply.getClass().getSimpleName());
        }
    }

    /**
     * HELLO, and ACCESS answered by whatever future the test lines up; every answer observed, as metrics
     * observe them.
     */
    @Test
    void theAnswersOfOneBatchOnAConnectionGoOutWithOneFlush() {
        int[] flushes = new int[1];
        channel.pipeline().addFirst(new io.netty.channel.ChannelOutboundHandlerAdapter() {
            @Override
            public void flush(ChannelHandlerContext ctx) throws Exception {
                flushes[0]++;
                super.flush(ctx);
            }
        });
        channel.writeInbound(new Frame(1, new Message.Hello("t", "h", "u", 1)));
        assertInstanceOf(Message.HelloOk.class, next(1));
        channel.writeInbound(new Frame(2, new Message.Release(7)), new Frame(3, new Message.Release(8)));
        int before = flushes[0];
        ReplyBatch.run(() -> {
            session.later.remove().succeed(new Message.Ok());
            session.later.remove().succeed(new Message.Ok());
        });
        channel.runPendingTasks();
        assertEquals(1, flushes[0] - before, "one flush for the batch's two answers on this connection");
        assertInstanceOf(Message.Ok.class, next(2));
        assertInstanceOf(Message.Ok.class, next(3));
        channel.writeInbound(new Frame(4, new Message.Release(9)));
        session.later.remove().succeed(new Message.Ok());
        channel.runPendingTasks();
        assertInstanceOf(Message.Ok.class, next(4), "outside a batch an answer is flushed at once");
        assertEquals(2, flushes[0] - before);
    }

    private static final class TestSession extends FrameSession {
        private final Queue<CompletableFuture<Message>> answers = new ArrayDeque<>();
        /** RELEASE is answered later, by the test. */
        final Queue<FrameSession.Pending<Message>> later = new ArrayDeque<>();
        private final List<Observed> observed;
        final List<Long> nanos;
        int asked;

        TestSession() {
            this(new ArrayList<>(), new ArrayList<>());
        }

        private TestSession(List<Observed> observed, List<Long> nanos) {
            super(LIMITS, (request, reply, took) -> {
                observed.add(Observed.of(request, reply));
                nanos.add(took);
            });
            this.observed = observed;
            this.nanos = nanos;
        }

        List<Observed> observed() {
            return observed;
        }

        CompletableFuture<Message> nextAnswer() {
            CompletableFuture<Message> answer = new CompletableFuture<>();
            answers.add(answer);
            return answer;
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
            if (frame.message() instanceof Message.Hello) {
                helloDone();
                reply(ctx, frame.requestId(), new Message.HelloOk(ServerKind.BACKEND, 1, 10_000, "test"));
                return;
            }
            if (frame.message() instanceof Message.Release) {
                this.<Message>answerLater(ctx, frame.requestId(), later::add, answer -> answer);
                return;
            }
            answer(ctx, frame.requestId(), () -> {
                asked++;
                return answers.remove();
            }, answer -> {
                if (answer == null) {
                    throw new IllegalStateException("no reply for a missing answer");
                }
                return answer;
            });
        }

        @Override
        protected Message failure(int id, Throwable cause) {
            if (cause instanceof Refusal refusal) {
                return new Message.Error(refusal.error, refusal.getMessage());
            }
            return super.failure(id, cause);
        }
    }
}
