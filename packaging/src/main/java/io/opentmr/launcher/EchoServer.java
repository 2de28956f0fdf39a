package io.opentmr.launcher;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.FrameDecoder;
import io.opentmr.protocol.FrameEncoder;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.ServerKind;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The benchmark's ceiling: a server that answers every request with a canned reply of the right type
 * and does nothing else. The same SDK clients drive it, so the gap between it and a real server is
 * the server's own work. A test can make it {@linkplain #stallAfter stall} once, the way a server pausing
 * (a GC, a disk, a lock) does.
 */
final class EchoServer implements AutoCloseable {

    private static final Bytes TOKEN = Bytes.of(new byte[32]);
    private static final Serial SERIAL = new Serial(Serial.MASK_SOFTWARE, 1);
    private static final ProductInfo PRODUCT = new ProductInfo(1, 1, 0, "echo", 0, 0, 0, false, 0, 0, 0, 0, 0, 0);

    private final EventLoopGroup group;
    private final Channel listener;
    private final AtomicLong accesses = new AtomicLong();
    /** Handles given out and not released: GET_INFO answers for them, 106 for any other. */
    private final java.util.Set<Long> open = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private volatile long stallAtAccess;
    private volatile long forgetAtAccess;
    private volatile long stallNanos;
    /** Every ACCESS is refused (200), as by a server that does not hold the product. */
    private volatile boolean refusing;
    /** Answers are held until this time (System.nanoTime()). */
    private volatile long holdUntil = System.nanoTime();

    EchoServer(int threads) throws InterruptedException {
        group = new NioEventLoopGroup(threads, new DefaultThreadFactory("opentmr-echo", true));
        AtomicLong handles = new AtomicLong();
        listener = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel channel) {
                        channel.pipeline().addLast(FrameEncoder.INSTANCE, new FrameDecoder(),
                                new SimpleChannelInboundHandler<Frame>() {
                                    @Override
                                    protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
                                        long hold = hold(frame.message());
                                        Frame reply = new Frame(frame.requestId(),
                                                answer(frame.message(), handles, open, refusing));
                                        if (hold > 0) {
                                            ctx.executor().schedule(() -> ctx.writeAndFlush(reply), hold,
                                                    TimeUnit.NANOSECONDS);
                                        } else {
                                            ctx.writeAndFlush(reply);
                                        }
                                    }
                                });
                    }
                })
                .bind("127.0.0.1", 0).sync().channel();
    }

    private static Message answer(Message request, AtomicLong handles, java.util.Set<Long> open, boolean refusing) {
        return switch (request.type()) {
            case HELLO -> new Message.HelloOk(ServerKind.BACKEND, 1, 10_000, "echo");
            case ACCESS -> {
                if (refusing) {
                    yield new Message.Error(CmError.ENTRY_NOT_FOUND, "the echo server refuses every ACCESS");
                }
                long handle = handles.incrementAndGet();
                open.add(handle);
                yield new Message.AccessOk(handle, TOKEN, SERIAL);
            }
            case RELEASE -> {
                open.remove(((Message.Release) request).handleId());
                yield new Message.Ok();
            }
            case KEEPALIVE -> new Message.Ok();
            case GET_INFO -> {
                long handle = ((Message.GetInfo) request).handleId();
                yield open.contains(handle) ? new Message.Info(handle, AccessMode.NOUSERLIMIT, SERIAL, PRODUCT)
                        : new Message.Error(CmError.INVALID_HANDLE, "handle " + handle + " is not open");
            }
            default -> new Message.Error(CmError.INVALID_PARAMETER,
                    "the echo server answers HELLO, ACCESS, RELEASE, KEEPALIVE, GET_INFO");
        };
    }

    /**
     * When the {@code access}-th ACCESS arrives, every handle open before it is forgotten, as by a server that lost
     * them: GET_INFO answers 106 for them. Once.
     */
    void forgetHandlesAt(long access) {
        forgetAtAccess = access;
    }

    /**
     * When the {@code access}-th ACCESS arrives, every answer (to that ACCESS and to any request that arrives
     * meanwhile, on any connection) is held for {@code pause} and then sent. Once.
     */
    void stallAfter(long access, java.time.Duration pause) {
        stallNanos = pause.toNanos();
        stallAtAccess = access;
    }

    /** From now on every ACCESS is refused with 200. */
    void refuseAccess() {
        refusing = true;
    }

    /** How long to hold the answer to {@code request}. */
    private long hold(Message request) {
        long now = System.nanoTime();
        if (request.type() == MessageType.ACCESS) {
            long count = accesses.incrementAndGet();
            if (count == stallAtAccess) {
                holdUntil = now + stallNanos;
            }
            if (count == forgetAtAccess) {
                open.clear();
            }
        }
        return holdUntil - now;
    }

    InetSocketAddress address() {
        return (InetSocketAddress) listener.localAddress();
    }

    @Override
    public void close() {
        listener.close().syncUninterruptibly();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
