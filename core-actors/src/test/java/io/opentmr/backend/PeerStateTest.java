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
import java.util.Base64;
import java.util.List;
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
    void aLeaseLivesWhileItsTtlRunsAndItsConnectionIsOpen() {
        LeaseTable table = new LeaseTable();
        AtomicBoolean open = new AtomicBoolean(true);
        PeerConnection a = new PeerConnection("node-a", "a", open::get);
        PeerConnection b = new PeerConnection("node-b", "b", () -> true);
        Duration ttl = Duration.ofSeconds(2);
        Decision.Accept<LeaseTable.Lease> granted = accepted(table.acquire("l", "node-a", 0, ttl, a, 4, NOW));
        assertEquals(5, granted.reply().epoch());
        assertEquals(1, granted.events().size(), "the new epoch is persisted before the grant");
        assertEquals(CmError.TMR_LEASE_REFUSED, refused(table.acquire("l", "node-b", 0, ttl, b, 5, NOW)));
        Decision.Accept<LeaseTable.Lease> again = accepted(table.acquire("l", "node-a", 3, ttl, a, 5, NOW));
        assertEquals(5, again.reply().epoch());
        assertTrue(again.events().isEmpty());
        open.set(false);
        assertNull(table.live("l", NOW), "dead with its connection");
        assertEquals(6, ((Decision.Accept<LeaseTable.Lease>) table.acquire("l", "node-b", 0, ttl, b, 5, NOW))
                .reply().epoch());
        assertEquals(CmError.TMR_LEASE_REFUSED, refused(table.renew("l", "node-a", 5, ttl, a, NOW)));
        assertTrue(table.live("l", NOW.plus(ttl)) != null);
        assertNull(table.live("l", NOW.plus(ttl).plusMillis(1)), "dead after its TTL");
        assertEquals(1, table.purge(NOW.plus(ttl).plusMillis(1)).size());
    }

    private static <T> Decision.Accept<T> accepted(Decision<T> decision) {
        assertInstanceOf(Decision.Accept.class, decision, decision.toString());
        return (Decision.Accept<T>) decision;
    }

    private static String key() {
        return Base64.getEncoder().encodeToString(Ed25519.raw(Ed25519.generate().getPublic()));
    }
}
