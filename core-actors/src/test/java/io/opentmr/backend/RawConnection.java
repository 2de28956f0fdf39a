package io.opentmr.backend;

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
final class RawConnection implements AutoCloseable {

    private final Socket socket = new Socket();
    private final DataInputStream in;
    private final OutputStream out;
    private int nextId = 1;

    RawConnection(InetSocketAddress address) throws IOException {
        socket.connect(address, 2_000);
        socket.setSoTimeout(5_000);
        in = new DataInputStream(socket.getInputStream());
        out = socket.getOutputStream();
    }

    Message request(Message message) throws IOException {
        int id = nextId++;
        send(id, message);
        Frame reply = read();
        if (reply.requestId() != id) {
            throw new AssertionError("reply to request " + reply.requestId() + ", expected " + id);
        }
        return reply.message();
    }

    Message hello() throws IOException {
        return request(new Message.Hello("raw-test", "ws-raw", "tester", 1));
    }

    void send(int id, Message message) throws IOException {
        out.write(encode(new Frame(id, message)));
        out.flush();
    }

    static byte[] encode(Frame frame) {
        ByteBuf buf = Unpooled.buffer();
        try {
            FrameEncoder.encode(frame, buf);
            return ByteBufUtil.getBytes(buf);
        } finally {
            buf.release();
        }
    }

    void sendRaw(byte[] bytes) throws IOException {
        out.write(bytes);
        out.flush();
    }

    Frame read() throws IOException {
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
    boolean closedByServer() throws IOException {
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

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
