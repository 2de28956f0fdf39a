package io.opentmr.backend;

import static io.opentmr.backend.ContainerFixture.BORROWABLE_1_SEAT;
import static io.opentmr.backend.ContainerFixture.CM_ACT_ID;
import static io.opentmr.backend.ContainerFixture.EMERGENCY_1_DAY;
import static io.opentmr.backend.ContainerFixture.EXPIRED;
import static io.opentmr.backend.ContainerFixture.FIRM;
import static io.opentmr.backend.ContainerFixture.NOT_YET_ACTIVE;
import static io.opentmr.backend.ContainerFixture.NOW;
import static io.opentmr.backend.ContainerFixture.NO_SEATS;
import static io.opentmr.backend.ContainerFixture.SEATS_2;
import static io.opentmr.backend.ContainerFixture.SERIAL;
import static io.opentmr.backend.ContainerFixture.TMR_COPY;
import static io.opentmr.backend.ContainerFixture.UNITS_10;
import static io.opentmr.backend.ContainerFixture.item;
import static io.opentmr.backend.ContainerFixture.request;
import static io.opentmr.protocol.AccessMode.EXCLUSIVE;
import static io.opentmr.protocol.AccessMode.NOUSERLIMIT;
import static io.opentmr.protocol.AccessMode.STATIONSHARE;
import static io.opentmr.protocol.AccessMode.USERLIMIT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.license.LicenseUpdate;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ProductInfo;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class ContainerStateTest {

    private final ContainerFixture fixture = new ContainerFixture();
    private final ContainerState state = fixture.state;

    private record Holder(long product, AccessMode mode, String host) {
    }

    private static Holder holds(long product, AccessMode mode, String host) {
        return new Holder(product, mode, host);
    }

    /** name, handles already open, the access under test, the expected number (0: granted). */
    static Stream<Arguments> accessRules() {
        return Stream.of(
                row("a free seat", List.of(), SEATS_2, 0, USERLIMIT, "a", 0),
                row("the last seat", List.of(holds(SEATS_2, USERLIMIT, "a")), SEATS_2, 0, USERLIMIT, "b", 0),
                row("every seat taken", List.of(holds(SEATS_2, USERLIMIT, "a"), holds(SEATS_2, USERLIMIT, "b")),
                        SEATS_2, 0, USERLIMIT, "c", 212),
                row("NOUSERLIMIT takes no seat", List.of(holds(SEATS_2, USERLIMIT, "a"),
                        holds(SEATS_2, USERLIMIT, "b")), SEATS_2, 0, NOUSERLIMIT, "c", 0),
                row("STATIONSHARE shares its host's seat", List.of(holds(SEATS_2, USERLIMIT, "a"),
                        holds(SEATS_2, STATIONSHARE, "b")), SEATS_2, 0, STATIONSHARE, "b", 0),
                row("STATIONSHARE from a new host needs a seat", List.of(holds(SEATS_2, USERLIMIT, "a"),
                        holds(SEATS_2, STATIONSHARE, "b")), SEATS_2, 0, STATIONSHARE, "c", 212),
                row("EXCLUSIVE on an unused item", List.of(), SEATS_2, 0, EXCLUSIVE, "a", 0),
                row("EXCLUSIVE while another holds a seat", List.of(holds(SEATS_2, USERLIMIT, "a")),
                        SEATS_2, 0, EXCLUSIVE, "b", 213),
                row("EXCLUSIVE while a NOUSERLIMIT handle is open", List.of(holds(SEATS_2, NOUSERLIMIT, "a")),
                        SEATS_2, 0, EXCLUSIVE, "b", 213),
                row("anything while EXCLUSIVE is held", List.of(holds(SEATS_2, EXCLUSIVE, "a")),
                        SEATS_2, 0, NOUSERLIMIT, "b", 213),
                row("USERLIMIT while EXCLUSIVE is held", List.of(holds(SEATS_2, EXCLUSIVE, "a")),
                        SEATS_2, 0, USERLIMIT, "a", 213),
                row("an item of quantity 0", List.of(), NO_SEATS, 0, USERLIMIT, "a", 212),
                row("EXCLUSIVE on an item of quantity 0", List.of(), NO_SEATS, 0, EXCLUSIVE, "a", 212),
                row("feature bits in the map", List.of(), SEATS_2, 0b10, USERLIMIT, "a", 0),
                row("a feature bit not in the map", List.of(), SEATS_2, 0b100, USERLIMIT, "a", 200),
                row("an unknown product", List.of(), 999, 0, USERLIMIT, "a", 200),
                row("a TMR copy to an ordinary client", List.of(), TMR_COPY, 0, USERLIMIT, "a", 231),
                row("an expired item", List.of(), EXPIRED, 0, USERLIMIT, "a", 35),
                row("an item before its activation", List.of(), NOT_YET_ACTIVE, 0, USERLIMIT, "a", 37),
                row("an emergency license, first access", List.of(), EMERGENCY_1_DAY, 0, USERLIMIT, "a", 0));
    }

    private static Arguments row(String name, List<Holder> holders, long product, long featureBits, AccessMode mode,
                                 String host, int expected) {
        return Arguments.of(name, holders, product, featureBits, mode, host, expected);
    }

    @ParameterizedTest(name = "{0} -> {6}")
    @MethodSource("accessRules")
    void accessRule(String name, List<Holder> holders, long product, long featureBits, AccessMode mode, String host,
                    int expected) {
        long session = 1;
        for (Holder holder : holders) {
            fixture.open(holder.product(), holder.mode(), holder.host(), session++);
        }
        ContainerState.AccessRequest request = new ContainerState.AccessRequest(FIRM, product, featureBits, mode,
                ContainerFixture.owner(host, session), "digest", false, host);
        Decision<Handle> decision = state.access(request, NOW);
        assertEquals(expected, code(decision), name + ": " + decision);
        assertEquals(expected, code(fixture.replayed().access(request, NOW)), name + ", after recovery");
    }

    @Test
    void aReSentAccessFindsItsOpenHandleWithinTheMemoryAlsoAfterRecoveryAndSnapshot() {
        ContainerState.AccessRequest first = new ContainerState.AccessRequest(FIRM, SEATS_2, 0, USERLIMIT,
                ContainerFixture.owner("ws", 1), "digest", false, "10.0.0.1", 77);
        Handle opened = fixture.persist(state.access(first, NOW));
        ContainerState.AccessRequest again = new ContainerState.AccessRequest(FIRM, SEATS_2, 0, USERLIMIT,
                ContainerFixture.owner("ws", 2), "other digest", false, "10.0.0.1", 77);
        assertEquals(opened.id(), state.retried(again, NOW.plusSeconds(5)).id(), "another session, same request");
        assertEquals(opened.id(), fixture.replayed().retried(again, NOW.plusSeconds(5)).id(), "after recovery");
        assertEquals(opened.id(), ContainerState.fromSnapshot(state.toSnapshot()).retried(again, NOW.plusSeconds(5))
                .id(), "after a snapshot");
        assertEquals(null, state.retried(again, NOW.plus(ContainerState.GRANT_MEMORY)), "not after the memory");
        for (ContainerState.AccessRequest other : List.of(
                new ContainerState.AccessRequest(FIRM, SEATS_2, 0, USERLIMIT, ContainerFixture.owner("ws", 2), "d",
                        false, "10.0.0.1", 78),
                new ContainerState.AccessRequest(FIRM, SEATS_2, 0, USERLIMIT, ContainerFixture.owner("ws", 2), "d",
                        false, "10.0.0.2", 77),
                new ContainerState.AccessRequest(FIRM, SEATS_2, 0, STATIONSHARE, ContainerFixture.owner("ws", 2), "d",
                        false, "10.0.0.1", 77),
                new ContainerState.AccessRequest(FIRM, SEATS_2, 0, USERLIMIT, ContainerFixture.owner("ws", 2), "d",
                        false, "10.0.0.1", null))) {
            assertEquals(null, state.retried(other, NOW), "another request: " + other);
        }
        fixture.persist(state.release(opened.id(), 1, NOW));
        assertEquals(null, state.retried(again, NOW), "released: a new ACCESS");
        assertEquals(0, state.rememberedRequests());
    }

    @Test
    void theMemoryKeepsOnlyTheLastMinuteOfGrants() {
        for (int i = 0; i < 5; i++) {
            fixture.persist(state.access(new ContainerState.AccessRequest(FIRM, UNITS_10, 0, NOUSERLIMIT,
                    ContainerFixture.owner("ws", 1), "d", false, "10.0.0.1", i), NOW.plusSeconds(i * 20L)));
        }
        assertEquals(3, state.rememberedRequests(), "the grants of 40, 60 and 80 s: the others are a minute older");
        assertEquals(3, fixture.replayed().rememberedRequests());
    }

    @Test
    void aTmrPeerMayUseATmrCopy() {
        ContainerState.AccessRequest peer = new ContainerState.AccessRequest(FIRM, TMR_COPY, 0, USERLIMIT,
                ContainerFixture.owner("node-a", 1), "digest", true, "node-a");
        assertEquals(0, code(state.access(peer, NOW)));
    }

    @Test
    void stationShareCountsStationsByAddressNotByTheHostNameAClientClaims() {
        ContainerState.AccessRequest first = new ContainerState.AccessRequest(FIRM, SEATS_2, 0, STATIONSHARE,
                ContainerFixture.owner("cad-1", 1), "d1", false, "10.0.0.5");
        fixture.persist(state.access(first, NOW));
        fixture.open(SEATS_2, USERLIMIT, "other", 2);
        ContainerState.AccessRequest sameStationOtherName = new ContainerState.AccessRequest(FIRM, SEATS_2, 0,
                STATIONSHARE, ContainerFixture.owner("renamed", 3), "d3", false, "10.0.0.5");
        assertEquals(0, code(state.access(sameStationOtherName, NOW)), "one station, one seat, whatever its name");
        ContainerState.AccessRequest sameNameOtherStation = new ContainerState.AccessRequest(FIRM, SEATS_2, 0,
                STATIONSHARE, ContainerFixture.owner("cad-1", 4), "d4", false, "10.0.0.6");
        assertEquals(212, code(state.access(sameNameOtherStation, NOW)),
                "claiming another station's host name does not share its seat");
    }

    @Test
    void theUsagePeriodStartsAtFirstAccessAndEnds() {
        Handle first = fixture.open(EMERGENCY_1_DAY, USERLIMIT, "a", 1);
        assertTrue(fixture.journal.stream().anyMatch(e -> e instanceof ContainerEvent.UsagePeriodStarted));
        fixture.persist(state.release(first.id(), 1, NOW));

        Instant laterThatDay = NOW.plus(Duration.ofHours(23));
        assertEquals(0, code(state.access(request(EMERGENCY_1_DAY, USERLIMIT, "a", 1), laterThatDay)));
        assertEquals(71, code(state.access(request(EMERGENCY_1_DAY, USERLIMIT, "a", 1), NOW.plus(Duration.ofDays(1)))));
        assertEquals(72, code(state.access(request(EMERGENCY_1_DAY, USERLIMIT, "a", 1), NOW.minusSeconds(5))),
                "a clock set back before the start is refused, not a free new period");
    }

    @Test
    void releaseFreesTheSeatAndOnlyTheOwningSessionMayRelease() {
        Handle a = fixture.open(SEATS_2, USERLIMIT, "a", 1);
        fixture.open(SEATS_2, USERLIMIT, "b", 2);
        assertEquals(106, code(state.release(a.id(), 2, NOW)), "another session");
        assertEquals(106, code(state.release(9999, 1, NOW)), "unknown handle");
        fixture.persist(state.release(a.id(), 1, NOW));
        assertEquals(106, code(state.release(a.id(), 1, NOW)), "released twice");
        assertEquals(0, code(state.access(request(SEATS_2, USERLIMIT, "c", 3), NOW)), "the seat is free again");
    }

    @Test
    void resumeMovesTheHandleToTheNewSessionOnlyWithTheRightToken() {
        Handle a = fixture.open(SEATS_2, USERLIMIT, "a", 1);
        assertEquals(106, code(state.resume(a.id(), "wrong", 5, NOW)));
        assertEquals(106, code(state.resume(777, "digest-a", 5, NOW)));
        fixture.persist(state.resume(a.id(), "digest-a", 5, NOW));
        assertEquals(106, code(state.release(a.id(), 1, NOW)), "the old session no longer owns it");
        assertEquals(0, code(fixture.replayed().release(a.id(), 5, NOW)), "the resumed owner survives recovery");
    }

    @Test
    void reclaimTakesBackTheSeat() {
        Handle a = fixture.open(SEATS_2, USERLIMIT, "a", 1);
        fixture.open(SEATS_2, USERLIMIT, "b", 2);
        fixture.persist(state.reclaim(a.id(), NOW));
        assertEquals(0, code(state.access(request(SEATS_2, USERLIMIT, "c", 3), NOW)));
        assertEquals(106, code(state.handle(a.id(), 1)));
    }

    static Stream<Arguments> unitRules() {
        return Stream.of(
                Arguments.of("within the counter", UNITS_10, 4L, 0, 6L),
                Arguments.of("zero: a read", UNITS_10, 0L, 0, 10L),
                Arguments.of("exactly the counter", UNITS_10, 10L, 0, 0L),
                Arguments.of("more than the counter", UNITS_10, 11L, 32, 10L),
                Arguments.of("an item without a counter", SEATS_2, 1L, 33, 0L));
    }

    @ParameterizedTest(name = "{0} -> {3}")
    @MethodSource("unitRules")
    void unitRule(String name, long product, long amount, int expected, long unitsAfter) {
        Handle handle = fixture.open(product, USERLIMIT, "a", 1);
        Decision<Long> decision = state.decrementUnits(handle.id(), 1, 1, amount, NOW);
        assertEquals(expected, code(decision), name + ": " + decision);
        if (decision.accepted()) {
            fixture.persist(decision);
        }
        assertEquals(unitsAfter, units(state, product));
    }

    @Test
    void aZeroCounterRefusesWith31AndARetryIsNotAppliedTwice() {
        Handle handle = fixture.open(UNITS_10, USERLIMIT, "a", 1);
        assertEquals(7L, fixture.persist(state.decrementUnits(handle.id(), 1, 42, 3, NOW)));
        assertEquals(7L, fixture.persist(state.decrementUnits(handle.id(), 1, 42, 3, NOW)), "the same operation");
        assertEquals(7, units(state, UNITS_10));
        assertEquals(0L, fixture.persist(state.decrementUnits(handle.id(), 1, 43, 7, NOW)));
        assertEquals(31, code(state.decrementUnits(handle.id(), 1, 44, 1, NOW)));
        assertEquals(0L, fixture.persist(fixture.replayed().decrementUnits(handle.id(), 1, 43, 7, NOW)),
                "a retry after recovery still finds its result");
    }

    @Test
    void aRetriedDecrementIsRecognisedHoweverBusyOtherHandlesAre() {
        fixture.persist(state.applyUpdate(new LicenseUpdate(SERIAL.toString(), CM_ACT_ID, FIRM, 3, NOW,
                List.of(item(9, 10, 0, 100_000L, null, null, null, null)), List.of()), NOW));
        Handle quiet = fixture.open(9, USERLIMIT, "a", 1);
        Handle busy = fixture.open(9, USERLIMIT, "b", 2);
        assertEquals(99_999L, fixture.persist(state.decrementUnits(quiet.id(), 1, 1, 1, NOW)));
        for (long op = 1; op <= 5_000; op++) {
            fixture.persist(state.decrementUnits(busy.id(), 2, op, 1, NOW));
        }
        assertEquals(99_999L, fixture.persist(state.decrementUnits(quiet.id(), 1, 1, 1, NOW)),
                "the retry finds its first result instead of subtracting again");
        assertEquals(94_999, units(state, 9));
        assertEquals(94_999, units(fixture.replayed(), 9));
    }

    @Test
    void borrowingHoldsASeatUntilReturnOrExpiry() {
        Handle handle = fixture.open(BORROWABLE_1_SEAT, USERLIMIT, "a", 1);
        assertEquals(105, code(state.borrow(handle.id(), 1, Duration.ofDays(8), "a/user", NOW)), "beyond borrowMax");
        Borrow borrow = fixture.persist(state.borrow(handle.id(), 1, Duration.ofDays(5), "a/user", NOW));
        assertEquals(NOW.plus(Duration.ofDays(3)), borrow.expiresAt(), "never after the license expires");
        assertEquals(106, code(state.release(handle.id(), 1, NOW)), "the handle became the borrow");
        assertEquals(212, code(state.access(request(BORROWABLE_1_SEAT, USERLIMIT, "b", 2), NOW)), "seat held");

        assertTrue(state.expiredBorrows(NOW.plus(Duration.ofDays(2))).isEmpty());
        state.expiredBorrows(NOW.plus(Duration.ofDays(3))).forEach(fixture::persist);
        assertEquals(0, code(state.access(request(BORROWABLE_1_SEAT, USERLIMIT, "b", 2), NOW)), "expired: free");
        assertEquals(106, code(state.returnBorrow(borrow.ticketId(), "a/user", NOW)), "already ended");
    }

    @Test
    void aReturnedBorrowFreesItsSeatAndBorrowingNeedsPermission() {
        Handle handle = fixture.open(BORROWABLE_1_SEAT, USERLIMIT, "a", 1);
        Borrow borrow = fixture.persist(state.borrow(handle.id(), 1, Duration.ofHours(1), "a/user", NOW));
        assertEquals(106, code(state.returnBorrow(borrow.ticketId(), "b/user", NOW)),
                "only the client the ticket was issued to returns it");
        fixture.persist(state.returnBorrow(borrow.ticketId(), "a/user", NOW));
        fixture.open(BORROWABLE_1_SEAT, USERLIMIT, "b", 2);

        Handle plain = fixture.open(SEATS_2, USERLIMIT, "a", 1);
        assertEquals(231, code(state.borrow(plain.id(), 1, Duration.ofHours(1), "a/user", NOW)));
        Handle free = fixture.open(BORROWABLE_1_SEAT, NOUSERLIMIT, "c", 3);
        assertEquals(212, code(state.borrow(free.id(), 3, Duration.ofHours(1), "c/user", NOW)),
                "a NOUSERLIMIT handle holds no seat to borrow, and none is free");
    }

    static Stream<Arguments> updateRules() {
        return Stream.of(
                Arguments.of("the next counter", SERIAL.toString(), CM_ACT_ID, 3L, 0),
                Arguments.of("another container", "129-1001", CM_ACT_ID, 3L, 201),
                Arguments.of("another CmActId", SERIAL.toString(), 8L, 3L, 201),
                Arguments.of("a replayed file", SERIAL.toString(), CM_ACT_ID, 2L, 231),
                Arguments.of("a file out of order", SERIAL.toString(), CM_ACT_ID, 4L, 231));
    }

    @ParameterizedTest(name = "{0} -> {4}")
    @MethodSource("updateRules")
    void updateRule(String name, String target, long cmActId, long counter, int expected) {
        LicenseUpdate update = new LicenseUpdate(target, cmActId, FIRM, counter, NOW,
                List.of(item(SEATS_2, 5, 0, null, null, null, null, null)), List.of());
        assertEquals(expected, code(state.applyUpdate(update, NOW)), name);
    }

    @Test
    void aReissuedItemGetsItsNewTermsAndKeepsItsHolders() {
        fixture.open(SEATS_2, USERLIMIT, "a", 1);
        fixture.open(SEATS_2, USERLIMIT, "b", 2);
        fixture.persist(state.applyUpdate(new LicenseUpdate(SERIAL.toString(), CM_ACT_ID, FIRM, 3, NOW,
                List.of(item(SEATS_2, 3, 0, null, null, null, null, null)), List.of()), NOW));
        ProductInfo info = product(state, SEATS_2);
        assertEquals(3, info.quantity());
        assertEquals(2, info.inUse());
        assertEquals(0, code(state.access(request(SEATS_2, USERLIMIT, "c", 3), NOW)));
        assertEquals(3, state.firmUpdateCounters().get(FIRM));
    }

    @Test
    void recoveryFromTheJournalGivesTheSameContainer() {
        Handle a = fixture.open(SEATS_2, STATIONSHARE, "a", 1);
        fixture.open(SEATS_2, STATIONSHARE, "a", 2);
        fixture.open(UNITS_10, USERLIMIT, "b", 3);
        fixture.persist(state.decrementUnits(a.id() + 2, 3, 1, 4, NOW));
        fixture.open(EMERGENCY_1_DAY, NOUSERLIMIT, "c", 4);
        ContainerState recovered = fixture.replayed();
        assertEquals(state.products(), recovered.products());
        assertEquals(Set.copyOf(state.handles()), Set.copyOf(recovered.handles()));
        assertEquals(state.firmUpdateCounters(), recovered.firmUpdateCounters());
    }

    @Test
    void aSnapshotGivesTheSameContainerAndTheSameAnswers() {
        Handle station = fixture.open(SEATS_2, STATIONSHARE, "a", 1);
        fixture.open(SEATS_2, STATIONSHARE, "a", 2);
        Handle units = fixture.open(UNITS_10, USERLIMIT, "b", 3);
        fixture.persist(state.decrementUnits(units.id(), 3, 7, 4, NOW));
        fixture.open(EMERGENCY_1_DAY, NOUSERLIMIT, "c", 4);
        Handle lender = fixture.open(BORROWABLE_1_SEAT, USERLIMIT, "d", 5);
        fixture.persist(state.borrow(lender.id(), 5, Duration.ofHours(1), "d/user", NOW));

        ContainerState restored = ContainerState.fromSnapshot(state.toSnapshot());
        assertEquals(state.products(), restored.products());
        assertEquals(Set.copyOf(state.handles()), Set.copyOf(restored.handles()));
        assertEquals(Set.copyOf(state.borrows()), Set.copyOf(restored.borrows()));
        assertEquals(state.firmUpdateCounters(), restored.firmUpdateCounters());
        assertEquals(6L, ((Decision.Accept<Long>) restored.decrementUnits(units.id(), 3, 7, 4, NOW)).reply(),
                "a retried decrement finds its result after a snapshot");
        assertEquals(212, code(restored.access(request(BORROWABLE_1_SEAT, USERLIMIT, "e", 6), NOW)), "borrowed seat");
        assertEquals(0, code(restored.access(request(SEATS_2, STATIONSHARE, "a", 7), NOW)), "station a shares");
        Handle next = ((Decision.Accept<Handle>) restored.access(request(SEATS_2, USERLIMIT, "g", 9), NOW)).reply();
        assertTrue(next.id() > lender.id() && next.id() > station.id(), "handle ids continue after the snapshot");
    }

    private static int code(Decision<?> decision) {
        return decision instanceof Decision.Refuse<?> refuse ? refuse.error().code() : 0;
    }

    private static ProductInfo product(ContainerState state, long product) {
        return state.products().stream().filter(p -> p.productCode() == product).findFirst().orElseThrow();
    }

    private static long units(ContainerState state, long product) {
        return product(state, product).units();
    }

    @Test
    void everyRefusalNamesItsNumber() {
        assertEquals(CmError.NO_MORE_LICENSES,
                ((Decision.Refuse<Handle>) state.access(request(NO_SEATS, USERLIMIT, "a", 1), NOW)).error());
    }
}
