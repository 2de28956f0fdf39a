package io.opentmr.protocol;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import java.time.Duration;
import java.util.function.Supplier;

/**
 * The client end of a frame connection, shared by the SDK and the TMR node's peer client, so that both
 * speak through the same codec with the same socket options.
 */
public final class FrameClients {

    private FrameClients() {
    }

    /**
     * A bootstrap for NIO channels of {@code group} whose pipeline is the frame codec followed by
     * {@code handler}: requests are small and answered one by one, so Nagle's delay is switched off.
     *
     * @param handler makes the channel's own handler of decoded {@link Frame}s (or shares a sharable one)
     */
    public static Bootstrap bootstrap(EventLoopGroup group, CodecLimits limits, Duration connectTimeout,
                                      Supplier<? extends ChannelHandler> handler) {
        return new Bootstrap()
                .group(group)
                .channel(NioSocketChannel.class)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.SO_KEEPALIVE, true)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) Math.min(Integer.MAX_VALUE,
                        Math.max(1, connectTimeout.toMillis())))
                .handler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(FrameEncoder.INSTANCE, new FrameDecoder(limits), handler.get());
                    }
                });
    }
}
