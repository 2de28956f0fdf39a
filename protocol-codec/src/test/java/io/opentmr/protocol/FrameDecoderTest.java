package io.opentmr.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.opentmr.protocol.testing.NoLeaks;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

@ExtendWith(NoLeaks.class)
class FrameDecoderTest {

    private static final Frame HELLO = new Frame(1, new Message.Hello("cad-station", "ws-17", "anna", 4242));
    private static final Frame ACCESS = new Frame(2,
            new Message.Access(6_000_010, 42, 0, AccessMode.USERLIMIT));
    private static final Frame CONTAINERS = new Frame(3, new Message.ContainerList(List.of(new ContainerInfo(
            new Serial(131, 59_885_682), 7, Bytes.of(new byte[32]), List.of(new ProductInfo(6_000_010, 42, 3,
                    "Wärme-Simulation ✓", 10, 2, 1, true, 500, 1_900_000_000_000L, 0, 0, 0, 86_400))))));
    private static final List<Frame> SAMPLES = List.of(HELLO, ACCESS, CONTAINERS);

    // ---------------------------------------------------------------- good input, however it is cut

    @Test
    void decodesWholeFrames() {
        for (Frame frame : SAMPLES) {
            EmbeddedChannel channel = Wire.channel();
            Wire.feed(channel, Wire.encode(frame));
            assertEquals(List.of(frame), Wire.inbound(channel));
            assertFalse(channel.finishAndReleaseAll());
        }
    }

    @Test
    void decodesFramesFedByteByByte() {
        for (Frame frame : SAMPLES) {
            EmbeddedChannel channel = Wire.channel();
            Wire.feedBytewise(channel, Wire.encode(frame));
            assertEquals(List.of(frame), Wire.inbound(channel));
            assertFalse(channel.finishAndReleaseAll());
        }
    }

    @Test
    void decodesFramesSplitAtEveryOffset() {
        for (Frame frame : SAMPLES) {
            byte[] bytes = Wire.encode(frame);
            for (int cut = 0; cut <= bytes.length; cut++) {
                EmbeddedChannel channel = Wire.channel();
                Wire.feed(channel, bytes, cut);
                assertEquals(List.of(frame), Wire.inbound(channel), "cut at " + cut);
                assertFalse(channel.finishAndReleaseAll());
            }
        }
    }

    @Test
    void decodesSeveralFramesInOneBufferAndAcrossEverySplit() {
        byte[] all = Wire.concat(Wire.encode(HELLO), Wire.encode(ACCESS), Wire.encode(CONTAINERS));
        EmbeddedChannel whole = Wire.channel();
        Wire.feed(whole, all);
        assertEquals(SAMPLES, Wire.inbound(whole));
        assertFalse(whole.finishAndReleaseAll());

        for (int cut = 0; cut <= all.length; cut++) {
            EmbeddedChannel channel = Wire.channel();
            Wire.feed(channel, all, cut);
            assertEquals(SAMPLES, Wire.inbound(channel), "cut at " + cut);
            assertFalse(channel.finishAndReleaseAll());
        }
    }

    @Test
    void acceptsAFrameOfExactlyTheMaximumSize() {
        int max = 1024;
        Frame frame = new Frame(9, new Message.CryptOk(Bytes.of(new byte[max - CodecLimits.HEADER_BYTES - 4])));
        byte[] bytes = Wire.encode(frame);
        assertEquals(max + 4, bytes.length);
        EmbeddedChannel channel = Wire.channel(new CodecLimits(max, 256, 16));
        Wire.feed(channel, bytes);
        assertEquals(List.of(frame), Wire.inbound(channel));
        assertFalse(channel.finishAndReleaseAll());
    }

    @Test
    void holdsAtMostOneMaximumFrameWhileWaitingForItsEnd() {
        int max = 4096;
        Frame frame = new Frame(9, new Message.CryptOk(Bytes.of(new byte[max - CodecLimits.HEADER_BYTES - 4])));
        byte[] bytes = Wire.encode(frame);
        EmbeddedChannel channel = Wire.channel(new CodecLimits(max, 256, 16));
        FrameDecoder decoder = channel.pipeline().get(FrameDecoder.class);
        int largest = 0;
        for (int from = 0; from < bytes.length - 1; from += 100) {
            int to = Math.min(from + 100, bytes.length - 1);
            channel.writeInbound(Unpooled.copiedBuffer(bytes, from, to - from));
            largest = Math.max(largest, decoder.bufferedBytes());
        }
        assertEquals(bytes.length - 1, largest, "everything but the last byte is held, and no more");
        assertTrue(largest <= max + 4);
        channel.writeInbound(Unpooled.copiedBuffer(bytes, bytes.length - 1, 1));
        assertEquals(List.of(frame), Wire.inbound(channel));
        assertFalse(channel.finishAndReleaseAll());
    }

    // ---------------------------------------------------------------- bad input: one ERROR 105, then close

    static Stream<Arguments> badInputs() {
        List<Arguments> cases = new ArrayList<>();
        cases.add(Arguments.of("oversized length", raw(b -> b.writeInt(1_048_577).writeByte(1).writeByte(0x01)),
                "exceeds the maximum of 1048576"));
        cases.add(Arguments.of("length 0xFFFFFFFF", raw(b -> b.writeInt(-1)), "frame length 4294967295 exceeds"));
        cases.add(Arguments.of("length shorter than the header", raw(b -> b.writeInt(5).writeByte(1).writeByte(1)
                .writeShort(0).writeByte(0)), "shorter than the 6-byte header"));
        cases.add(Arguments.of("unknown version", raw(b -> b.writeInt(6).writeByte(2).writeByte(0x06).writeInt(5)),
                "unsupported protocol version 2"));
        cases.add(Arguments.of("unknown type", frame(0x3C, b -> { }), "unknown message type 0x3c"));
        cases.add(Arguments.of("truncated payload", frame(MessageType.ACCESS.code(), b -> b.writeInt(6_000_010)
                .writeInt(42)), "payload truncated at offset 8 reading featureBits"));
        cases.add(Arguments.of("trailing bytes", frame(MessageType.RELEASE.code(), b -> b.writeLong(1).writeByte(0)),
                "1 unexpected trailing bytes at offset 8"));
        cases.add(Arguments.of("string longer than the limit", frame(MessageType.NOT_ACTIVE.code(),
                b -> b.writeShort(0xFFFF).writeZero(0xFFFF)), "is 65535 bytes, more than the limit of 8192"));
        cases.add(Arguments.of("string longer than the frame", frame(MessageType.NOT_ACTIVE.code(),
                b -> b.writeShort(100).writeZero(10)), "reading activeAddress: needs 100 bytes, 10 left"));
        cases.add(Arguments.of("string that is not UTF-8", frame(MessageType.NOT_ACTIVE.code(),
                b -> b.writeShort(2).writeByte(0xC3).writeByte(0x28)), "activeAddress at offset 0 is not valid UTF-8"));
        cases.add(Arguments.of("byte field longer than the frame", frame(MessageType.CRYPT_OK.code(),
                b -> b.writeInt(-2).writeZero(3)), "claims 4294967294 bytes but only 3 remain"));
        cases.add(Arguments.of("list count over the limit", frame(MessageType.CONTAINER_LIST.code(),
                b -> b.writeInt(10_001)), "has 10001 elements, more than the limit of 10000"));
        cases.add(Arguments.of("list count beyond the frame", frame(MessageType.CONTAINER_LIST.code(),
                b -> b.writeInt(500).writeZero(20)), "claims 500 elements but only 20 bytes remain"));
        cases.add(Arguments.of("RESUME_MANY over its cap of 1000 items", frame(MessageType.RESUME_MANY.code(), b -> {
            b.writeInt(1001);
            for (int i = 0; i < 1001; i++) {
                b.writeLong(i).writeInt(0);
            }
        }), "1001 handles, more than the 1000 of one RESUME_MANY"));
        cases.add(Arguments.of("unknown access mode", frame(MessageType.ACCESS.code(),
                b -> b.writeInt(1).writeInt(2).writeInt(0).writeShort(0x400)), "unknown accessMode 0x400"));
        cases.add(Arguments.of("boolean that is neither 0 nor 1", frame(MessageType.ALLOCATION_LIST.code(),
                b -> b.writeInt(0).writeByte(2)), "boolean more at offset 4 is 2"));
        cases.add(Arguments.of("negative epoch", frame(MessageType.LEASE_RELEASE.code(),
                b -> b.writeShort(0).writeShort(0).writeLong(-5)), "negative value -5 for epoch"));
        return cases.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badInputs")
    void badInputGetsOneErrorThenClose(String name, byte[] input, String expectedText) {
        assertOneErrorThenClose(input, expectedText, channel -> Wire.feed(channel, input));
    }

    @ParameterizedTest(name = "{0}, byte by byte")
    @MethodSource("badInputs")
    void badInputFedByteByByteGetsOneErrorThenClose(String name, byte[] input, String expectedText) {
        assertOneErrorThenClose(input, expectedText, channel -> Wire.feedBytewise(channel, input));
    }

    @Test
    void aGoodFrameBeforeTheBadOneIsStillDelivered() {
        byte[] bad = raw(b -> b.writeInt(6).writeByte(9).writeByte(1).writeInt(77));
        EmbeddedChannel channel = Wire.channel();
        Wire.feed(channel, Wire.concat(Wire.encode(HELLO), bad, Wire.encode(ACCESS)));
        assertEquals(List.of(HELLO), Wire.inbound(channel));
        List<Frame> written = Wire.outbound(channel);
        assertEquals(1, written.size());
        assertEquals(77, written.get(0).requestId(), "the ERROR answers the bad frame's request id");
        assertFalse(channel.isOpen());
        channel.finishAndReleaseAll();
    }

    @Test
    void bytesArrivingAfterTheErrorAreReleasedAndIgnored() {
        EmbeddedChannel channel = Wire.channel();
        FrameDecoder decoder = channel.pipeline().get(FrameDecoder.class);
        ByteBuf bad = Unpooled.wrappedBuffer(raw(b -> b.writeInt(Integer.MAX_VALUE)));
        channel.writeInbound(bad);
        assertEquals(0, bad.refCnt());
        assertFalse(channel.isOpen());

        // Netty may still hand over bytes read before the close took effect; call the decoder directly.
        ByteBuf late = Unpooled.wrappedBuffer(Wire.encode(HELLO));
        List<Object> out = new ArrayList<>();
        decoder.decode(channel.pipeline().context(decoder), late, out);
        assertTrue(out.isEmpty());
        assertFalse(late.isReadable());
        late.release();
        assertEquals(1, Wire.outbound(channel).size(), "still exactly one ERROR");
        channel.finishAndReleaseAll();
    }

    private static void assertOneErrorThenClose(byte[] input, String expectedText, Consumer<EmbeddedChannel> feed) {
        EmbeddedChannel channel = Wire.channel();
        FrameDecoder decoder = channel.pipeline().get(FrameDecoder.class);
        feed.accept(channel);
        channel.checkException();

        assertTrue(Wire.inbound(channel).isEmpty(), "nothing decoded from bad input");
        List<Frame> written = Wire.outbound(channel);
        assertEquals(1, written.size(), "exactly one frame written back: " + written);
        Message.Error error = (Message.Error) written.get(0).message();
        assertEquals(CmError.INVALID_PARAMETER.code(), error.code());
        assertTrue(error.text().contains(expectedText), "'" + error.text() + "' names the problem: " + expectedText);
        assertFalse(channel.isOpen(), "connection closed");
        assertEquals(0, decoder.bufferedBytes(), "nothing held back");
        channel.finishAndReleaseAll();
    }

    private static byte[] raw(Consumer<ByteBuf> writer) {
        ByteBuf buf = Unpooled.buffer();
        writer.accept(buf);
        byte[] bytes = new byte[buf.readableBytes()];
        buf.readBytes(bytes);
        buf.release();
        return bytes;
    }

    /** A frame with a correct header and length around a hand-written payload. */
    private static byte[] frame(int type, Consumer<ByteBuf> payload) {
        ByteBuf body = Unpooled.buffer();
        payload.accept(body);
        byte[] bytes = raw(b -> b.writeInt(CodecLimits.HEADER_BYTES + body.readableBytes()).writeByte(1)
                .writeByte(type).writeInt(11).writeBytes(body));
        body.release();
        return bytes;
    }

    @Test
    void utf8TextSurvivesAsUtf8() {
        Frame frame = new Frame(5, new Message.NotActive("knoten-β:22350"));
        byte[] bytes = Wire.encode(frame);
        String onWire = new String(bytes, 12, bytes.length - 12, StandardCharsets.UTF_8);
        assertEquals("knoten-β:22350", onWire);
    }

    @Test
    void aPageNamingTheSameHostsAgainAndAgainHoldsOneStringOfEachAndKeepsEveryOtherName() {
        // A take-over keeps every page of a backend's allocations: 100 000 handles named "vm"/"root" each.
        List<Allocation> page = new ArrayList<>();
        String[] hosts = {"ws-1", "ws-2", "Büro-3", "ws-1x", "", "東京-4"};
        for (int i = 0; i < 300; i++) {
            String host = hosts[i % hosts.length];
            page.add(new Allocation(i + 1, new LicenseKey(6_000_010, 42, 1), AccessMode.USERLIMIT, 0,
                    new HandleOwner(host, "user-" + (i % 2), 4_000 + i, i), Bytes.of(new byte[32]), 3,
                    new AllocationRequest(host, 7_000 + i)));
        }
        Frame frame = new Frame(9, new Message.AllocationList(page, true, true));
        EmbeddedChannel channel = Wire.channel();
        Wire.feed(channel, Wire.encode(frame));
        List<Frame> decoded = Wire.inbound(channel);
        assertEquals(List.of(frame), decoded, "every name as sent, ASCII or not");
        List<Allocation> read = ((Message.AllocationList) decoded.get(0).message()).allocations();
        java.util.Set<String> distinct = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (Allocation allocation : read) {
            distinct.add(allocation.owner().user());
            if (allocation.owner().host().chars().allMatch(c -> c < 0x80)) {
                distinct.add(allocation.owner().host());
                distinct.add(allocation.request().host());
            }
        }
        // "user-0", "user-1", "ws-1", "ws-2", "ws-1x", "": one object each across the page and both fields.
        assertEquals(6, distinct.size(), "ASCII names read once per page: " + distinct);
        java.util.Set<LicenseKey> keys = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        read.forEach(allocation -> keys.add(allocation.key()));
        assertEquals(1, keys.size(), "one key object for the page's one license");
        assertFalse(channel.finishAndReleaseAll());
    }
}
