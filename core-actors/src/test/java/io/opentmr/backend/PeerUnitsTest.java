package io.opentmr.backend;

import static io.opentmr.backend.ContainerFixture.CM_ACT_ID;
import static io.opentmr.backend.ContainerFixture.FIRM;
import static io.opentmr.backend.ContainerFixture.NOW;
import static io.opentmr.backend.ContainerFixture.SERIAL;
import static io.opentmr.backend.ContainerFixture.item;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.backend.ContainerEvent.LicenseUpdated;
import io.opentmr.backend.ContainerEvent.PeerUnitsChanged;
import io.opentmr.license.Ed25519;
import io.opentmr.license.LicenseUpdate;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.UnitsOperation;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** PEER_UNITS on TMR copies as plain state: the retry memory by operation id, its window, bound and SET. */
class PeerUnitsTest {

    private static final LicenseKey A = new LicenseKey(FIRM, 30, 21);
    private static final LicenseKey B = new LicenseKey(FIRM, 31, 22);
    private static final Duration WINDOW = Duration.ofSeconds(10);

    private static ContainerFixture fixture(int maxRemembered) {
        ContainerFixture fixture = new ContainerFixture(new BackendSettings.Units(WINDOW, maxRemembered));
        List<String> keys = List.of(key(), key(), key());
        fixture.persist(new LicenseUpdated(new LicenseUpdate(SERIAL.toString(), CM_ACT_ID, FIRM, 3, NOW, List.of(
                item(30, 5, 21, 1_000L, null, null, null, null),
                item(31, 5, 22, 1_000L, null, null, null, null)), keys), NOW));
        return fixture;
    }

    private static String key() {
        return Base64.getEncoder().encodeToString(Ed25519.raw(Ed25519.generate().getPublic()));
    }

    private static long units(ContainerFixture f, LicenseKey key, long operation, UnitsOperation op, long value,
                              Instant at) {
        return f.persist(f.state.peerUnits(key, operation, op, value, at));
    }

    @Test
    void aSetForgetsTheItemsOperationsSoADecrementRetriedAfterItIsCharged() {
        ContainerFixture f = fixture(1_000);
        assertEquals(997, units(f, A, 1, UnitsOperation.DECREMENT, 3, NOW));
        assertEquals(990, units(f, B, 1, UnitsOperation.DECREMENT, 10, NOW));
        assertEquals(997, units(f, A, 1, UnitsOperation.DECREMENT, 3, NOW), "a retry gets the first answer");

        // The node re-syncs A to the majority, which never saw decrement 1 (it was rolled back).
        assertEquals(1_000, units(f, A, 2, UnitsOperation.SET, 1_000, NOW.plusMillis(1)));
        assertEquals(997, units(f, A, 1, UnitsOperation.DECREMENT, 3, NOW.plusMillis(2)),
                "retried after the SET: charged, not answered from memory");
        assertEquals(1_000, units(f, A, 2, UnitsOperation.SET, 1_000, NOW.plusMillis(3)),
                "the SET's own id is remembered: a repeat changes nothing");
        assertEquals(997, f.state.product(A).units());
        assertEquals(990, units(f, B, 1, UnitsOperation.DECREMENT, 10, NOW.plusMillis(4)),
                "another copy's ids are not forgotten");
        assertEquals(Map.of(A, List.of(2L, 1L), B, List.of(1L)), f.replayed().peerUnitMemory().operationIds(),
                "the journal rebuilds the same memory");
    }

    @Test
    void anOperationIsRememberedForTheWholeWindowWhateverOthersDoMeanwhile() {
        ContainerFixture f = fixture(100_000);
        assertEquals(999, units(f, A, 7, UnitsOperation.DECREMENT, 1, NOW));
        // Many handles and re-syncs at once: far more than the 64 ids per copy once remembered.
        for (long op = 100; op < 1_100; op++) {
            units(f, op % 2 == 0 ? A : B, op, UnitsOperation.DECREMENT, 0, NOW.plusMillis(op));
        }
        assertEquals(999, units(f, A, 7, UnitsOperation.DECREMENT, 1, NOW.plus(WINDOW)), "still within the window");
        ContainerState recovered = ContainerState.fromSnapshot(f.state.toSnapshot(), f.units);
        assertEquals(999, (long) ((Decision.Accept<Long>) recovered.peerUnits(A, 7, UnitsOperation.DECREMENT, 1,
                NOW.plus(WINDOW))).reply(), "and after a restart from a snapshot");
        assertEquals(998, units(f, A, 7, UnitsOperation.DECREMENT, 1, NOW.plus(WINDOW).plusMillis(1)),
                "after the window it is a new operation");
    }

    @Test
    void aFullMemoryRefusesNewOperationsWith309UntilOldOnesLeaveTheWindow() {
        ContainerFixture f = fixture(3);
        units(f, A, 1, UnitsOperation.DECREMENT, 1, NOW);
        units(f, A, 2, UnitsOperation.DECREMENT, 1, NOW.plusSeconds(1));
        units(f, B, 3, UnitsOperation.DECREMENT, 1, NOW.plusSeconds(2));
        Decision<Long> refused = f.state.peerUnits(B, 4, UnitsOperation.DECREMENT, 1, NOW.plusSeconds(3));
        assertEquals(CmError.REQUEST_OVERLOAD, assertInstanceOf(Decision.Refuse.class, refused).error());
        assertTrue(((Decision.Refuse<Long>) refused).text().contains("opentmr.backend.units.max-remembered"));
        assertEquals(998, units(f, A, 2, UnitsOperation.DECREMENT, 1, NOW.plusSeconds(3)),
                "a retry is still answered from memory");
        assertEquals(998, (long) ((Decision.Accept<Long>) f.state.peerUnits(A, 9, UnitsOperation.READ, 0,
                NOW.plusSeconds(3))).reply(), "a READ needs no memory");
        assertEquals(1_000, units(f, A, 5, UnitsOperation.SET, 1_000, NOW.plusSeconds(3)),
                "a SET makes room by forgetting its item's operations");
        assertEquals(998, units(f, B, 4, UnitsOperation.DECREMENT, 1, NOW.plusSeconds(3)));
        assertEquals(CmError.REQUEST_OVERLOAD, assertInstanceOf(Decision.Refuse.class,
                f.state.peerUnits(B, 6, UnitsOperation.DECREMENT, 1, NOW.plusSeconds(3))).error());
        assertEquals(997, units(f, B, 6, UnitsOperation.DECREMENT, 1, NOW.plusSeconds(13)),
                "once the oldest left the window, there is room again");
    }

    @Test
    void theRetryMemoryIsConfiguredAndNeverShorterThanTheSdksRetryWindow() {
        java.util.function.Function<Map<String, Object>, BackendSettings> settings = keys -> {
            Map<String, Object> all = new java.util.HashMap<>(Map.of("opentmr.backend.data-dir", "/tmp/x",
                    "opentmr.backend.cm-act-id", 7));
            all.putAll(keys);
            return BackendSettings.from(com.typesafe.config.ConfigFactory.parseMap(all)
                    .withFallback(com.typesafe.config.ConfigFactory.load()));
        };
        assertEquals(BackendSettings.Units.DEFAULT, settings.apply(Map.of()).units());
        assertEquals(new BackendSettings.Units(Duration.ofSeconds(10), 5), settings.apply(Map.of(
                "opentmr.backend.units.retry-memory", "10s", "opentmr.backend.units.max-remembered", 5)).units());
        var refused = org.junit.jupiter.api.Assertions.assertThrows(com.typesafe.config.ConfigException.class,
                () -> settings.apply(Map.of("opentmr.backend.units.retry-memory", "9s")));
        assertTrue(refused.getMessage().contains("opentmr.backend.units.retry-memory"), refused.getMessage());
    }

    @Test
    void eventsAndSnapshotsOfTheOlderFormatStillLoad() {
        ContainerFixture f = fixture(1_000);
        f.persist(new PeerUnitsChanged(A, 1, null, 990, NOW));
        f.persist(new PeerUnitsChanged(A, 2, null, 980, NOW));
        assertEquals(Map.of(A, List.of(1L, 2L)), f.state.peerUnitMemory().operationIds(),
                "an event without its operation counts as a DECREMENT: nothing forgotten");

        ContainerSnapshot current = f.state.toSnapshot();
        assertEquals(List.of(new ContainerSnapshot.PeerOperation(A, 1, 990, NOW),
                new ContainerSnapshot.PeerOperation(A, 2, 980, NOW)), current.peerOperations());
        ContainerSnapshot older = new ContainerSnapshot(current.serial(), current.cmActId(),
                current.firmUpdateCounters(), current.items(), current.handles(), current.borrows(),
                current.recentDecrements(), current.nextHandleId(), current.nextTicketId(), current.leaseEpochs(),
                current.allocations(), List.of(new ContainerSnapshot.PeerOperation(A, 1, 990, null)),
                current.leaseHolders());
        ContainerState restored = ContainerState.fromSnapshot(older, f.units);
        assertEquals(980, restored.product(A).units());
        assertEquals(990, (long) ((Decision.Accept<Long>) restored.peerUnits(A, 1, UnitsOperation.DECREMENT, 5,
                Instant.EPOCH)).reply(), "kept, at an unknown time");
        assertEquals(975, (long) ((Decision.Accept<Long>) restored.peerUnits(A, 1, UnitsOperation.DECREMENT, 5,
                NOW)).reply(), "an entry without its time is not trusted to be in the window");
    }
}
