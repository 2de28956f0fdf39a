package io.opentmr.protocol.testing;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.opentmr.protocol.CodecLimits;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.FrameDecoder;
import io.opentmr.protocol.FrameEncoder;
import io.opentmr.protocol.Message;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;

/** A blocking, frame-level connection for tests that need exact control over what goes on the wire. */
public final class RawConnection implements AutoCloseable {

    private final Socket socket = new Socket();
    private final DataInputStream in;
    private final OutputStream out;
    private int nextId = 1;

    public RawConnection(InetSocketAddress address) throws IOException {
        this(address, null);
    }

    /** From {@code local} (e.g. another loopback address, 127.0.3.7), or the system's choice for null. */
    public RawConnection(InetSocketAddress address, java.net.InetAddress local) throws IOException {
        if (local != null) {
            socket.bind(new InetSocketAddress(local, 0));
        }
        socket.connect(address, 2_000);
        socket.setSoTimeout(5_000);
        in = new DataInputStream(socket.getInputStream());
        out = socket.getOutputStream();
    }

    /** Sends a request and reads the reply, which must carry the request's id. */
    public Message request(Message message) throws IOException {
        int id = nextId++;
        send(id, message);
        Frame reply = read();
        if (reply.requestId() != id) {
            throw new AssertionError("reply to request " + reply.requestId() + ", expected " + id);
        }
        return reply.message();
    }

    public Message hello() throws IOException {
        return request(new Message.Hello("raw-test", "ws-raw", "tester", 1));
    }

    public void send(int id, Message message) throws IOException {
        out.write(encode(new Frame(id, message)));
        out.flush();
    }

    /** One whole frame as bytes. */
    public static byte[] encode(Frame frame) {
        ByteBuf buf = Unpooled.buffer();
        try {
            FrameEncoder.encode(frame, buf);
            return ByteBufUtil.getBytes(buf);
        } finally {
            buf.release();
        }
    }

    public void sendRaw(byte[] bytes) throws IOException {
        out.write(bytes);
        out.flush();
    }

    public Frame read() throws IOException {
        int length = in.readInt();
        byte[] body = new byte[length];
        in.readFully(body);
        ByteBuf buf = Unpooled.buffer(4 + length);
        try {
            buf.writeInt(length).writeBytes(body);
            return FrameDecoder.readFrame(buf, CodecLimits.DEFAULT);
        } finally {
            buf.release();
        }
    }

    /** Whether the server closed the connection within the socket timeout (5 s). */
    public boolean closedByServer() throws IOException {
        try {
            return in.read() == -1;
        } catch (EOFException e) {
            return true;
        } catch (SocketTimeoutException e) {
            return false;
        } catch (IOException e) {
            return e.getMessage() != null && e.getMessage().contains("reset");
        }
    }

    /** The parts one after the other: several frames in one write. */
    public static byte[] concat(java.util.List<byte[]> parts) {
        int length = parts.stream().mapToInt(p -> p.length).sum();
        byte[] all = new byte[length];
        int at = 0;
        for (byte[] part : parts) {
            System.arraycopy(part, 0, all, at, part.length);
            at += part.length;
        }
        return all;
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
