package io.opentmr.backend;

import static io.opentmr.backend.ContainerFixture.CM_ACT_ID;
import static io.opentmr.backend.ContainerFixture.FIRM;
import static io.opentmr.backend.ContainerFixture.NOW;
import static io.opentmr.backend.ContainerFixture.SEATS_2;
import static io.opentmr.backend.ContainerFixture.SERIAL;
import static io.opentmr.backend.ContainerFixture.TMR_COPY;
import static io.opentmr.backend.ContainerFixture.item;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.backend.ContainerEvent.LicenseUpdated;
import io.opentmr.license.Ed25519;
import io.opentmr.license.LicenseUpdate;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.ProductInfo;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** The peer side's rules as plain state: allocations like ACCESS, and leases bound to connections. */
class PeerStateTest {

    private static final LicenseKey TMR = new LicenseKey(FIRM, TMR_COPY, 11);
    private final ContainerFixture fixture = new ContainerFixture();

    private static Allocation allocation(long id, LicenseKey key, AccessMode mode, String host) {
        return new Allocation(id, key, mode, 0, new HandleOwner(host, "anna", 1, 1), Bytes.of(new byte[32]), 1);
    }

    private CmError refused(Decision<?> decision) {
        return assertInstanceOf(Decision.Refuse.class, decision, decision.toString()).error();
    }

    private long inUse(LicenseKey key) {
        ProductInfo product = fixture.state.product(key);
        return product.inUse();
    }

    @Test
    void exclusiveAllocationTakesAllSeatsAndNoOneElse() {
        fixture.persist(fixture.state.allocate(allocation(1, TMR, AccessMode.EXCLUSIVE, "ws-1"), NOW));
        assertEquals(3, inUse(TMR));
        assertEquals(CmError.EXCLUSIVE_CONFLICT, refused(fixture.state.allocate(
                allocation(2, TMR, AccessMode.NOUSERLIMIT, "ws-2"), NOW)));
        fixture.persist(fixture.state.free(1, NOW));
        fixture.persist(fixture.state.allocate(allocation(2, TMR, AccessMode.NOUSERLIMIT, "ws-2"), NOW));
        assertEquals(0, inUse(TMR), "NOUSERLIMIT takes no seat");
        assertEquals(CmError.EXCLUSIVE_CONFLICT, refused(fixture.state.allocate(
                allocation(3, TMR, AccessMode.EXCLUSIVE, "ws-3"), NOW)), "EXCLUSIVE while others use it");
    }

    @Test
    void stationShareCountsOneSeatPerClientHost() {
        for (long id = 1; id <= 3; id++) {
            fixture.persist(fixture.state.allocate(allocation(id, TMR, AccessMode.STATIONSHARE, "ws-1"), NOW));
        }
        assertEquals(1, inUse(TMR));
        fixture.persist(fixture.state.allocate(allocation(4, TMR, AccessMode.STATIONSHARE, "ws-2"), NOW));
        fixture.persist(fixture.state.allocate(allocation(5, TMR, AccessMode.USERLIMIT, "ws-3"), NOW));
        assertEquals(CmError.NO_MORE_LICENSES, refused(fixture.state.allocate(
                allocation(6, TMR, AccessMode.STATIONSHARE, "ws-4"), NOW)));
        fixture.persist(fixture.state.allocate(allocation(6, TMR, AccessMode.STATIONSHARE, "ws-1"), NOW));
        assertEquals(3, inUse(TMR));
        assertEquals(3, fixture.replayed().product(TMR).inUse(), "the journal rebuilds the same seats");
    }

    @Test
    void anOrdinaryItemOrAnUnknownKeyIsNoTmrCopy() {
        assertEquals(CmError.ENTRY_NOT_FOUND, refused(fixture.state.allocate(
                allocation(1, new LicenseKey(FIRM, SEATS_2, 0), AccessMode.USERLIMIT, "ws-1"), NOW)));
        assertNull(fixture.state.tmrGroupKeys(new LicenseKey(FIRM, SEATS_2, 0)));
        assertEquals(3, fixture.state.tmrGroupKeys(TMR).size());
    }

    @Test
    void anEmergencyTmrCopyStartsItsUsagePeriodAtTheFirstAllocation() {
        List<String> keys = List.of(key(), key(), key());
        fixture.persist(new LicenseUpdated(new LicenseUpdate(SERIAL.toString(), CM_ACT_ID, FIRM, 3, NOW, List.of(
                item(20, 5, 12, null, null, null, Duration.ofDays(1), null)), keys), NOW));
        LicenseKey emergency = new LicenseKey(FIRM, 20, 12);
        Decision<TmrAllocation> first = fixture.state.allocate(allocation(1, emergency, AccessMode.USERLIMIT, "ws-1"),
                NOW);
        assertTrue(((Decision.Accept<TmrAllocation>) first).events().stream()
                .anyMatch(e -> e instanceof ContainerEvent.UsagePeriodStarted));
        fixture.persist(first);
        assertEquals(CmError.USAGE_PERIOD_ELAPSED, refused(fixture.state.allocate(
                allocation(2, emergency, AccessMode.USERLIMIT, "ws-1"), NOW.plus(Duration.ofDays(1)))));
        assertEquals(CmError.USAGE_PERIOD_START_INVALID, refused(fixture.state.allocate(
                allocation(2, emergency, AccessMode.USERLIMIT, "ws-1"), NOW.minusSeconds(1))));
    }

    @Test
    void anAgreedUsageStartOnlyEverMovesTheStartEarlier() {
        List<String> keys = List.of(key(), key(), key());
        fixture.persist(new LicenseUpdated(new LicenseUpdate(SERIAL.toString(), CM_ACT_ID, FIRM, 3, NOW, List.of(
                item(20, 5, 12, null, null, null, Duration.ofDays(1), null)), keys), NOW));
        LicenseKey emergency = new LicenseKey(FIRM, 20, 12);
        Instant latest = NOW.plusSeconds(1);
        // Not started yet: the agreed start is taken.
        fixture.persist(fixture.state.usageStart(emergency, NOW.minusSeconds(600), latest));
        assertEquals(NOW.minusSeconds(600).toEpochMilli(), fixture.state.product(emergency).usageStartedAtMillis());
        // A later start changes nothing: no node lengthens the period.
        Decision<Boolean> later = fixture.state.usageStart(emergency, NOW.minusSeconds(60), latest);
        assertEquals(false, ((Decision.Accept<Boolean>) later).reply());
        assertTrue(((Decision.Accept<Boolean>) later).events().isEmpty());
        fixture.persist(fixture.state.usageStart(emergency, NOW.minusSeconds(900), latest));
        assertEquals(NOW.minusSeconds(900).toEpochMilli(), fixture.state.product(emergency).usageStartedAtMillis());
        assertEquals(CmError.INVALID_PARAMETER, refused(fixture.state.usageStart(emergency, latest.plusMillis(1),
                latest)), "a start beyond the clock and its skew");
        assertEquals(CmError.INVALID_PARAMETER, refused(fixture.state.usageStart(TMR, NOW, latest)),
                "an item without a usage period");
        assertEquals(CmError.ENTRY_NOT_FOUND, refused(fixture.state.usageStart(new LicenseKey(FIRM, 99, 12), NOW,
                latest)));
    }

    @Test
    void aBorrowedAllocationKeepsItsSeatUntilItExpiresAndSurvivesASnapshot() {
        List<String> keys = List.of(key(), key(), key());
        fixture.persist(new LicenseUpdated(new LicenseUpdate(SERIAL.toString(), CM_ACT_ID, FIRM, 3, NOW, List.of(
                item(21, 1, 13, null, NOW.plus(Duration.ofDays(30)), null, null, Duration.ofDays(7))), keys), NOW));
        LicenseKey borrowable = new LicenseKey(FIRM, 21, 13);
        Duration skew = Duration.ofSeconds(1);
        assertEquals(CmError.INVALID_HANDLE, refused(fixture.state.borrowAllocation(1, 9, "ws/anna",
                NOW.plus(Duration.ofDays(1)), NOW, skew)), "no allocation to borrow");
        fixture.persist(fixture.state.allocate(allocation(1, borrowable, AccessMode.USERLIMIT, "ws"), NOW));
        fixture.persist(fixture.state.allocate(allocation(2, TMR, AccessMode.USERLIMIT, "ws"), NOW));
        assertEquals(CmError.ACCESS_DENIED, refused(fixture.state.borrowAllocation(2, 9, "ws/anna",
                NOW.plus(Duration.ofDays(1)), NOW, skew)), "an item without borrowing");
        assertEquals(CmError.INVALID_PARAMETER, refused(fixture.state.borrowAllocation(1, 9, "ws/anna",
                NOW.plus(Duration.ofDays(7)).plus(skew).plusMillis(1), NOW, skew)), "beyond the longest borrow");
        assertEquals(CmError.INVALID_PARAMETER, refused(fixture.state.borrowAllocation(1, 9, "ws/anna", NOW, NOW,
                skew)), "a borrow that has ended already");
        Instant until = NOW.plus(Duration.ofDays(7));
        fixture.persist(fixture.state.borrowAllocation(1, 9, "ws/anna", until, NOW, skew));
        Decision<TmrBorrow> again = fixture.state.borrowAllocation(1, 9, "ws/anna", until, NOW, skew);
        assertTrue(((Decision.Accept<TmrBorrow>) again).events().isEmpty(), "the same ticket again: no second borrow");
        assertEquals(CmError.INVALID_PARAMETER, refused(fixture.state.borrowAllocation(1, 10, "ws/anna", until, NOW,
                skew)), "another ticket for a borrowed handle");
        assertEquals(CmError.INVALID_PARAMETER, refused(fixture.state.borrowAllocation(1, 9, "ws/bert", until, NOW,
                skew)), "the ticket for another client");
        // The same ticket asked again by a node that restarted before it journaled the borrow: the new expiry.
        fixture.persist(fixture.state.borrowAllocation(1, 9, "ws/anna", until.minusSeconds(60), NOW.minusSeconds(60),
                skew));
        fixture.persist(fixture.state.borrowAllocation(1, 9, "ws/anna", until, NOW, skew));
        assertEquals(1, inUse(borrowable));
        assertEquals(CmError.NO_MORE_LICENSES, refused(fixture.state.allocate(allocation(3, borrowable,
                AccessMode.USERLIMIT, "ws-2"), NOW)), "the borrowed seat counts against the quantity");

        ContainerState restored = ContainerState.fromSnapshot(fixture.state.toSnapshot());
        assertEquals(List.of(new TmrBorrow(1, 9, "ws/anna", until)), List.copyOf(restored.tmrBorrows()));
        assertTrue(fixture.state.expiredTmrBorrows(until.minusMillis(1)).isEmpty());
        List<ContainerEvent> expired = fixture.state.expiredTmrBorrows(until);
        assertEquals(List.of(new ContainerEvent.AllocationFreed(1, until)), expired);
        expired.forEach(fixture.state::apply);
        assertEquals(0, inUse(borrowable));
        assertTrue(fixture.state.tmrBorrows().isEmpty());
    }

    @Test
    void allocationsAreNotReclaimedWithSessionsAndSurviveASnapshot() {
        fixture.persist(fixture.state.allocate(allocation(-5, TMR, AccessMode.USERLIMIT, "ws-1"), NOW));
        assertTrue(fixture.state.handles().isEmpty(), "an allocation is no handle: the cleanup never sees it");
        ContainerState restored = ContainerState.fromSnapshot(fixture.state.toSnapshot());
        assertEquals(1, restored.product(TMR).inUse());
        assertEquals(-5, restored.allocations(0, 10).allocations().get(0).tmrHandleId());
    }

    @Test
    void aPageEndsBeforeItOutgrowsItsByteBudget() {
        String longHost = "h".repeat(4000);
        for (long id = 1; id <= 3; id++) {
            fixture.persist(fixture.state.allocate(allocation(id, TMR, AccessMode.NOUSERLIMIT, longHost + id), NOW));
        }
        ContainerState.AllocationPage page = fixture.state.allocations(0, 1000, 9_000);
        assertEquals(2, page.allocations().size());
        assertTrue(page.more());
        assertEquals(1, fixture.state.allocations(0, 1000, 10).allocations().size(), "at least one per page");
        assertEquals(3, fixture.state.allocations(0, 1000, 1 << 20).allocations().size());
    }

    @Test
    void aFullPageAtTheBackendsCapsFitsTheDefaultFrameAndListLimit() {
        // Short owner names: the item cap ends the page. The longest names a string field takes: the byte cap does.
        for (String host : List.of("ws", "h".repeat(io.opentmr.protocol.CodecLimits.DEFAULT.maxStringBytes()))) {
            ContainerFixture state = new ContainerFixture();
            int items = Container.MAX_ALLOCATIONS_PER_PAGE + 10;
            for (long id = 1; id <= items; id++) {
                state.persist(state.state.allocate(new Allocation(id, TMR, AccessMode.NOUSERLIMIT, 0,
                        new HandleOwner(host, "user-" + id, 1, id), Bytes.of(new byte[32]), 1), NOW));
            }
            ContainerState.AllocationPage page = state.state.allocations(0, Container.MAX_ALLOCATIONS_PER_PAGE,
                    Container.MAX_ALLOCATION_PAGE_BYTES);
            assertTrue(page.more());
            io.opentmr.protocol.Message.AllocationList list = new io.opentmr.protocol.Message.AllocationList(
                    page.allocations().stream().map(TmrAllocation::toProtocol).toList(), page.more());
            io.netty.buffer.ByteBuf frame = io.netty.buffer.Unpooled.buffer();
            try {
                io.opentmr.protocol.FrameEncoder.encode(new io.opentmr.protocol.Frame(1, list), frame);
                // Throws on a frame or list over the limits a node decodes with.
                io.opentmr.protocol.Frame decoded = io.opentmr.protocol.FrameDecoder.readFrame(frame,
                        io.opentmr.protocol.CodecLimits.DEFAULT);
                assertEquals(list, decoded.message());
            } finally {
                frame.release();
            }
            if (host.length() == 2) {
                assertEquals(Container.MAX_ALLOCATIONS_PER_PAGE, page.allocations().size());
            }
        }
    }

    @Test
    void aLeaseLivesWhileItsTtlRunsAndItsConnectionIsOpen() {
        LeaseTable table = new LeaseTable();
        AtomicBoolean open = new AtomicBoolean(true);
        PeerConnection a = new PeerConnection("node-a", "a", open::get);
        PeerConnection b = new PeerConnection("node-b", "b", () -> true);
        Duration ttl = Duration.ofSeconds(2);
        Decision.Accept<LeaseTable.Lease> granted = accepted(table.acquire("l", "node-a", 0, ttl, a, 4, "old", NOW));
        assertEquals(5, granted.reply().epoch());
        assertEquals(List.of(new ContainerEvent.LeaseEpochRaised("l", 5, "node-a", NOW)), granted.events(),
                "the new epoch and its holder are persisted before the grant");
        assertEquals(CmError.TMR_LEASE_REFUSED, refused(table.acquire("l", "node-b", 0, ttl, b, 5, "node-a", NOW)));
        Decision.Accept<LeaseTable.Lease> again = accepted(table.acquire("l", "node-a", 3, ttl, a, 5, "node-a", NOW));
        assertEquals(5, again.reply().epoch());
        assertTrue(again.events().isEmpty());
        open.set(false);
        assertNull(table.live("l", NOW), "dead with its connection");
        assertEquals(6, accepted(table.acquire("l", "node-b", 0, ttl, b, 5, "node-a", NOW)).reply().epoch());
        assertEquals(CmError.TMR_LEASE_REFUSED, refused(table.renew("l", "node-a", 5, ttl, a, NOW)));
        assertTrue(table.live("l", NOW.plus(ttl)) != null);
        assertNull(table.live("l", NOW.plus(ttl).plusMillis(1)), "dead after its TTL");
        assertEquals(1, table.purge(NOW.plus(ttl).plusMillis(1)).size());
    }

    @Test
    void aNodeAsksForLeasesUnderItsAuthenticatedNameOnly() {
        LeaseTable table = new LeaseTable();
        PeerConnection a = new PeerConnection("node-a", "a", () -> true);
        Duration ttl = Duration.ofSeconds(2);
        Decision<LeaseTable.Lease> asOther = table.acquire("l", "node-b", 0, ttl, a, 0, null, NOW);
        assertEquals(CmError.TMR_LEASE_REFUSED, refused(asOther));
        assertTrue(((Decision.Refuse<?>) asOther).text().contains("authenticated as node-a"), asOther.toString());
        assertNull(table.live("l", NOW));
        long epoch = accepted(table.acquire("l", "node-a", 0, ttl, a, 0, null, NOW)).reply().epoch();
        assertEquals(CmError.TMR_LEASE_REFUSED, refused(table.renew("l", "node-b", epoch, ttl, a, NOW)));
        assertEquals(CmError.TMR_LEASE_REFUSED, refused(table.release("l", "node-b", epoch, a)));
        assertEquals("node-a", table.live("l", NOW).holder(), "still held by the authenticated name");
        assertEquals(true, accepted(table.release("l", "node-a", epoch, a)).reply());
    }

    @Test
    void aSecondConnectionUnderALiveLeasesNameDoesNotDisplaceIt() {
        LeaseTable table = new LeaseTable();
        AtomicBoolean firstOpen = new AtomicBoolean(true);
        PeerConnection first = new PeerConnection("node-a", "first", firstOpen::get);
        PeerConnection second = new PeerConnection("node-a", "second", () -> true);
        Duration ttl = Duration.ofSeconds(2);
        LeaseTable.Lease held = accepted(table.acquire("l", "node-a", 0, ttl, first, 3, "node-a", NOW)).reply();
        assertEquals(3, held.epoch(), "the same holder keeps its epoch");
        for (long proposed : new long[] {0, 3, 9}) {
            assertEquals(CmError.TMR_LEASE_REFUSED, refused(table.acquire("l", "node-a", proposed, ttl, second, 3,
                    "node-a", NOW.plusMillis(10))));
        }
        assertEquals(CmError.TMR_LEASE_REFUSED, refused(table.renew("l", "node-a", 3, ttl, second, NOW)));
        assertEquals(false, accepted(table.release("l", "node-a", 3, second)).reply());
        assertEquals(first, table.live("l", NOW).connection(), "the live holder is not displaced");
        accepted(table.renew("l", "node-a", 3, ttl, first, NOW.plusMillis(20)));

        firstOpen.set(false);
        Decision.Accept<LeaseTable.Lease> back = accepted(table.acquire("l", "node-a", 0, ttl, second, 3, "node-a",
                NOW.plusMillis(30)));
        assertEquals(3, back.reply().epoch(), "its connection closed: the same node on a new one keeps its epoch");
        assertTrue(back.events().isEmpty(), "no epoch raised, nothing persisted");
    }

    @Test
    void theEpochRisesOnlyWhenTheHolderChanges() {
        LeaseTable table = new LeaseTable();
        Duration ttl = Duration.ofSeconds(2);
        PeerConnection a1 = new PeerConnection("node-a", "a1", () -> true);
        assertEquals(7, accepted(table.acquire("l", "node-a", 0, ttl, a1, 7, "node-a", NOW)).reply().epoch());
        Instant expired = NOW.plus(ttl).plusMillis(1);
        PeerConnection a2 = new PeerConnection("node-a", "a2", () -> true);
        assertEquals(7, accepted(table.acquire("l", "node-a", 1, ttl, a2, 7, "node-a", expired)).reply().epoch(),
                "after its lease expired the same holder keeps its epoch, whatever it proposes below it");
        PeerConnection a3 = new PeerConnection("node-a", "a3", () -> true);
        Decision.Accept<LeaseTable.Lease> higher = accepted(table.acquire("l", "node-a", 9, ttl, a3, 7, "node-a",
                expired.plus(ttl).plusMillis(1)));
        assertEquals(9, higher.reply().epoch(), "a higher proposal is granted");
        assertEquals(1, higher.events().size());

        Instant later = NOW.plusSeconds(60);
        PeerConnection b = new PeerConnection("node-b", "b", () -> true);
        assertEquals(10, accepted(table.acquire("l", "node-b", 9, ttl, b, 9, "node-a", later)).reply().epoch(),
                "another holder always gets a higher epoch, even when it proposes the highest");
        PeerConnection c = new PeerConnection("node-c", "c", () -> true);
        Decision.Accept<LeaseTable.Lease> unknown = accepted(table.acquire("l", "node-c", 0, ttl, c, 10, null,
                later.plusSeconds(60)));
        assertEquals(11, unknown.reply().epoch(), "an unknown last holder (an older journal) is another holder");
        assertEquals(List.of(new ContainerEvent.LeaseEpochRaised("l", 11, "node-c", later.plusSeconds(60))),
                unknown.events());
    }

    @Test
    void theHolderOfTheHighestEpochIsJournaledAndSnapshottedAndOlderDataOpens() {
        ContainerState state = fixture.state;
        assertNull(state.highestHolder("l"));
        state.apply(new ContainerEvent.LeaseEpochRaised("l", 4, "node-a", NOW));
        assertEquals("node-a", state.highestHolder("l"));
        assertEquals(List.of(), state.epochSeen("l", 4, "node-b", NOW), "not above the highest: nothing to record");
        state.apply(state.epochSeen("l", 6, "node-b", NOW).get(0));
        assertEquals(6, state.highestEpoch("l"));
        assertEquals("node-b", state.highestHolder("l"), "a certificate's epoch is recorded with its holder");
        state.apply(new ContainerEvent.LeaseEpochRaised("l", 5, "node-c", NOW));
        assertEquals("node-b", state.highestHolder("l"), "a lower epoch changes neither epoch nor holder");

        ContainerState restored = ContainerState.fromSnapshot(state.toSnapshot());
        assertEquals(6, restored.highestEpoch("l"));
        assertEquals("node-b", restored.highestHolder("l"));

        state.apply(new ContainerEvent.LeaseEpochRaised("l", 7, null, NOW));
        assertEquals(7, state.highestEpoch("l"));
        assertNull(state.highestHolder("l"), "an event of an older journal leaves the holder unknown");

        ContainerSnapshot current = state.toSnapshot();
        ContainerSnapshot older = new ContainerSnapshot(current.serial(), current.cmActId(),
                current.firmUpdateCounters(), current.items(), current.handles(), current.borrows(),
                current.recentDecrements(), current.nextHandleId(), current.nextTicketId(), Map.of("l", 3L),
                current.allocations(), current.peerOperations(), null);
        ContainerState fromOlder = ContainerState.fromSnapshot(older);
        assertEquals(3, fromOlder.highestEpoch("l"));
        assertNull(fromOlder.highestHolder("l"), "a snapshot written before holders were kept opens without them");
    }

    private static <T> Decision.Accept<T> accepted(Decision<T> decision) {
        assertInstanceOf(Decision.Accept.class, decision, decision.toString());
        return (Decision.Accept<T>) decision;
    }

    private static String key() {
        return Base64.getEncoder().encodeToString(Ed25519.raw(Ed25519.generate().getPublic()));
    }
}
