package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.backend.BackendWatcher;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The quorums actor turns the watchers' reports into the container's view: what counts, per license. */
@Timeout(30)
class QuorumsTest {

    private static final Serial SERIAL = new Serial(Serial.MASK_VIRTUAL_TMR, 12_345_678);
    private static final LicenseKey SEATS = new LicenseKey(6_000_010, 101, 1);
    private static final LicenseKey UNITS = new LicenseKey(6_000_010, 102, 2);
    private static ActorTestKit kit;

    @BeforeAll
    static void start() {
        kit = ActorTestKit.create("quorums");
    }

    @AfterAll
    static void stop() {
        kit.shutdownTestKit();
    }

    static ProductInfo product(LicenseKey key, long quantity, long units) {
        return new ProductInfo(key.firmCode(), key.productCode(), 0, "product " + key.productCode(), quantity, 0,
                key.tmrId(), units >= 0, Math.max(0, units), 0, 0, 0, 0, 0);
    }

    private static BackendWatcher.Inventory inventory(int backend, long cmActId, ProductInfo... products) {
        return new BackendWatcher.Inventory(backend, "backend-" + (backend + 1), List.of(new ContainerInfo(
                new Serial(130, 100 + backend), cmActId, Bytes.of(new byte[0]), List.of(products))));
    }

    private static BitSet bits(int... backends) {
        BitSet set = new BitSet();
        for (int backend : backends) {
            set.set(backend);
        }
        return set;
    }

    private static Quorums.View next(TestProbe<VirtualContainer.Command> container) {
        return ((VirtualContainer.Counted) container.receiveMessage()).view();
    }

    @Test
    void twoIdenticalCopiesMakeALicenseValidAndADifferingCopyDoesNotCount() {
        TestProbe<VirtualContainer.Command> container = kit.createTestProbe();
        ActorRef<Quorums.Command> quorums = kit.spawn(Quorums.create(SERIAL, 3, container.getRef().narrow(),
                reports -> Map.of()));
        ProductInfo plain = new ProductInfo(6_000_010, 999, 0, "not TMR", 5, 0, 0, false, 0, 0, 0, 0, 0, 0);

        quorums.tell(new Quorums.Reported(inventory(0, 7, product(SEATS, 10, -1), product(UNITS, 1, 1000), plain)));
        Quorums.View first = next(container);
        assertEquals(7, first.cmActId());
        assertEquals(bits(0), first.inventoried());
        assertEquals(List.of(SEATS, UNITS), List.copyOf(first.licenses().keySet()), "TMR licenses only, in order");
        assertTrue(first.licenses().get(SEATS).known());
        assertFalse(first.licenses().get(SEATS).valid());
        assertNull(first.licenses().get(SEATS).agreed());

        // Units left change with use: they are not compared, the majority is listed.
        quorums.tell(new Quorums.Reported(inventory(1, 7, product(SEATS, 10, -1), product(UNITS, 1, 995))));
        Quorums.View second = next(container);
        assertEquals(bits(0, 1), second.licenses().get(SEATS).counted());
        assertEquals(10, second.licenses().get(SEATS).agreed().quantity());
        assertTrue(second.licenses().get(UNITS).valid());
        assertEquals(-1, second.licenses().get(UNITS).units(), "no two copies hold the same units yet");

        quorums.tell(new Quorums.Reported(inventory(2, 7, product(SEATS, 20, -1), product(UNITS, 1, 995))));
        Quorums.View third = next(container);
        assertEquals(bits(0, 1), third.licenses().get(SEATS).counted(), "the copy with 20 seats differs");
        assertEquals(bits(0, 1, 2), third.licenses().get(UNITS).counted());
        assertEquals(995, third.licenses().get(UNITS).units());
        assertEquals(bits(0, 1, 2), third.inventoried());

        quorums.tell(new Quorums.Reported(new BackendWatcher.Down(1, "test")));
        Quorums.View down = next(container);
        assertEquals(bits(0, 2), down.inventoried());
        assertFalse(down.licenses().get(SEATS).valid(), "one counted copy is left");
        assertTrue(down.licenses().get(SEATS).known());
        assertTrue(down.licenses().get(UNITS).valid());
    }

    @Test
    void aBackendOfAnotherCmActIdIsNotInventoriedNorCounted() {
        TestProbe<VirtualContainer.Command> container = kit.createTestProbe();
        ActorRef<Quorums.Command> quorums = kit.spawn(Quorums.create(SERIAL, 3, container.getRef().narrow(),
                reports -> Map.of()));
        quorums.tell(new Quorums.Reported(inventory(0, 7, product(SEATS, 10, -1))));
        next(container);
        quorums.tell(new Quorums.Reported(inventory(1, 8, product(SEATS, 10, -1))));
        Quorums.View view = next(container);
        assertEquals(7, view.cmActId());
        assertEquals(bits(0), view.inventoried());
        assertEquals(bits(), view.licenses().get(SEATS).counted());
    }
}
