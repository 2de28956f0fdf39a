package io.opentmr.backend;

import static io.opentmr.backend.ContainerFixture.BORROWABLE_1_SEAT;
import static io.opentmr.backend.ContainerFixture.NOW;
import static io.opentmr.backend.ContainerFixture.SEATS_2;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.ProductInfo;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Under any sequence of accesses, releases, reclaims, borrows, returns and expiries: no item ever has
 * more seats in use than its quantity, an EXCLUSIVE holder is alone, and the state's own counters
 * agree with seats counted from scratch — also after recovery from the journal.
 */
class SeatInvariantPropertyTest {

    enum Kind { ACCESS, RELEASE, RECLAIM, BORROW, RETURN, EXPIRE }

    record Step(Kind kind, long product, AccessMode mode, int host, int pick, int minutes) {
    }

    @Property(tries = 500)
    void seatsNeverExceedTheQuantity(@ForAll("steps") List<Step> steps) {
        ContainerFixture fixture = new ContainerFixture();
        ContainerState state = fixture.state;
        Instant now = NOW;
        long session = 1;
        for (Step step : steps) {
            now = now.plus(Duration.ofMinutes(step.minutes()));
            List<Handle> open = new ArrayList<>(state.handles());
            List<Borrow> borrowed = new ArrayList<>(state.borrows());
            Decision<?> decision = switch (step.kind()) {
                case ACCESS -> state.access(ContainerFixture.request(step.product(), step.mode(),
                        "host-" + step.host(), session++), now);
                case RELEASE -> open.isEmpty() ? null : release(state, pick(open, step), now);
                case RECLAIM -> open.isEmpty() ? null : state.reclaim(pick(open, step).id(), now);
                case BORROW -> open.isEmpty() ? null : borrow(state, pick(open, step), now);
                case RETURN -> borrowed.isEmpty() ? null : state.returnBorrow(pick(borrowed, step).ticketId(), "client", now);
                case EXPIRE -> null;
            };
            if (step.kind() == Kind.EXPIRE) {
                state.expiredBorrows(now).forEach(fixture::persist);
            } else if (decision != null && decision.accepted()) {
                fixture.persist(decision);
            }
            assertInvariant(state);
        }
        ContainerState recovered = fixture.replayed();
        assertInvariant(recovered);
        assertEquals(state.products(), recovered.products());
    }

    private static Decision<?> release(ContainerState state, Handle handle, Instant now) {
        return state.release(handle.id(), handle.owner().sessionId(), now);
    }

    private static Decision<?> borrow(ContainerState state, Handle handle, Instant now) {
        return state.borrow(handle.id(), handle.owner().sessionId(), Duration.ofMinutes(30), "client", now);
    }

    private static <T> T pick(List<T> list, Step step) {
        return list.get(step.pick() % list.size());
    }

    private static void assertInvariant(ContainerState state) {
        Map<LicenseKey, List<Handle>> byItem = state.handles().stream().collect(Collectors.groupingBy(Handle::item));
        Map<LicenseKey, Long> borrowsByItem = state.borrows().stream()
                .collect(Collectors.groupingBy(Borrow::item, Collectors.counting()));
        for (ProductInfo product : state.products()) {
            LicenseKey key = new LicenseKey(product.firmCode(), product.productCode(), product.tmrId());
            List<Handle> handles = byItem.getOrDefault(key, List.of());
            long borrows = borrowsByItem.getOrDefault(key, 0L);
            boolean exclusive = handles.stream().anyMatch(h -> h.mode() == AccessMode.EXCLUSIVE);
            if (exclusive) {
                assertEquals(1, handles.size(), "an EXCLUSIVE holder is alone: " + handles);
                assertEquals(0, borrows, "no borrow beside an EXCLUSIVE holder");
                assertEquals(product.quantity(), product.inUse());
                continue;
            }
            long userLimit = handles.stream().filter(h -> h.mode() == AccessMode.USERLIMIT).count();
            Set<String> stationHosts = handles.stream().filter(h -> h.mode() == AccessMode.STATIONSHARE)
                    .map(h -> h.owner().host()).collect(Collectors.toSet());
            long seats = userLimit + stationHosts.size() + borrows;
            assertTrue(seats <= product.quantity(), key + ": " + seats + " seats in use of " + product.quantity());
            assertEquals(seats, product.inUse(), key + ": counted incrementally as counted from scratch");
        }
    }

    @Provide
    Arbitrary<List<Step>> steps() {
        Arbitrary<Step> step = Combinators.combine(
                Arbitraries.of(Kind.class), Arbitraries.of(SEATS_2, BORROWABLE_1_SEAT), Arbitraries.of(AccessMode.class),
                Arbitraries.integers().between(0, 3), Arbitraries.integers().between(0, 50),
                Arbitraries.integers().between(0, 20)).as(Step::new);
        return step.list().ofMinSize(1).ofMaxSize(60);
    }
}
