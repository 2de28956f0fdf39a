package io.opentmr.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads {@link Frame}s from one channel. It never holds more than one frame of at most
 * {@link CodecLimits#maxFrameBytes} (plus its length field) waiting for its end.
 *
 * <p>Input that breaks the protocol (an oversized or undersized length, an unknown version or type,
 * a payload that does not match its type's layout, a string or list over its limit) gets exactly one
 * ERROR frame with {@link CmError#INVALID_PARAMETER} naming the problem, then the channel closes.
 * From then on every byte that still arrives is discarded, and no exception leaves this handler.
 */
public final class FrameDecoder extends ByteToMessageDecoder {

    private static final Logger LOG = LoggerFactory.getLogger(FrameDecoder.class);

    private final CodecLimits limits;
    private boolean broken;

    public FrameDecoder(CodecLimits limits) {
        this.limits = limits;
    }

    public FrameDecoder() {
        this(CodecLimits.DEFAULT);
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        if (broken) {
            in.skipBytes(in.readableBytes());
            return;
        }
        if (in.readableBytes() < Integer.BYTES) {
            return;
        }
        int start = in.readerIndex();
        long length = in.getUnsignedInt(start);
        int requestId = in.readableBytes() >= Integer.BYTES + CodecLimits.HEADER_BYTES ? in.getInt(start + 6) : 0;
        if (length > limits.maxFrameBytes()) {
            fail(ctx, in, requestId, "frame length " + length + " exceeds the maximum of " + limits.maxFrameBytes());
            return;
        }
        if (length < CodecLimits.HEADER_BYTES) {
            fail(ctx, in, requestId, "frame length " + length + " is shorter than the "
                    + CodecLimits.HEADER_BYTES + "-byte header");
            return;
        }
        // The version byte is checked as soon as it arrives, so a peer speaking another version is told
        // at once instead of after a frame whose length we may not even read correctly.
        if (in.readableBytes() >= Integer.BYTES + 1) {
            int version = in.getUnsignedByte(start + Integer.BYTES);
            if (version != Frame.PROTOCOL_VERSION) {
                fail(ctx, in, requestId, "unsupported protocol version " + version
                        + "; this endpoint speaks version " + Frame.PROTOCOL_VERSION);
                return;
            }
        }
        if (in.readableBytes() < Integer.BYTES + length) {
            return;
        }
        int typeCode = in.getUnsignedByte(start + Integer.BYTES + 1);
        MessageType type = MessageType.fromCode(typeCode);
        if (type == null) {
            fail(ctx, in, requestId, "unknown message type 0x" + Integer.toHexString(typeCode));
            return;
        }
        int payloadLength = (int) length - CodecLimits.HEADER_BYTES;
        ByteBuf payload = in.slice(start + Integer.BYTES + CodecLimits.HEADER_BYTES, payloadLength);
        Message message;
        try {
            message = PayloadCodec.decode(type, new PayloadReader(payload, limits, type));
        } catch (ProtocolException e) {
            fail(ctx, in, requestId, e.getMessage());
            return;
        } catch (IllegalArgumentException e) {
            // A field in range for its wire type but outside what the message allows.
            fail(ctx, in, requestId, type + ": " + e.getMessage());
            return;
        }
        in.readerIndex(start + Integer.BYTES + (int) length);
        out.add(new Frame(requestId, message));
    }

    /** Bytes held while waiting for the rest of a frame: never more than one maximum frame. */
    int bufferedBytes() {
        ByteBuf cumulation = internalBuffer();
        return cumulation.refCnt() == 0 ? 0 : cumulation.readableBytes();
    }

    private void fail(ChannelHandlerContext ctx, ByteBuf in, int requestId, String problem) {
        broken = true;
        in.skipBytes(in.readableBytes());
        LOG.warn("Closing connection {}: protocol violation: {}", ctx.channel().remoteAddress(), problem);
        ByteBuf error = ctx.alloc().buffer();
        try {
            FrameEncoder.encode(new Frame(requestId, new Message.Error(CmError.INVALID_PARAMETER, problem)), error);
        } catch (RuntimeException e) {
            error.release();
            throw e;
        }
        ctx.writeAndFlush(error).addListener(ChannelFutureListener.CLOSE);
    }
}
