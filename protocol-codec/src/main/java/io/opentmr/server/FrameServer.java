package io.opentmr.server;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CodecLimits;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.FrameDecoder;
import io.opentmr.protocol.FrameEncoder;
import io.opentmr.protocol.Message;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A listener of the protocol, for a backend or a TMR node: per connection the frame codec and a fresh
 * session handler (usually a {@link FrameSession}), at most {@code maxConnections} at once; the next
 * one is told 309 and closed. The server counterpart of {@link io.opentmr.protocol.FrameClients}.
 */
public final class FrameServer implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(FrameServer.class);

    private final EventLoopGroup boss;
    private final EventLoopGroup workers;
    private final Channel listener;

    private FrameServer(EventLoopGroup boss, EventLoopGroup workers, Channel listener) {
        this.boss = boss;
        this.workers = workers;
        this.listener = listener;
    }

    /**
     * Listens on {@code address:port} (port 0: any free port, see {@link #localAddress()}).
     *
     * @param sessions makes the handler of one connection's decoded {@link Frame}s
     * @throws InterruptedException while binding; a bind failure ({@code BindException}) is thrown
     *                              undeclared, as Netty throws it
     */
    public static FrameServer start(String address, int port, int maxConnections, CodecLimits limits,
                                    Supplier<? extends ChannelHandler> sessions) throws InterruptedException {
        return start(address, port, maxConnections, limits, 0, sessions);
    }

    /**
     * As {@link #start(String, int, int, CodecLimits, Supplier)}, with {@code ioThreads} event loops for the
     * connections (0: Netty's default, two per processor).
     */
    public static FrameServer start(String address, int port, int maxConnections, CodecLimits limits, int ioThreads,
                                    Supplier<? extends ChannelHandler> sessions) throws InterruptedException {
        if (ioThreads < 0) {
            throw new IllegalArgumentException("ioThreads must be 0 or more: " + ioThreads);
        }
        EventLoopGroup boss = new NioEventLoopGroup(1, new DefaultThreadFactory("opentmr-accept", true));
        EventLoopGroup workers = new NioEventLoopGroup(ioThreads, new DefaultThreadFactory("opentmr-io", true));
        ConnectionLimit limit = new ConnectionLimit(maxConnections);
        try {
            Channel listener = new ServerBootstrap()
                    .group(boss, workers)
                    .channel(NioServerSocketChannel.class)
                    .option(ChannelOption.SO_BACKLOG, 1024)
                    .childOption(ChannelOption.TCP_NODELAY, true)
                    // Above the high mark a session stops reading its client (FrameSession): a client that
                    // does not read its replies slows only itself.
                    .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(64 * 1024, 256 * 1024))
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel channel) {
                            channel.pipeline().addLast(limit, FrameEncoder.INSTANCE, new FrameDecoder(limits),
                                    sessions.get());
                        }
                    })
                    .bind(address, port).sync().channel();
            return new FrameServer(boss, workers, listener);
        } catch (Exception e) {
            // bind().sync() also throws checked exceptions it does not declare (BindException).
            boss.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            workers.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            throw e;
        }
    }

    public InetSocketAddress localAddress() {
        return (InetSocketAddress) listener.localAddress();
    }

    /** Stops listening and closes every connection. */
    @Override
    public void close() {
        listener.close().syncUninterruptibly();
        boss.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
        workers.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
    }

    /** Closes connections beyond the limit at once, telling the client why. */
    @ChannelHandler.Sharable
    static final class ConnectionLimit extends ChannelInboundHandlerAdapter {

        private final int max;
        private final AtomicInteger open = new AtomicInteger();

        ConnectionLimit(int max) {
            this.max = max;
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            if (open.incrementAndGet() > max) {
                LOG.warn("Refused connection from {}: {} connections are open, the limit is {}",
                        ctx.channel().remoteAddress(), open.get() - 1, max);
                // This handler sits before the encoder in the pipeline: write the encoded frame itself.
                ByteBuf refusal = ctx.alloc().buffer();
                FrameEncoder.encode(new Frame(0, new Message.Error(CmError.REQUEST_OVERLOAD,
                        "the server has its maximum of " + max + " connections")), refusal);
                ctx.writeAndFlush(refusal).addListener(ChannelFutureListener.CLOSE);
                return;
            }
            ctx.fireChannelActive();
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            open.decrementAndGet();
            ctx.fireChannelInactive();
        }
    }
}
