package io.opentmr.tmr;

import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.testing.Await;
import io.opentmr.testing.MutableClock;
import io.opentmr.testing.TmrTestGroup;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Emergency (usage period) and time-limited (expiry, activation time) TMR licenses through the node, on a
 * clock the test moves: what the client hears is what two copies agree on.
 */
@Timeout(120)
@ExtendWith(NoLeaks.class)
class NodeTimeLimitTest {

    private static final long EMERGENCY = 52;
    private static final long LIMITED = 53;
    private static final Duration PERIOD = Duration.ofHours(1);

    @TempDir
    Path dir;

    private final MutableClock clock = new MutableClock(Instant.now().truncatedTo(ChronoUnit.SECONDS));
    private TmrTestGroup group;

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    private void startGroup() throws Exception {
        group = new TmrTestGroup(dir, clock, Map.of());
    }

    private static LicenseIssuer.Request emergency() {
        return new LicenseIssuer.Request(FIRM, EMERGENCY, 5, true, null, null, null, PERIOD, null, 0xFF,
                "emergency");
    }

    @Test
    void theUsagePeriodStartsAtTheFirstAccessAndEndsWith71ThroughTheNode() throws Exception {
        startGroup();
        group.issueTmr(emergency());
        group.startNode(Map.of());
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            awaitListed(client, EMERGENCY);
            Instant first = clock.instant();
            client.access(FIRM, EMERGENCY).close();
            // The node answers once two copies have the seat; the third may still be on its way.
            for (int b = 0; b < 3; b++) {
                int backend = b;
                Await.equal("backend " + (b + 1) + "'s usage period start", first.toEpochMilli(),
                        () -> Await.unchecked(() -> usageStart(backend)));
            }
            // The clock set back before the start (by less than the lease's clock skew, so the node's lease
            // grants still hold): the copies say the server clock went back.
            clock.advance(Duration.ofMillis(-500));
            assertCode(CmError.USAGE_PERIOD_START_INVALID, () -> client.access(FIRM, EMERGENCY));
            clock.advance(Duration.ofMillis(500));
            clock.advance(PERIOD.minusSeconds(1));
            accessThroughLeaseRenewal(client, EMERGENCY);
            clock.advance(Duration.ofSeconds(1));
            assertCode(CmError.USAGE_PERIOD_ELAPSED, () -> accessThroughLeaseRenewal(client, EMERGENCY));
        }
    }

    @Test
    void aCopyThatMissedTheFirstAccessTakesTheAgreedStartSoTheThreeAgree() throws Exception {
        startGroup();
        group.issueTmr(emergency());
        group.startNode(Map.of());
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            awaitListed(client, EMERGENCY);
            group.kill(2);
            Instant first = clock.instant();
            LicenseHandle held = client.access(FIRM, EMERGENCY);
            clock.advance(Duration.ofMinutes(10));
            group.restart(2);
            // The returning copy is re-synced with the held seat, which starts its own period ten minutes late
            // unless the node tells it the start the two others agreed on.
            Await.equal("backend 3's usage period start", first.toEpochMilli(), () -> Await.unchecked(() -> usageStart(2)));
            held.close();
            group.kill(0);
            clock.advance(PERIOD.minusMinutes(5));
            // Backends 2 and 3 are left; both count the period from the same start.
            assertCode(CmError.USAGE_PERIOD_ELAPSED, () -> accessThroughLeaseRenewal(client, EMERGENCY));
        }
    }

    @Test
    void anActivationTimeAndAnExpiryHoldThroughTheNode() throws Exception {
        startGroup();
        Instant activates = clock.instant().plus(Duration.ofHours(1));
        Instant expires = clock.instant().plus(Duration.ofHours(2));
        group.issueTmr(new LicenseIssuer.Request(FIRM, LIMITED, 5, true, null, expires, activates, null, null,
                0xFF, "limited"));
        group.startNode(Map.of());
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            awaitListed(client, LIMITED);
            assertCode(CmError.NOT_YET_ACTIVATED, () -> client.access(FIRM, LIMITED));
            clock.advance(Duration.ofHours(1));
            accessThroughLeaseRenewal(client, LIMITED);
            clock.advance(Duration.ofHours(1).minusMillis(1));
            accessThroughLeaseRenewal(client, LIMITED);
            clock.advance(Duration.ofMillis(1));
            assertCode(CmError.EXPIRED, () -> client.access(FIRM, LIMITED));
        }
    }

    @Test
    void copiesWhoseClocksDifferWithinTheSkewDecideExpiryAndActivationByTwo() throws Exception {
        // Backend 1 runs 400 ms behind the node, backend 2 on time, backend 3 400 ms ahead: within the 1 s skew.
        long[] offsets = {-400, 0, 400};
        group = new TmrTestGroup(dir, clock, Map.of(), i -> Map.of(),
                i -> java.time.Clock.offset(clock, Duration.ofMillis(offsets[i])));
        Instant activates = clock.instant().plus(Duration.ofMinutes(10));
        Instant expires = clock.instant().plus(Duration.ofMinutes(20));
        group.issueTmr(new LicenseIssuer.Request(FIRM, LIMITED, 5, true, null, expires, activates, null, null,
                0xFF, "limited"));
        group.startNode(Map.of());
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            awaitListed(client, LIMITED);
            clock.advance(Duration.between(clock.instant(), activates).minusMillis(200));
            // The step outlives the node's lease grants: the accesses below need all three copies again.
            group.awaitAllCopiesUsable(LIMITED);
            // Only backend 3 is past the activation time, and the node's clock is not.
            assertCode(CmError.NOT_YET_ACTIVATED, () -> client.access(FIRM, LIMITED));
            clock.advance(Duration.ofMillis(300));
            // Backends 2 and 3 are past it: two copies grant, backend 1's refusal does not matter.
            client.access(FIRM, LIMITED).close();
            clock.advance(Duration.between(clock.instant(), expires).minusMillis(200));
            // Backend 1 missed the grant above (not yet activated there) and is re-synced; with two copies, one of
            // them expired, the node would rightly answer 130.
            group.awaitAllCopiesUsable(LIMITED);
            // Only backend 3 has expired.
            client.access(FIRM, LIMITED).close();
            clock.advance(Duration.ofMillis(300));
            // The node's clock and backends 2 and 3 are past the expiry: the client hears 35, not a quorum fault.
            assertCode(CmError.EXPIRED, () -> client.access(FIRM, LIMITED));
        }
        for (int b = 0; b < 3; b++) {
            int backend = b;
            Await.until("backend " + (b + 1) + " holds no seat", () -> Await.unchecked(() -> group.allocations(backend))
                    .isEmpty());
        }
    }

    /**
     * ACCESS after the clock jumped: the node's lease grants may have run out on the moved clock, so a
     * quorum fault (130) while the node renews them is waited out; any other answer is returned or thrown.
     */
    private static void accessThroughLeaseRenewal(TmrClient client, long product) throws Exception {
        Await.until("an answer other than a quorum fault for " + product, () -> {
            try {
                client.access(FIRM, product).close();
                return true;
            } catch (CmException e) {
                if (e.code() == TmrTestGroup.QUORUM_LOST) {
                    return false;
                }
                throw e;
            }
        });
    }

    /**
     * Until the node lists {@code product} and uses all three of its copies (counted and re-synced): it lists a
     * license once two are, and a test that then stops a backend, or reads every backend's copy, must not race the
     * third.
     */
    private void awaitListed(TmrClient client, long product) throws InterruptedException {
        Await.until("product " + product + " listed", () -> client.listContainers().stream()
                .flatMap(c -> c.products().stream()).anyMatch(p -> p.productCode() == product));
        group.awaitAllCopiesUsable(product);
    }

    private long usageStart(int backend) throws Exception {
        try (TmrTestGroup.Peer peer = group.peer("test-inspector", backend)) {
            Message.InventoryOk inventory = (Message.InventoryOk) peer.request(new Message.Inventory());
            return inventory.containers().stream().flatMap(c -> c.products().stream())
                    .filter(p -> p.productCode() == EMERGENCY).mapToLong(ProductInfo::usageStartedAtMillis)
                    .findFirst().orElseThrow();
        }
    }

    private static void assertCode(CmError expected, org.junit.jupiter.api.function.Executable call) {
        CmException refused = assertThrows(CmException.class, call);
        assertEquals(expected.code(), refused.code(), refused.getMessage());
        assertTrue(refused.code() != TmrTestGroup.QUORUM_LOST);
    }
}
