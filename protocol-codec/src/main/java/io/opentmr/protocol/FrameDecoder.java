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

    /**
     * Reads one whole frame from {@code in}, or returns {@code null} (consuming nothing) while its
     * bytes have not all arrived.
     *
     * @throws ProtocolException if the bytes present already break the protocol; {@code in} is then
     *                           left where it was
     */
    public static Frame readFrame(ByteBuf in, CodecLimits limits) {
        if (in.readableBytes() < Integer.BYTES) {
            return null;
        }
        int start = in.readerIndex();
        long length = in.getUnsignedInt(start);
        int requestId = in.readableBytes() >= Integer.BYTES + CodecLimits.HEADER_BYTES ? in.getInt(start + 6) : 0;
        if (length > limits.maxFrameBytes()) {
            throw violation("frame length " + length + " exceeds the maximum of " + limits.maxFrameBytes(), requestId);
        }
        if (length < CodecLimits.HEADER_BYTES) {
            throw violation("frame length " + length + " is shorter than the " + CodecLimits.HEADER_BYTES
                    + "-byte header", requestId);
        }
        // The version byte is checked as soon as it arrives, so a peer speaking another version is told
        // at once, not after waiting for a frame whose layout we cannot know.
        if (in.readableBytes() > Integer.BYTES) {
            int version = in.getUnsignedByte(start + Integer.BYTES);
            if (version != Frame.PROTOCOL_VERSION) {
                throw violation("unsupported protocol version " + version + "; this endpoint speaks version "
                        + Frame.PROTOCOL_VERSION, requestId);
            }
        }
        if (in.readableBytes() < Integer.BYTES + length) {
            return null;
        }
        int typeCode = in.getUnsignedByte(start + Integer.BYTES + 1);
        MessageType type = MessageType.fromCode(typeCode);
        if (type == null) {
            throw violation("unknown message type 0x" + Integer.toHexString(typeCode), requestId);
        }
        int payloadLength = (int) length - CodecLimits.HEADER_BYTES;
        ByteBuf payload = in.slice(start + Integer.BYTES + CodecLimits.HEADER_BYTES, payloadLength);
        Message message;
        try {
            message = PayloadCodec.decode(type, new PayloadReader(payload, limits, type, requestId));
        } catch (IllegalArgumentException e) {
            // A field in range for its wire type but outside what the message allows.
            throw violation(type + ": " + e.getMessage(), requestId);
        }
        in.readerIndex(start + Integer.BYTES + (int) length);
        return new Frame(requestId, message);
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        if (broken) {
            in.skipBytes(in.readableBytes());
            return;
        }
        try {
            Frame frame = readFrame(in, limits);
            if (frame != null) {
                out.add(frame);
            }
        } catch (ProtocolException e) {
            fail(ctx, in, e);
        }
    }

    /** Bytes held while waiting for the rest of a frame: never more than one maximum frame. */
    int bufferedBytes() {
        ByteBuf cumulation = internalBuffer();
        return cumulation.refCnt() == 0 ? 0 : cumulation.readableBytes();
    }

    private void fail(ChannelHandlerContext ctx, ByteBuf in, ProtocolException e) {
        broken = true;
        in.skipBytes(in.readableBytes());
        LOG.warn("Closing connection {}: protocol violation in request {}: {}", ctx.channel().remoteAddress(),
                Integer.toUnsignedString(e.requestId()), e.getMessage());
        ByteBuf error = ctx.alloc().buffer();
        try {
            FrameEncoder.encode(new Frame(e.requestId(), new Message.Error(e.error(), e.getMessage())), error);
        } catch (RuntimeException encodeFailure) {
            error.release();
            throw encodeFailure;
        }
        ctx.writeAndFlush(error).addListener(ChannelFutureListener.CLOSE);
    }

    private static ProtocolException violation(String problem, int requestId) {
        return new ProtocolException(CmError.INVALID_PARAMETER, problem, requestId);
    }
}
