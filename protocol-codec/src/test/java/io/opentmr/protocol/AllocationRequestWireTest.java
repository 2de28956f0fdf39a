package io.opentmr.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The request an allocation names (docs/protocol.md, ALLOCATE, LIST_ALLOCATIONS, ALLOCATION_LIST): optional fields at
 * the end of each frame, so that a frame without them is the frame every node and backend before them wrote.
 */
class AllocationRequestWireTest {

    private static final LicenseKey KEY = new LicenseKey(10, 13, 1);
    private static final Allocation ALLOCATION = new Allocation(42, KEY, AccessMode.USERLIMIT, 1,
            new HandleOwner("127.0.0.1", "anna", 4242, 9), Bytes.of(new byte[32]), 3);
    private static final AllocationRequest REQUEST = new AllocationRequest("ws-17", 77);
    private static final LeaseCertificate NO_CERTIFICATE = LeaseCertificate.NONE;

    @Test
    void anAllocateNamingNoRequestEndsWithItsDeadlineAsBefore() {
        byte[] plain = Wire.encode(new Frame(5, new Message.Allocate(NO_CERTIFICATE, ALLOCATION, 1234)));
        byte[] named = Wire.encode(new Frame(5, new Message.Allocate(NO_CERTIFICATE, ALLOCATION.withRequest(REQUEST),
                1234)));

        assertEquals(1234, Unpooled.wrappedBuffer(plain).getLong(plain.length - 8), "the deadline ends the frame");
        assertEquals(plain.length + 2 + "ws-17".length() + 8, named.length, "host and request id follow it");
        assertArrayEquals(Arrays.copyOfRange(plain, 4, plain.length), Arrays.copyOfRange(named, 4, plain.length),
                "the frame before them is unchanged");
        assertEquals(ALLOCATION.withRequest(REQUEST), ((Message.Allocate) decode(named).message()).allocation());
        assertNull(((Message.Allocate) decode(plain).message()).allocation().request());
    }

    @Test
    void aListingAsksForRequestsWithOneTrailingByte() {
        byte[] plain = Wire.encode(new Frame(5, new Message.ListAllocations(0, 2000)));
        byte[] asking = Wire.encode(new Frame(5, new Message.ListAllocations(0, 2000, true)));

        assertEquals(4 + 6 + 8 + 4, plain.length, "header, handle id and count: the frame before requests");
        assertEquals(plain.length + 1, asking.length);
        assertTrue(((Message.ListAllocations) decode(asking).message()).withRequests());
        assertFalse(((Message.ListAllocations) decode(plain).message()).withRequests());
    }

    @Test
    void aPageWithRequestsNamesThemByHandleAndKeepsAllocationsThatHaveNone() {
        Allocation other = new Allocation(43, KEY, AccessMode.STATIONSHARE, 0,
                new HandleOwner("127.0.0.2", "ben", 7, 9), Bytes.of(new byte[32]), 3);
        Message.AllocationList page = new Message.AllocationList(List.of(ALLOCATION.withRequest(REQUEST), other),
                true, true);

        assertEquals(page, decode(Wire.encode(new Frame(5, page))).message());
    }

    @Test
    void aPageThatDidNotAskForRequestsCarriesNone() {
        Message.AllocationList page = new Message.AllocationList(List.of(ALLOCATION.withRequest(REQUEST)), false);
        Message.AllocationList plain = new Message.AllocationList(List.of(ALLOCATION), false);

        assertNull(page.allocations().get(0).request(), "not sent, so not kept");
        assertArrayEquals(Wire.encode(new Frame(5, plain)), Wire.encode(new Frame(5, page)));
    }

    @Test
    void aPageNamingTheRequestOfAHandleNotOnItIsRefused() {
        Allocation stranger = ALLOCATION.withRequest(REQUEST);
        byte[] page = Wire.encode(new Frame(5, new Message.AllocationList(List.of(), false, false)));
        // The page's requests list names handle 42, which the (empty) page does not hold.
        ByteBuf bytes = Unpooled.buffer().writeBytes(page);
        bytes.writeInt(1).writeLong(stranger.tmrHandleId()).writeShort(5).writeBytes("ws-17".getBytes())
                .writeLong(77);
        bytes.setInt(0, bytes.readableBytes() - 4);

        assertRefused(bytes, "not on the page");
    }

    @Test
    void aListingFlagOtherThanZeroOrOneIsRefused() {
        byte[] asking = Wire.encode(new Frame(5, new Message.ListAllocations(0, 2000, true)));
        asking[asking.length - 1] = 2;

        assertRefused(Unpooled.wrappedBuffer(asking), "withRequests must be 0 or 1");
    }

    private static Frame decode(byte[] bytes) {
        EmbeddedChannel channel = Wire.channel();
        assertTrue(channel.writeInbound(Unpooled.wrappedBuffer(bytes)));
        List<Frame> frames = Wire.inbound(channel);
        assertFalse(channel.finishAndReleaseAll());
        assertEquals(1, frames.size());
        return frames.get(0);
    }

    private static void assertRefused(ByteBuf bytes, String problem) {
        EmbeddedChannel channel = Wire.channel();
        channel.writeInbound(bytes);
        assertTrue(Wire.inbound(channel).isEmpty(), "nothing decoded");
        List<Frame> written = Wire.outbound(channel);
        assertEquals(1, written.size());
        Message.Error error = (Message.Error) written.get(0).message();
        assertEquals(CmError.INVALID_PARAMETER.code(), error.code());
        assertTrue(error.text().contains(problem), error.text());
        assertFalse(channel.isOpen());
        channel.finishAndReleaseAll();
    }
}
