package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
        assertEquals(0, first.cmActId(), "one backend alone does not make its CmActId the group's");
        assertEquals(bits(), first.inventoried());
        assertTrue(first.licenses().isEmpty());

        // Units left change with use: they are not compared, the majority is listed.
        quorums.tell(new Quorums.Reported(inventory(1, 7, product(SEATS, 10, -1), product(UNITS, 1, 995))));
        Quorums.View second = next(container);
        assertEquals(7, second.cmActId());
        assertEquals(bits(0, 1), second.inventoried());
        assertEquals(List.of(SEATS, UNITS), List.copyOf(second.licenses().keySet()), "TMR licenses only, in order");
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
        assertEquals(0, next(container).cmActId(), "no two backends share a CmActId yet");
        quorums.tell(new Quorums.Reported(inventory(2, 7, product(SEATS, 10, -1))));
        Quorums.View view = next(container);
        assertEquals(7, view.cmActId());
        assertEquals(bits(0, 2), view.inventoried());
        assertEquals(bits(0, 2), view.licenses().get(SEATS).counted());
        // A later inventory of the stray backend changes nothing: the group stays.
        quorums.tell(new Quorums.Reported(inventory(1, 8, product(SEATS, 10, -1), product(UNITS, 1, 5))));
        Quorums.View after = next(container);
        assertEquals(7, after.cmActId());
        assertEquals(bits(0, 2), after.inventoried());
        assertFalse(after.licenses().containsKey(UNITS), "the stray backend's copies are not even seen");
    }

    @Test
    void aStrayCmActIdOnTheBackendThatAnswersFirstDoesNotBecomeTheGroup() {
        TestProbe<VirtualContainer.Command> container = kit.createTestProbe();
        ActorRef<Quorums.Command> quorums = kit.spawn(Quorums.create(SERIAL, 3, container.getRef().narrow(),
                reports -> Map.of()));
        quorums.tell(new Quorums.Reported(inventory(0, 9, product(UNITS, 1, 5))));
        assertEquals(0, next(container).cmActId());
        quorums.tell(new Quorums.Reported(inventory(1, 7, product(SEATS, 10, -1))));
        assertEquals(0, next(container).cmActId());
        quorums.tell(new Quorums.Reported(inventory(2, 7, product(SEATS, 10, -1))));
        Quorums.View view = next(container);
        assertEquals(7, view.cmActId());
        assertEquals(bits(1, 2), view.inventoried());
        assertTrue(view.licenses().get(SEATS).valid());
        assertEquals(List.of(SEATS), List.copyOf(view.licenses().keySet()));
    }

    /**
     * An inventory of every container (INVENTORY scope 1) lists the connection's container first: only that one counts
     * for the group (the group's writes go to it), and the CmActIds of all are told to the node's groups.
     */
    @Test
    void aBackendWithSeveralContainersIsCountedByTheOneItsConnectionReaches() {
        TestProbe<VirtualContainer.Command> container = kit.createTestProbe();
        java.util.concurrent.LinkedBlockingQueue<Quorums.Discovered> discovered =
                new java.util.concurrent.LinkedBlockingQueue<>();
        ActorRef<Quorums.Command> quorums = kit.spawn(Quorums.create(SERIAL, 3, container.getRef().narrow(),
                reports -> Map.of(), key -> { }, 0, discovered::add, new java.util.concurrent.ConcurrentHashMap<>()));
        for (int backend = 0; backend < 3; backend++) {
            ContainerInfo group = new ContainerInfo(new Serial(130, 100 + backend), 7, Bytes.of(new byte[0]),
                    List.of(product(SEATS, 10, -1)));
            ContainerInfo other = new ContainerInfo(new Serial(130, 900 + backend), 9, Bytes.of(new byte[0]),
                    List.of(product(UNITS, 1, 5)));
            // Backend 3's connection reaches its container of CmActId 9.
            quorums.tell(new Quorums.Reported(new BackendWatcher.Inventory(backend, "backend-" + (backend + 1),
                    backend < 2 ? List.of(group, other) : List.of(other, group))));
        }
        next(container);
        next(container);
        Quorums.View view = next(container);
        assertEquals(7, view.cmActId(), "shared by the containers the connections reach");
        assertEquals(bits(0, 1), view.licenses().get(SEATS).counted(), "backend 3's container 7 is not reached");
        assertFalse(view.licenses().containsKey(UNITS));
        Quorums.Discovered last = null;
        for (int i = 0; i < 3; i++) {
            try {
                last = discovered.poll(5, java.util.concurrent.TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
        }
        assertEquals(new Quorums.Discovered(7, List.of(List.of(7L, 9L), List.of(7L, 9L), List.of(9L, 7L))), last);
    }

    /** A license key another group (CmActId) of the node took first does not count in this one. */
    @Test
    void aKeyAnotherGroupTookFirstIsNotThisGroups() {
        TestProbe<VirtualContainer.Command> container = kit.createTestProbe();
        java.util.concurrent.ConcurrentMap<LicenseKey, Long> owners = new java.util.concurrent.ConcurrentHashMap<>(
                Map.of(SEATS, 8L));
        ActorRef<Quorums.Command> quorums = kit.spawn(Quorums.create(SERIAL, 3, container.getRef().narrow(),
                reports -> Map.of(), key -> { }, 7, null, owners));
        for (int backend = 0; backend < 2; backend++) {
            quorums.tell(new Quorums.Reported(inventory(backend, 7, product(SEATS, 10, -1), product(UNITS, 1, 5))));
            next(container);
        }
        quorums.tell(new Quorums.Reported(inventory(2, 7, product(SEATS, 10, -1), product(UNITS, 1, 5))));
        Quorums.View view = next(container);
        assertEquals(List.of(UNITS), List.copyOf(view.licenses().keySet()));
        assertEquals(Map.of(SEATS, 8L, UNITS, 7L), Map.copyOf(owners));
    }
}
