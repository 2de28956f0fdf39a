package io.opentmr.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.EncoderException;
import io.netty.handler.codec.MessageToByteEncoder;

/**
 * Writes {@link Frame}s: {@code u32 length, u8 version, u8 type, u32 requestId, payload}. Stateless,
 * so one instance serves every channel.
 */
@ChannelHandler.Sharable
public final class FrameEncoder extends MessageToByteEncoder<Frame> {

    public static final FrameEncoder INSTANCE = new FrameEncoder();

    /**
     * No frame larger than this is ever sent: the receiver's limit ({@link CodecLimits#maxFrameBytes})
     * decides what it accepts, and senders page long lists, but nothing may go out that no receiver
     * could be configured to read.
     */
    public static final int MAX_ENCODED_FRAME_BYTES = 64 << 20;

    private FrameEncoder() {
        super(Frame.class);
    }

    @Override
    protected void encode(ChannelHandlerContext ctx, Frame frame, ByteBuf out) {
        encode(frame, out);
    }

    /** Appends one whole frame to {@code out}; also used where a frame is built without a pipeline. */
    public static void encode(Frame frame, ByteBuf out) {
        int start = out.writerIndex();
        out.writeInt(0);
        out.writeByte(Frame.PROTOCOL_VERSION);
        out.writeByte(frame.message().type().code());
        out.writeInt(frame.requestId());
        PayloadCodec.encode(frame.message(), new PayloadWriter(out));
        int length = out.writerIndex() - start - Integer.BYTES;
        if (length > MAX_ENCODED_FRAME_BYTES) {
            out.writerIndex(start);
            throw new EncoderException(frame.message().type() + " frame of " + length
                    + " bytes exceeds the protocol's hard limit of " + MAX_ENCODED_FRAME_BYTES);
        }
        out.setInt(start, length);
    }
}
