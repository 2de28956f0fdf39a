package io.opentmr.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

class AllocationDigestsTest {

    private static final LicenseKey KEY = new LicenseKey(6000010, 101, 1);
    private static final LicenseKey OTHER = new LicenseKey(6000010, 102, 2);

    @Property(tries = 300)
    void everyIdFallsInTheRangeWhoseBoundsHoldIt(@ForAll long handleId,
                                                 @ForAll @IntRange(min = 1, max = 4096) int ranges) {
        int k = AllocationDigests.rangeOf(handleId, ranges);

        assertTrue(k >= 0 && k < ranges);
        if (handleId != 0) {
            // Above the range's start, up to its end, both unsigned: as a listing from rangeStart reads it.
            assertTrue(Long.compareUnsigned(handleId, AllocationDigests.rangeStart(k, ranges)) > 0, "after the start");
            assertTrue(Long.compareUnsigned(handleId, AllocationDigests.rangeEnd(k, ranges)) <= 0, "up to the end");
        }
    }

    @Test
    void theRangesCutTheSpaceAsTheListingDoes() {
        assertEquals(0, AllocationDigests.rangeOf(1, 2));
        assertEquals(0, AllocationDigests.rangeOf(Long.MAX_VALUE / 2, 2));
        assertEquals(1, AllocationDigests.rangeOf(Long.MAX_VALUE / 2 + 1, 2));
        assertEquals(1, AllocationDigests.rangeOf(Long.MAX_VALUE, 2));
        assertEquals(1, AllocationDigests.rangeOf(-1, 2), "the high unsigned half is in the last range");
        assertEquals(0, AllocationDigests.rangeOf(0, 2));
        assertEquals(Long.MAX_VALUE / 2, AllocationDigests.rangeStart(1, 2));
        assertEquals(-1L, AllocationDigests.rangeEnd(1, 2));
    }

    @Test
    void theDigestOfARangeDoesNotDependOnTheOrderOfItsAllocations() {
        Random random = new Random(7);
        List<Long> ids = new ArrayList<>();
        for (int i = 0; i < 5000; i++) {
            ids.add(1 + (random.nextLong() >>> 1) % (Long.MAX_VALUE - 1));
        }
        AllocationDigests ascending = digests(ids, 64);
        Collections.shuffle(ids, random);

        assertEquals(ascending, digests(ids, 64));
    }

    @Test
    void aMissingAnExtraOrAMovedAllocationChangesOnlyItsRange() {
        List<Long> ids = List.of(11L, 1L << 40, 1L << 61, Long.MAX_VALUE - 3);
        AllocationDigests node = digests(ids, 16);
        AllocationDigests backend = digests(ids.subList(1, 4), 16);
        backend.add(12, KEY);
        backend.add(1L << 61, OTHER);

        int changed = AllocationDigests.rangeOf(11, 16);
        assertFalse(node.sameIn(backend, changed), "one allocation exchanged for another: same count, other sum");
        int moved = AllocationDigests.rangeOf(1L << 61, 16);
        assertFalse(node.sameIn(backend, moved), "the same handle under another license");
        for (int k = 0; k < 16; k++) {
            if (k != changed && k != moved) {
                assertTrue(node.sameIn(backend, k), "range " + k);
            }
        }
        assertNotEquals(node, backend);
    }

    @Test
    void aDigestListCrossesTheWireWithEveryRange() {
        AllocationDigests digests = digests(List.of(5L, 1L << 50, -7L), AllocationDigests.MAX_RANGES);
        Message.DigestList list = new Message.DigestList(digests);

        EmbeddedChannel channel = Wire.channel();
        assertTrue(channel.writeInbound(Unpooled.wrappedBuffer(Wire.encode(new Frame(9, list)))));
        List<Frame> frames = Wire.inbound(channel);
        channel.finishAndReleaseAll();

        assertEquals(List.of(new Frame(9, list)), frames);
        assertEquals(10 + 4 + 12 * AllocationDigests.MAX_RANGES, Wire.encode(new Frame(9, list)).length);
    }

    @Test
    void aListingOfNoRangeOrOfTooManyIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> new Message.ListDigests(0));
        assertThrows(IllegalArgumentException.class, () -> new Message.ListDigests(AllocationDigests.MAX_RANGES + 1));
        for (long ranges : new long[] {0, AllocationDigests.MAX_RANGES + 1, 0xFFFF_FFFFL}) {
            byte[] frame = Wire.encode(new Frame(3, new Message.ListDigests(1)));
            frame[frame.length - 4] = (byte) (ranges >>> 24);
            frame[frame.length - 3] = (byte) (ranges >>> 16);
            frame[frame.length - 2] = (byte) (ranges >>> 8);
            frame[frame.length - 1] = (byte) ranges;
            EmbeddedChannel channel = Wire.channel();
            channel.writeInbound(Unpooled.wrappedBuffer(frame));
            assertTrue(Wire.inbound(channel).isEmpty(), "nothing decoded from " + ranges);
            Message.Error error = (Message.Error) Wire.outbound(channel).get(0).message();
            assertEquals(CmError.INVALID_PARAMETER.code(), error.code());
            assertTrue(error.text().contains("ranges must be 1 to 4096"), error.text());
            channel.finishAndReleaseAll();
        }
    }

    private static AllocationDigests digests(List<Long> ids, int ranges) {
        AllocationDigests digests = new AllocationDigests(ranges);
        ids.forEach(id -> digests.add(id, KEY));
        return digests;
    }
}
