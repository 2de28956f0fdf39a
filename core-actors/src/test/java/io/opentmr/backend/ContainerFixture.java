package io.opentmr.backend;

import io.opentmr.backend.ContainerEvent.LicenseUpdated;
import io.opentmr.license.Ed25519;
import io.opentmr.license.LicenseUpdate;
import io.opentmr.license.ProductItemSpec;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.Serial;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/** A container with one product item per rule under test, and helpers that record every event applied. */
final class ContainerFixture {

    static final long FIRM = 6_000_010;
    static final Serial SERIAL = new Serial(129, 1000);
    static final long CM_ACT_ID = 7;
    static final Instant NOW = Instant.parse("2026-11-23T12:00:00Z");
    static final String SECRET = Base64.getEncoder().encodeToString(new byte[16]);

    static final long SEATS_2 = 1;
    static final long TMR_COPY = 2;
    static final long UNITS_10 = 3;
    static final long EXPIRED = 4;
    static final long NOT_YET_ACTIVE = 5;
    static final long EMERGENCY_1_DAY = 6;
    static final long BORROWABLE_1_SEAT = 7;
    static final long NO_SEATS = 8;

    final BackendSettings.Units units;
    final ContainerState state;
    final List<ContainerEvent> journal = new ArrayList<>();

    ContainerFixture() {
        this(BackendSettings.Units.DEFAULT);
    }

    ContainerFixture(BackendSettings.Units units) {
        this.units = units;
        this.state = new ContainerState(SERIAL, CM_ACT_ID, units);
        List<String> groupKeys = List.of(key(), key(), key());
        persist(new LicenseUpdated(new LicenseUpdate(SERIAL.toString(), CM_ACT_ID, FIRM, 1, NOW, List.of(
                item(SEATS_2, 2, 0, null, null, null, null, null),
                item(UNITS_10, 5, 0, 10L, null, null, null, null),
                item(EXPIRED, 5, 0, null, NOW.minusSeconds(1), null, null, null),
                item(NOT_YET_ACTIVE, 5, 0, null, null, NOW.plusSeconds(60), null, null),
                item(EMERGENCY_1_DAY, 5, 0, null, null, null, Duration.ofDays(1), null),
                item(BORROWABLE_1_SEAT, 1, 0, null, NOW.plus(Duration.ofDays(3)), null, null, Duration.ofDays(7)),
                item(NO_SEATS, 0, 0, null, null, null, null, null)), List.of()), NOW));
        persist(new LicenseUpdated(new LicenseUpdate(SERIAL.toString(), CM_ACT_ID, FIRM, 2, NOW, List.of(
                item(TMR_COPY, 3, 11, null, null, null, null, null)), groupKeys), NOW));
    }

    private static String key() {
        return Base64.getEncoder().encodeToString(Ed25519.raw(Ed25519.generate().getPublic()));
    }

    static ProductItemSpec item(long product, long quantity, long tmrId, Long units, Instant expires,
                                Instant activates, Duration usage, Duration borrowMax) {
        return new ProductItemSpec(product, 0b11, "product " + product, quantity, tmrId, units, expires, activates,
                usage, borrowMax, SECRET);
    }

    static HandleOwner owner(String host, long session) {
        return new HandleOwner(host, "user", 100, session);
    }

    static ContainerState.AccessRequest request(long product, AccessMode mode, String host, long session) {
        // The station is what STATIONSHARE counts; here each host name stands for one station.
        return new ContainerState.AccessRequest(FIRM, product, 0, mode, owner(host, session), "digest-" + host,
                false, host);
    }

    /** Persists (here: records and applies) what an accepted decision carries, and returns its reply. */
    <T> T persist(Decision<T> decision) {
        if (decision instanceof Decision.Accept<T> accept) {
            accept.events().forEach(this::persist);
            return accept.reply();
        }
        Decision.Refuse<T> refuse = (Decision.Refuse<T>) decision;
        throw new AssertionError("refused " + refuse.error().code() + ": " + refuse.text());
    }

    void persist(ContainerEvent event) {
        journal.add(event);
        state.apply(event);
    }

    Handle open(long product, AccessMode mode, String host, long session) {
        return persist(state.access(request(product, mode, host, session), NOW));
    }

    /** A fresh state rebuilt from the journal: recovery must give the same answers. */
    ContainerState replayed() {
        ContainerState fresh = new ContainerState(SERIAL, CM_ACT_ID, units);
        journal.forEach(fresh::apply);
        return fresh;
    }
}
