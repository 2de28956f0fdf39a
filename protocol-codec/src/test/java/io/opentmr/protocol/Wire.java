package io.opentmr.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.opentmr.protocol.testing.RawConnection;
import java.util.ArrayList;
import java.util.List;

/** Test helpers for putting frames on and taking them off an {@link EmbeddedChannel}. */
final class Wire {

    private Wire() {
    }

    static byte[] encode(Frame frame) {
        return RawConnection.encode(frame);
    }

    static byte[] concat(byte[]... parts) {
        return RawConnection.concat(List.of(parts));
    }

    /** A server-side pipeline as the servers will build it: encoder for replies, decoder for requests. */
    static EmbeddedChannel channel(CodecLimits limits) {
        return new EmbeddedChannel(FrameEncoder.INSTANCE, new FrameDecoder(limits));
    }

    static EmbeddedChannel channel() {
        return channel(CodecLimits.DEFAULT);
    }

    /** Every frame decoded from {@code channel} so far. */
    static List<Frame> inbound(EmbeddedChannel channel) {
        List<Frame> frames = new ArrayList<>();
        for (Object msg; (msg = channel.readInbound()) != null; ) {
            frames.add((Frame) msg);
        }
        return frames;
    }

    /** Every frame the channel wrote back, decoded by an independent decoder; the written buffers are released. */
    static List<Frame> outbound(EmbeddedChannel channel) {
        EmbeddedChannel reader = new EmbeddedChannel(new FrameDecoder(CodecLimits.DEFAULT));
        for (Object msg; (msg = channel.readOutbound()) != null; ) {
            reader.writeInbound(msg);
        }
        List<Frame> frames = inbound(reader);
        reader.finishAndReleaseAll();
        return frames;
    }

    /** Feeds {@code bytes} in pieces cut at the given offsets; stops feeding once the channel has closed. */
    static void feed(EmbeddedChannel channel, byte[] bytes, int... cuts) {
        int from = 0;
        for (int cut : cuts) {
            feedPiece(channel, bytes, from, cut);
            from = cut;
        }
        feedPiece(channel, bytes, from, bytes.length);
    }

    static void feedBytewise(EmbeddedChannel channel, byte[] bytes) {
        for (int i = 0; i < bytes.length; i++) {
            feedPiece(channel, bytes, i, i + 1);
        }
    }

    private static void feedPiece(EmbeddedChannel channel, byte[] bytes, int from, int to) {
        if (from >= to || !channel.isOpen()) {
            return;
        }
        ByteBuf piece = Unpooled.copiedBuffer(bytes, from, to - from);
        channel.writeInbound(piece);
    }
}
