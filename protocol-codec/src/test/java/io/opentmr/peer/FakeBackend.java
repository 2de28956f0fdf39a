package io.opentmr.peer;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.FrameDecoder;
import io.opentmr.protocol.FrameEncoder;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.PeerAuth;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * A backend's peer side for the client's tests, behind the real codec on 127.0.0.1: it passes the
 * challenge with its secret (or misbehaves as told), then queues every peer request for the test to
 * answer, in any order, late, or never; or answers them itself with a {@link #respondWith responder}.
 */
final class FakeBackend implements AutoCloseable {

    static final String SECRET = "a-cluster-secret-of-more-than-32-characters";
    static final String OTHER_SECRET = "another-secret-also-longer-than-32-characters";

    /** What the challenge should go like. */
    enum Challenge {
        /** Prove with our secret and check the node's proof. */
        HONEST,
        /** Prove with another secret: an impostor, or a backend configured with the wrong file. */
        WRONG_PROOF,
        /** Prove with our secret, then refuse the node's proof with ERROR 135 and close, as for another secret. */
        REFUSE_PROOF,
        /** Answer PEER_HELLO with ERROR 231 and close: a backend without a cluster secret. */
        NO_SECRET,
        /** Never answer PEER_HELLO. */
        SILENT
    }

    /** A peer request the backend received, and the way to answer it. */
    record Request(Channel channel, Frame frame) {
        Message message() {
            return frame.message();
        }

        void reply(Message answer) {
            channel.writeAndFlush(new Frame(frame.requestId(), answer));
        }
    }

    private final PeerAuth auth;
    private final PeerAuth impostor;
    private final NioEventLoopGroup group = new NioEventLoopGroup(1, new DefaultThreadFactory("fake-backend", true));
    private final BlockingQueue<Request> requests = new LinkedBlockingQueue<>();
    private final BlockingQueue<Message.PeerHello> hellos = new LinkedBlockingQueue<>();
    private final BlockingQueue<Channel> accepted = new LinkedBlockingQueue<>();
    private final Channel server;
    /** Reads from the sockets: each is what one or more of the node's writes put there. */
    private final AtomicInteger reads = new AtomicInteger();
    private volatile Challenge challenge = Challenge.HONEST;
    private volatile Function<Message, Message> responder;

    private FakeBackend(PeerAuth auth) {
        this.auth = auth;
        this.impostor = auth(OTHER_SECRET);
        this.server = new ServerBootstrap()
                .group(group)
                .channel(NioServerSocketChannel.class)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        accepted.add(ch);
                        ch.pipeline().addLast(new ReadCounter(), FrameEncoder.INSTANCE, new FrameDecoder(),
                                new PeerSide());
                    }
                })
                .bind(new InetSocketAddress("127.0.0.1", 0)).syncUninterruptibly().channel();
    }

    /** A backend with {@link #SECRET}. */
    static FakeBackend start() {
        return new FakeBackend(auth(SECRET));
    }

    static PeerAuth auth(String secret) {
        try {
            Path file = Files.createTempFile("peer-secret", ".txt");
            try {
                Files.writeString(file, secret);
                return PeerAuth.fromFile(file);
            } finally {
                Files.delete(file);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    InetSocketAddress address() {
        return (InetSocketAddress) server.localAddress();
    }

    void challenge(Challenge how) {
        challenge = how;
    }

    /** From now on every peer request is answered at once by {@code answer}, on the backend's I/O thread. */
    void respondWith(Function<Message, Message> answer) {
        responder = answer;
    }

    /** How many times the backend has read from its connections so far. */
    int reads() {
        return reads.get();
    }

    /** The next peer request the test has to answer. */
    Request nextRequest() throws InterruptedException {
        Request request = requests.poll(5, TimeUnit.SECONDS);
        if (request == null) {
            throw new AssertionError("no peer request arrived within 5 s");
        }
        return request;
    }

    Message.PeerHello nextHello() throws InterruptedException {
        Message.PeerHello hello = hellos.poll(5, TimeUnit.SECONDS);
        if (hello == null) {
            throw new AssertionError("no PEER_HELLO arrived within 5 s");
        }
        return hello;
    }

    /** The backend's end of the next connection a node opened. */
    Channel nextConnection() throws InterruptedException {
        Channel channel = accepted.poll(5, TimeUnit.SECONDS);
        if (channel == null) {
            throw new AssertionError("no connection arrived within 5 s");
        }
        return channel;
    }

    /** Bytes as they are, past the encoder: frames no honest backend would send. */
    static void writeRaw(Channel channel, byte[] bytes) {
        channel.writeAndFlush(Unpooled.wrappedBuffer(bytes));
    }

    @Override
    public void close() {
        server.close().syncUninterruptibly();
        group.shutdownGracefully(0, 100, TimeUnit.MILLISECONDS).syncUninterruptibly();
    }

    /** One connection's side of the challenge; its nonces live as long as the connection. */
    /** Counts the reads from the socket, before the frames are cut out of them. */
    private final class ReadCounter extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            reads.incrementAndGet();
            ctx.fireChannelRead(msg);
        }
    }

    private final class PeerSide extends SimpleChannelInboundHandler<Frame> {
        private byte[] nodeNonce;
        private byte[] backendNonce;
        private String nodeName;

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
            Message message = frame.message();
            if (message instanceof Message.PeerHello hello) {
                hellos.add(hello);
                nodeName = hello.nodeName();
                onHello(ctx, frame, hello);
            } else if (message instanceof Message.PeerProof proof) {
                boolean valid = challenge != Challenge.REFUSE_PROOF && backendNonce != null && PeerAuth.matches(auth.nodeProof(backendNonce, nodeNonce, nodeName),
                        proof.nodeProof().toArray());
                if (valid) {
                    ctx.writeAndFlush(new Frame(frame.requestId(), new Message.Ok()));
                } else {
                    ctx.writeAndFlush(new Frame(frame.requestId(), new Message.Error(
                            CmError.TMR_PEER_NOT_AUTHENTICATED, "wrong peer proof"))).addListener(ChannelFutureListener.CLOSE);
                }
            } else {
                Function<Message, Message> answer = responder;
                Request request = new Request(ctx.channel(), frame);
                if (answer != null) {
                    request.reply(answer.apply(message));
                } else {
                    requests.add(request);
                }
            }
        }

        private void onHello(ChannelHandlerContext ctx, Frame frame, Message.PeerHello hello) {
            switch (challenge) {
                case SILENT:
                    return;
                case NO_SECRET:
                    ctx.writeAndFlush(new Frame(frame.requestId(), new Message.Error(CmError.ACCESS_DENIED,
                            "this backend has no cluster secret"))).addListener(ChannelFutureListener.CLOSE);
                    return;
                default:
                    nodeNonce = hello.nodeNonce().toArray();
                    backendNonce = new byte[PeerAuth.NONCE_BYTES];
                    new SecureRandom().nextBytes(backendNonce);
                    PeerAuth prover = challenge == Challenge.WRONG_PROOF ? impostor : auth;
                    ctx.writeAndFlush(new Frame(frame.requestId(), new Message.PeerChallenge("backend-1",
                            Bytes.of(backendNonce), Bytes.of(prover.backendProof(nodeNonce, backendNonce)))));
            }
        }
    }
}
