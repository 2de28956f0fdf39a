package io.opentmr.bench;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.embedded.EmbeddedChannel;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CodecLimits;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.FrameDecoder;
import io.opentmr.protocol.FrameEncoder;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.Serial;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One ACCESS round trip through the codec: the client encodes the request, the server decodes it,
 * encodes the ACCESS_OK reply, the client decodes that. Single-threaded, so the figure is per core.
 * Target: at least one million round trips per second.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m"})
@Threads(1)
public class CodecBenchmark {

    private final CodecLimits limits = CodecLimits.DEFAULT;
    private final Bytes token = Bytes.fromHex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    private final Serial virtualContainer = new Serial(Serial.MASK_VIRTUAL_TMR, 59_885_682);
    private ByteBuf buffer;
    private int requestId;
    private EmbeddedChannel client;
    private EmbeddedChannel server;

    @Setup(Level.Trial)
    public void allocate() {
        buffer = PooledByteBufAllocator.DEFAULT.directBuffer(256);
        client = new EmbeddedChannel(FrameEncoder.INSTANCE, new FrameDecoder(limits));
        server = new EmbeddedChannel(FrameEncoder.INSTANCE, new FrameDecoder(limits));
    }

    @TearDown(Level.Trial)
    public void release() {
        buffer.release();
        client.finishAndReleaseAll();
        server.finishAndReleaseAll();
    }

    @Benchmark
    public Frame accessRoundTrip() {
        int id = ++requestId;
        buffer.clear();
        FrameEncoder.encode(new Frame(id, new Message.Access(6_000_010, 42, 0, AccessMode.USERLIMIT)), buffer);
        Frame request = FrameDecoder.readFrame(buffer, limits);
        Message.Access access = (Message.Access) request.message();

        buffer.clear();
        FrameEncoder.encode(new Frame(request.requestId(),
                new Message.AccessOk(access.productCode() + id, token, virtualContainer)), buffer);
        return FrameDecoder.readFrame(buffer, limits);
    }

    /** The same round trip through two Netty pipelines (encoder and decoder handlers, pooled buffers). */
    @Benchmark
    public Frame accessRoundTripThroughPipelines() {
        int id = ++requestId;
        client.writeOutbound(new Frame(id, new Message.Access(6_000_010, 42, 0, AccessMode.USERLIMIT)));
        server.writeInbound((ByteBuf) client.readOutbound());
        Frame request = server.readInbound();
        Message.Access access = (Message.Access) request.message();

        server.writeOutbound(new Frame(request.requestId(),
                new Message.AccessOk(access.productCode() + id, token, virtualContainer)));
        client.writeInbound((ByteBuf) server.readOutbound());
        return client.readInbound();
    }
}
