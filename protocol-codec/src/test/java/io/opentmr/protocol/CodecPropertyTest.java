package io.opentmr.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.opentmr.protocol.testing.NoLeaksHook;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AddLifecycleHook;

@AddLifecycleHook(NoLeaksHook.class)
class CodecPropertyTest {

    @Property(tries = 3000)
    void everyFrameSurvivesEncodeThenDecode(@ForAll("frames") Frame frame) {
        EmbeddedChannel channel = Wire.channel();
        assertTrue(channel.writeOutbound(frame));
        ByteBuf wire = channel.readOutbound();
        assertTrue(channel.writeInbound(wire));

        assertEquals(List.of(frame), Wire.inbound(channel));
        assertEquals(0, wire.refCnt(), "the decoder released the buffer it consumed");
        assertTrue(channel.isOpen());
        assertFalse(channel.finish(), "nothing left over in the channel");
    }

    @Property(tries = 500)
    void framesCutAnywhereDecodeTheSame(@ForAll("frames") Frame first, @ForAll("frames") Frame second,
                                        @ForAll @IntRange(min = 0, max = 10_000) int cutSeed) {
        byte[] bytes = Wire.concat(Wire.encode(first), Wire.encode(second));
        int cut = cutSeed % (bytes.length + 1);
        EmbeddedChannel channel = Wire.channel();
        Wire.feed(channel, bytes, cut);
        assertEquals(List.of(first, second), Wire.inbound(channel));
        assertFalse(channel.finishAndReleaseAll());
    }

    @Example
    void generatorsCoverEveryMessageType() {
        Map<MessageType, Arbitrary<? extends Message>> byType = Generators.byType();
        assertEquals(EnumSet.allOf(MessageType.class), byType.keySet());
        byType.forEach((type, arbitrary) ->
                assertEquals(type, arbitrary.sample().type(), "generator registered for " + type));
    }

    /** Arbitrary bytes: the decoder may produce frames or one ERROR and a close, but never throws. */
    @Property(tries = 10_000)
    void randomBytesNeverEscapeThePipeline(@ForAll("noise") byte[] input,
                                           @ForAll @IntRange(min = 0, max = 1_000) int cutSeed) {
        assertDecoderSurvives(input, cutSeed);
    }

    /**
     * Noise behind a well-formed header of a real type, so that every payload parser meets garbage
     * instead of most inputs stopping at an absurd length.
     */
    @Property(tries = 10_000)
    void randomPayloadsBehindValidHeadersNeverEscapeThePipeline(@ForAll("typeCodes") int type,
                                                               @ForAll("noise") byte[] payload,
                                                               @ForAll @IntRange(min = 0, max = 1_000) int cutSeed) {
        ByteBuf frame = Unpooled.buffer();
        frame.writeInt(CodecLimits.HEADER_BYTES + payload.length);
        frame.writeByte(Frame.PROTOCOL_VERSION);
        frame.writeByte(type);
        frame.writeInt(7);
        frame.writeBytes(payload);
        byte[] input = new byte[frame.readableBytes()];
        frame.readBytes(input);
        frame.release();
        assertDecoderSurvives(input, cutSeed);
    }

    private static void assertDecoderSurvives(byte[] input, int cutSeed) {
        CodecLimits limits = new CodecLimits(4096, 256, 64);
        EmbeddedChannel channel = Wire.channel(limits);
        Wire.feed(channel, input, cutSeed % (input.length + 1));
        channel.checkException();

        List<Frame> errors = Wire.outbound(channel);
        assertTrue(errors.size() <= 1, "at most one ERROR frame: " + errors);
        if (errors.size() == 1) {
            Message.Error error = (Message.Error) errors.get(0).message();
            assertEquals(CmError.INVALID_PARAMETER.code(), error.code());
            assertFalse(channel.isOpen(), "the connection closes after the ERROR");
        }
        for (Object frame : Wire.inbound(channel)) {
            assertTrue(frame instanceof Frame);
        }
        channel.finishAndReleaseAll();
    }

    @Provide
    Arbitrary<Frame> frames() {
        return Generators.frames();
    }

    @Provide
    Arbitrary<byte[]> noise() {
        return Arbitraries.oneOf(
                Arbitraries.bytes().array(byte[].class).ofMaxSize(200),
                Combinators.combine(Arbitraries.integers().between(0, 300), Arbitraries.bytes().array(byte[].class)
                        .ofMaxSize(200)).as((small, tail) -> {
                            // A small plausible length prefix, so that more inputs reach the payload parsers.
                            byte[] out = new byte[4 + tail.length];
                            out[2] = (byte) (small >>> 8);
                            out[3] = (byte) (small & 0xFF);
                            System.arraycopy(tail, 0, out, 4, tail.length);
                            return out;
                        }));
    }

    @Provide
    Arbitrary<Integer> typeCodes() {
        return Arbitraries.of(EnumSet.allOf(MessageType.class)).map(MessageType::code);
    }
}
