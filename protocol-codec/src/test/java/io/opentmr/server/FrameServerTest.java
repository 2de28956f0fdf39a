package io.opentmr.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.channel.ChannelHandlerContext;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CodecLimits;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ServerKind;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import java.time.Duration;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** The listener on loopback, through real sockets and the frame codec. */
@ExtendWith(NoLeaks.class)
@Timeout(20)
class FrameServerTest {

    private final Semaphore sessionsClosed = new Semaphore(0);
    private FrameServer server;

    @BeforeEach
    void start() throws InterruptedException {
        server = FrameServer.start("127.0.0.1", 0, 2, CodecLimits.DEFAULT, HelloSession::new);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    @Test
    void connectionsBeyondTheLimitAreTold309AndClosedAndAClosedOneMakesRoom() throws Exception {
        RawConnection first = connect();
        try (RawConnection second = connect()) {
            assertInstanceOf(Message.HelloOk.class, first.hello());
            assertInstanceOf(Message.HelloOk.class, second.hello());
            try (RawConnection third = connect()) {
                Frame refused = third.read();
                assertEquals(CmError.REQUEST_OVERLOAD.code(), ((Message.Error) refused.message()).code());
                assertTrue(third.closedByServer());
            }
            first.close();
            // The refused third one and the first: the limit counts a connection until the server saw it go.
            assertTrue(sessionsClosed.tryAcquire(2, 5, TimeUnit.SECONDS), "the server saw both go");
            try (RawConnection fourth = connect()) {
                assertInstanceOf(Message.HelloOk.class, fourth.hello());
            }
        }
    }

    @Test
    void aMalformedFrameClosesItsConnectionOnly() throws Exception {
        try (RawConnection good = connect(); RawConnection bad = connect()) {
            assertInstanceOf(Message.HelloOk.class, good.hello());
            bad.sendRaw(new byte[] {0, 0, 0, 6, 9, 1, 0, 0, 0, 1});
            assertEquals(CmError.INVALID_PARAMETER.code(), ((Message.Error) bad.read().message()).code());
            assertTrue(bad.closedByServer());
            assertInstanceOf(Message.Ok.class, good.request(new Message.KeepAlive()));
        }
    }

    private RawConnection connect() throws Exception {
        return new RawConnection(server.localAddress());
    }

    /** Says HELLO_OK and answers KEEPALIVE; counts the connections it saw closed. */
    private final class HelloSession extends FrameSession {

        HelloSession() {
            super(new FrameSession.Limits(Duration.ofSeconds(10), Duration.ofSeconds(1), 8));
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
            Message reply = frame.message() instanceof Message.Hello
                    ? new Message.HelloOk(ServerKind.BACKEND, 1, 10_000, "frame-server-test")
                    : new Message.Ok();
            helloDone();
            reply(ctx, frame.requestId(), reply);
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) throws Exception {
            sessionsClosed.release();
            super.channelInactive(ctx);
        }
    }
}
