package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.AppenderBase;
import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.FrameDecoder;
import io.opentmr.protocol.FrameEncoder;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * How long a client holding many handles takes to resume them on a reconnect to a TMR node: in RESUME_MANYs, and one
 * RESUME each (the same SDK behind a proxy that refuses RESUME_MANY as an older node does). Both clients hold
 * {@code opentmr.bench.handles} handles (default 20 000) on one node; their connections are cut in turn, a few rounds,
 * and the time from the cut to the SDK's "every handle answered" is printed. Not a test: run with
 * {@code -Dopentmr.bench=true -Dtest=ResumeManyBench}.
 */
@Timeout(900)
@EnabledIfSystemProperty(named = "opentmr.bench", matches = "true")
class ResumeManyBench {

    private static final long PRODUCT = 42;
    private static final int ROUNDS = 3;

    @TempDir
    Path dir;

    @Test
    void resumeTimeOfManyHandlesInBatchesAndOneByOne() throws Exception {
        int handles = Integer.getInteger("opentmr.bench.handles", 20_000);
        Logger sdkLog = (Logger) LoggerFactory.getLogger(TmrClient.class);
        Level level = sdkLog.getLevel();
        Answered answered = new Answered();
        answered.start();
        sdkLog.addAppender(answered);
        sdkLog.setLevel(Level.DEBUG);
        try (TmrTestGroup group = new TmrTestGroup(dir, Clock.systemUTC(), Map.of())) {
            group.issueTmr(TmrTestGroup.seats(PRODUCT, 2L * handles + 10));
            group.startNode(Map.of("opentmr.node.cleanup-timeout", "30m"));
            Await.until("the node serves", group.node()::serving);
            try (Proxy batches = new Proxy(group.nodeAddress(), false);
                 Proxy singles = new Proxy(group.nodeAddress(), true);
                 TmrClient batching = connect(batches);
                 TmrClient oneByOne = connect(singles)) {
                long openStart = System.nanoTime();
                List<LicenseHandle> held = open(batching, handles);
                List<LicenseHandle> heldToo = open(oneByOne, handles);
                System.out.printf("opened 2 x %d handles in %d ms%n", handles,
                        TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - openStart));
                // Warm-up round: the SDK learns that the proxy of singles refuses RESUME_MANY (and the JIT warms up).
                resume(batches, answered);
                resume(singles, answered);
                List<Long> batchMillis = new ArrayList<>();
                List<Long> singleMillis = new ArrayList<>();
                for (int round = 0; round < ROUNDS; round++) {
                    batchMillis.add(resume(batches, answered));
                    singleMillis.add(resume(singles, answered));
                }
                assertEquals(handles, batching.openHandles());
                assertEquals(handles, oneByOne.openHandles());
                assertEquals(held.get(handles - 1).handleId(), held.get(handles - 1).info().handleId());
                assertEquals(heldToo.get(0).handleId(), heldToo.get(0).info().handleId());
                long batchBest = batchMillis.stream().mapToLong(Long::longValue).min().orElseThrow();
                long singleBest = singleMillis.stream().mapToLong(Long::longValue).min().orElseThrow();
                System.out.printf("resume of %d handles after a reconnect, ms per round: RESUME_MANY %s, RESUME %s; "
                        + "best %d vs %d ms, RESUME / RESUME_MANY = %.1f (load %s)%n", handles, batchMillis,
                        singleMillis, batchBest, singleBest, (double) singleBest / Math.max(1, batchBest),
                        Files.readString(Path.of("/proc/loadavg")).strip());
                System.out.printf("frames the proxies passed: batching client %s, one-by-one client %s%n",
                        batches.resumeFrames(), singles.resumeFrames());
            }
        } finally {
            sdkLog.detachAppender(answered);
            sdkLog.setLevel(level);
        }
    }

    private static TmrClient connect(Proxy proxy) {
        return TmrClient.connect(TmrClientOptions.builder().addresses(proxy.address())
                .requestTimeout(Duration.ofSeconds(60)).build());
    }

    private static List<LicenseHandle> open(TmrClient client, int count) throws Exception {
        ExecutorService threads = Executors.newFixedThreadPool(16);
        try {
            List<Future<LicenseHandle>> opened = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                opened.add(threads.submit(() -> client.access(TmrTestGroup.FIRM, PRODUCT, 0, AccessMode.USERLIMIT)));
            }
            List<LicenseHandle> handles = new ArrayList<>(count);
            for (Future<LicenseHandle> handle : opened) {
                handles.add(handle.get(120, TimeUnit.SECONDS));
            }
            return handles;
        } finally {
            threads.shutdownNow();
        }
    }

    /** Cuts the proxy's client connections; the time until the SDK says every handle was answered, in ms. */
    private static long resume(Proxy proxy, Answered answered) throws Exception {
        String marker = "Every handle answered on 127.0.0.1:" + proxy.address().getPort() + ":";
        int before = answered.count(marker);
        long start = System.nanoTime();
        proxy.cut();
        long deadline = start + TimeUnit.SECONDS.toNanos(120);
        while (answered.count(marker) == before && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertTrue(answered.count(marker) > before, "resumed within 120 s");
        return TimeUnit.NANOSECONDS.toMillis(answered.lastAt(marker) - start);
    }

    /** The SDK's "every handle answered" lines, with when they came. */
    private static final class Answered extends AppenderBase<ILoggingEvent> {
        private final List<String> lines = new ArrayList<>();
        private final List<Long> at = new ArrayList<>();

        @Override
        protected synchronized void append(ILoggingEvent event) {
            String line = event.getFormattedMessage();
            if (line.startsWith("Every handle answered on ")) {
                lines.add(line);
                at.add(System.nanoTime());
            }
        }

        synchronized int count(String prefix) {
            return (int) lines.stream().filter(line -> line.startsWith(prefix)).count();
        }

        synchronized long lastAt(String prefix) {
            for (int i = lines.size() - 1; i >= 0; i--) {
                if (lines.get(i).startsWith(prefix)) {
                    return at.get(i);
                }
            }
            throw new IllegalStateException("no line " + prefix);
        }
    }

    /**
     * A frame relay on 127.0.0.1 in front of the node; {@code refuseResumeMany}: answers RESUME_MANY as a node older
     * than it does (ERROR 105, then the connection closes).
     */
    private static final class Proxy implements AutoCloseable {
        private final NioEventLoopGroup group = new NioEventLoopGroup(1);
        private final Set<Channel> clients = ConcurrentHashMap.newKeySet();
        private final Map<MessageType, Integer> resumeFrames = new ConcurrentHashMap<>();
        private final Channel server;

        Proxy(InetSocketAddress node, boolean refuseResumeMany) {
            server = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                    .childOption(ChannelOption.AUTO_READ, false)
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel client) {
                            clients.add(client);
                            client.closeFuture().addListener(f -> clients.remove(client));
                            Channel upstream = new Bootstrap().group(group).channel(NioSocketChannel.class)
                                    .handler(new ChannelInitializer<SocketChannel>() {
                                        @Override
                                        protected void initChannel(SocketChannel ch) {
                                            ch.pipeline().addLast(FrameEncoder.INSTANCE, new FrameDecoder(),
                                                    relay(client));
                                        }
                                    }).connect(node).addListener((ChannelFutureListener) connected -> {
                                        if (connected.isSuccess()) {
                                            client.config().setAutoRead(true);
                                        } else {
                                            client.close();
                                        }
                                    }).channel();
                            client.closeFuture().addListener(f -> upstream.close());
                            upstream.closeFuture().addListener(f -> client.close());
                            client.pipeline().addLast(FrameEncoder.INSTANCE, new FrameDecoder(),
                                    new SimpleChannelInboundHandler<Frame>() {
                                        @Override
                                        protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
                                            MessageType type = frame.message().type();
                                            if (type == MessageType.RESUME || type == MessageType.RESUME_MANY) {
                                                resumeFrames.merge(type, 1, Integer::sum);
                                            }
                                            if (refuseResumeMany && type == MessageType.RESUME_MANY) {
                                                ctx.writeAndFlush(new Frame(frame.requestId(), new Message.Error(
                                                        CmError.INVALID_PARAMETER, "unknown message type 0xc")))
                                                        .addListener(ChannelFutureListener.CLOSE);
                                                return;
                                            }
                                            upstream.writeAndFlush(frame);
                                        }
                                    });
                        }
                    }).bind(new InetSocketAddress("127.0.0.1", 0)).syncUninterruptibly().channel();
        }

        private static SimpleChannelInboundHandler<Frame> relay(Channel to) {
            return new SimpleChannelInboundHandler<>() {
                @Override
                protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
                    to.writeAndFlush(frame);
                }
            };
        }

        InetSocketAddress address() {
            return (InetSocketAddress) server.localAddress();
        }

        Map<MessageType, Integer> resumeFrames() {
            return Map.copyOf(resumeFrames);
        }

        void cut() {
            clients.forEach(Channel::close);
        }

        @Override
        public void close() {
            server.close().syncUninterruptibly();
            cut();
            group.shutdownGracefully(0, 100, TimeUnit.MILLISECONDS).syncUninterruptibly();
        }
    }
}
