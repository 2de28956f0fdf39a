package io.opentmr.client;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.opentmr.protocol.CodecLimits;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.FrameDecoder;
import io.opentmr.protocol.FrameEncoder;
import io.opentmr.protocol.Message;
import java.io.DataInputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;

/**
 * One HELLO to one server and its answer, as it is: a node that does not serve answers NOT_ACTIVE, which
 * the SDK would follow or retry, but {@code tmr client status} shows (TMR_STANDBY), and operators' tools
 * ({@code tmr node step-down}, the demo, fail-over tests) use to tell which node of a twin serves.
 */
public final class HelloProbe {

    private HelloProbe() {
    }

    /** HELLO_OK, NOT_ACTIVE or ERROR; IOException when the server cannot be reached or sends no frame. */
    public static Message hello(InetSocketAddress server, Duration timeout) throws IOException {
        try (Socket socket = new Socket()) {
            int millis = (int) Math.min(Integer.MAX_VALUE, Math.max(1, timeout.toMillis()));
            socket.connect(server, millis);
            socket.setSoTimeout(millis);
            ByteBuf out = Unpooled.buffer();
            try {
                FrameEncoder.encode(new Frame(1, new Message.Hello("tmr-cli", hostName(),
                        System.getProperty("user.name", "?"), ProcessHandle.current().pid())), out);
                socket.getOutputStream().write(ByteBufUtil.getBytes(out));
                socket.getOutputStream().flush();
            } finally {
                out.release();
            }
            DataInputStream in = new DataInputStream(socket.getInputStream());
            int length = in.readInt();
            if (length < 0 || length > CodecLimits.DEFAULT.maxFrameBytes()) {
                throw new IOException("the server sent a frame of " + length + " bytes");
            }
            byte[] body = new byte[length];
            in.readFully(body);
            ByteBuf frame = Unpooled.buffer(4 + length);
            try {
                frame.writeInt(length).writeBytes(body);
                return FrameDecoder.readFrame(frame, CodecLimits.DEFAULT).message();
            } finally {
                frame.release();
            }
        }
    }

    private static String hostName() {
        try {
            return java.net.InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "localhost";
        }
    }
}
