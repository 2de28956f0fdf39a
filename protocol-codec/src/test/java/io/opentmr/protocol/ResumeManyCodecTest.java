package io.opentmr.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** RESUME_MANY and RESUMED_MANY at their cap: they round-trip, and fit the default limits with room to spare. */
class ResumeManyCodecTest {

    private static final int TOKEN_BYTES = 16;

    private static List<Message.Resume> items(int count, int tokenBytes) {
        List<Message.Resume> items = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            byte[] token = new byte[tokenBytes];
            token[0] = (byte) i;
            items.add(new Message.Resume(0x8000_0000_0000_0000L + i, Bytes.of(token)));
        }
        return items;
    }

    @Test
    void aFullRequestAndItsAnswerRoundTripWellWithinTheDefaultLimits() {
        Frame request = new Frame(7, new Message.ResumeMany(items(Message.ResumeMany.MAX_ITEMS, TOKEN_BYTES)));
        List<Message.ResumedMany.Outcome> outcomes = new ArrayList<>();
        for (int i = 0; i < Message.ResumeMany.MAX_ITEMS; i++) {
            outcomes.add(new Message.ResumedMany.Outcome(0x8000_0000_0000_0000L + i,
                    i % 3 == 0 ? CmError.INVALID_HANDLE.code() : i % 3 == 1 ? Message.ResumedMany.RESUMED : 0xFFFF));
        }
        Frame answer = new Frame(7, new Message.ResumedMany(outcomes));
        for (Frame frame : List.of(request, answer)) {
            byte[] bytes = Wire.encode(frame);
            EmbeddedChannel channel = Wire.channel();
            Wire.feed(channel, bytes);
            assertEquals(List.of(frame), Wire.inbound(channel));
            channel.finishAndReleaseAll();
        }
        int requestBytes = Wire.encode(request).length;
        assertEquals(4 + CodecLimits.HEADER_BYTES + 4 + Message.ResumeMany.MAX_ITEMS * (8 + 4 + TOKEN_BYTES),
                requestBytes);
        assertTrue(requestBytes * 30 < CodecLimits.DEFAULT.maxFrameBytes(), "a full request is "
                + requestBytes + " bytes, a small part of the default frame");
        assertTrue(Message.ResumeMany.MAX_ITEMS * 10 <= CodecLimits.DEFAULT.maxListItems());
    }

    @Test
    void moreThanTheCapIsRefusedBeforeItIsSentAndWhenItIsRead() {
        List<Message.Resume> over = items(Message.ResumeMany.MAX_ITEMS + 1, TOKEN_BYTES);
        IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                () -> new Message.ResumeMany(over));
        assertTrue(refused.getMessage().contains("more than the 1000"), refused.getMessage());
        List<Message.ResumedMany.Outcome> tooMany = new ArrayList<>();
        for (int i = 0; i <= Message.ResumeMany.MAX_ITEMS; i++) {
            tooMany.add(new Message.ResumedMany.Outcome(i, 0));
        }
        assertThrows(IllegalArgumentException.class, () -> new Message.ResumedMany(tooMany));
        assertThrows(IllegalArgumentException.class, () -> new Message.ResumedMany.Outcome(1, 0x10000));
    }

    @Test
    void anEmptyRequestIsAFrame() {
        Frame empty = new Frame(1, new Message.ResumeMany(List.of()));
        EmbeddedChannel channel = Wire.channel();
        Wire.feed(channel, Wire.encode(empty));
        assertEquals(List.of(empty), Wire.inbound(channel));
        channel.finishAndReleaseAll();
    }
}
