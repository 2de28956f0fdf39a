package io.opentmr.tmr;

import static io.opentmr.testing.Await.unchecked;
import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** A TMR node over three in-JVM backends, driven through the SDK, with backends cut, frozen and back. */
@Timeout(120)
@ExtendWith(NoLeaks.class)
class TmrNodeTest {

    private static final long SEATS = 42;
    private static final long UNITS = 43;

    @TempDir
    Path dir;

    private TmrTestGroup group;
    private TmrClient client;

    @BeforeEach
    void start() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(SEATS, 2));
        group.issueTmr(TmrTestGroup.units(UNITS, 100));
        group.startNode(Map.of());
        client = TmrClient.connect(group.nodeAddress());
        Await.until("both TMR licenses listed", () -> listed().size() == 2);
        // Listed means two backends serve; the tests of a backend's loss start with all three serving.
        for (long product : new long[] {SEATS, UNITS}) {
            try (LicenseHandle probe = client.access(FIRM, product)) {
                for (int backend = 0; backend < 3; backend++) {
                    int b = backend;
                    Await.until("backend " + (b + 1) + " serves " + product,
                            () -> unchecked(() -> held(b, product)).contains(probe.handleId()));
                }
            }
        }
    }

    @AfterEach
    void stop() {
        if (client != null) {
            client.close();
        }
        if (group != null) {
            group.close();
        }
    }

    private List<ProductInfo> listed() {
        List<ContainerInfo> containers = client.listContainers();
        assertEquals(1, containers.size(), "the node shows one container: " + containers);
        assertEquals(Serial.MASK_VIRTUAL_TMR, containers.get(0).serial().mask(), containers.toString());
        return containers.get(0).products();
    }

    private Set<Long> held(int backend, long product) throws Exception {
        return group.allocations(backend).stream().filter(a -> a.key().productCode() == product)
                .map(Allocation::tmrHandleId).collect(Collectors.toCollection(TreeSet::new));
    }

    @Test
    void listShowsTheVirtualContainerWithTheTmrLicensesOnly() {
        List<ProductInfo> products = listed();
        assertTrue(products.stream().allMatch(p -> p.tmrId() != 0), products.toString());
        ProductInfo seats = products.stream().filter(p -> p.productCode() == SEATS).findFirst().orElseThrow();
        assertEquals(2, seats.quantity());
        assertEquals(FIRM, seats.firmCode());
    }

    @Test
    void seatsAreHeldOnEveryBackendAndNeverMoreThanTheQuantity() throws Exception {
        LicenseHandle first = client.access(FIRM, SEATS);
        LicenseHandle second = client.access(FIRM, SEATS);
        CmException full = assertThrows(CmException.class, () -> client.access(FIRM, SEATS));
        assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.getMessage());
        assertEquals(serial().mask(), first.container().mask());
        Set<Long> expected = new TreeSet<>(List.of(first.handleId(), second.handleId()));
        for (int backend = 0; backend < 3; backend++) {
            int b = backend;
            Await.equal("backend " + (b + 1) + " holds both seats", expected, () -> unchecked(() -> held(b, SEATS)));
        }
        first.close();
        LicenseHandle third = client.access(FIRM, SEATS);
        expected.remove(first.handleId());
        expected.add(third.handleId());
        for (int backend = 0; backend < 3; backend++) {
            int b = backend;
            Await.equal("backend " + (b + 1) + " freed the released seat", expected,
                    () -> unchecked(() -> held(b, SEATS)));
        }
        second.close();
        third.close();
    }

    private Serial serial() {
        return client.listContainers().get(0).serial();
    }

    @Test
    void oneBackendDownChangesNothingForClients() throws Exception {
        LicenseHandle held = client.access(FIRM, SEATS);
        group.link(0).cut();
        // Every operation keeps working, before and after the node noticed.
        for (int round = 0; round < 20; round++) {
            LicenseHandle handle = client.access(FIRM, SEATS);
            handle.close();
        }
        LicenseHandle units = client.access(FIRM, UNITS);
        assertEquals(99, units.decrementUnits(1));
        assertEquals(97, units.decrementUnits(2));
        byte[] plain = "sixteen bytes!!!".getBytes(StandardCharsets.US_ASCII);
        byte[] encrypted = units.crypt(CryptDirection.ENCRYPT, 7, plain);
        assertArrayEquals(plain, units.crypt(CryptDirection.DECRYPT, 7, encrypted));
        assertEquals(SEATS, held.info().product().productCode());
        units.close();
        held.close();
        assertEquals(2, listed().size(), "both licenses stay listed with one backend down");
    }

    @Test
    void twoBackendsDownStopTheNodeAndItsHandlesComeBackResynced() throws Exception {
        LicenseHandle held = client.access(FIRM, SEATS);
        group.link(0).cut();
        group.link(1).cut();
        // Without two grants there is no lease certificate: the node serves nothing, not even from its own state.
        Await.until("the node stops serving", () -> !group.node().serving());
        try (RawConnection raw = new RawConnection(group.nodeAddress())) {
            Message answer = raw.request(new Message.Hello("test", "host", "user", 1));
            assertEquals(new Message.NotActive(""), answer, "HELLO to a node without the lease");
        }
        assertTrue(held.isOpen(), "the client keeps its handle while the node does not serve");
        group.link(0).restore();
        group.link(1).restore();
        Await.until("the node serves again", () -> group.node().serving());
        Await.until("licenses back", () -> listed().size() == 2);
        // The SDK resumed the handle on the node that serves again: it holds its seat, on every backend.
        assertEquals(SEATS, held.info().product().productCode());
        Set<Long> expected = new TreeSet<>(Set.of(held.handleId()));
        for (int backend = 0; backend < 3; backend++) {
            int b = backend;
            Await.equal("backend " + (b + 1) + " re-synced to the node's handles", expected,
                    () -> unchecked(() -> held(b, SEATS)));
        }
        held.close();
        for (int backend = 0; backend < 3; backend++) {
            int b = backend;
            Await.equal("backend " + (b + 1) + " freed the released seat", Set.of(),
                    () -> unchecked(() -> held(b, SEATS)));
        }
    }

    @Test
    void aFrozenBackendNeverHoldsAClientLongerThanTheBackendTimeout() throws Exception {
        group.link(2).freeze();
        List<Long> micros = new ArrayList<>();
        for (int round = 0; round < 30; round++) {
            long start = System.nanoTime();
            LicenseHandle handle = client.access(FIRM, SEATS);
            handle.close();
            micros.add((System.nanoTime() - start) / 1000);
        }
        long worst = micros.stream().mapToLong(Long::longValue).max().orElseThrow();
        // Bounded by the configured backend timeout (500 ms) and far inside the client's request timeout:
        // without the bound, the first access would wait for the frozen backend for ever.
        assertTrue(worst < 3_000_000, "slowest access+release " + worst + " µs: " + micros);
    }

    @Test
    void delayedAndReorderedAnswersChangeNothingForClients() throws Exception {
        // Answers of backends 1 and 2 overtake each other and those of 3, inside the backend timeout.
        group.link(0).delay(Duration.ZERO, Duration.ofMillis(40));
        group.link(1).delay(Duration.ofMillis(10), Duration.ofMillis(60));
        List<LicenseHandle> held = new ArrayList<>();
        for (int round = 0; round < 10; round++) {
            held.add(client.access(FIRM, SEATS));
            if (held.size() == 2) {
                held.remove(0).close();
            }
        }
        long delivered = group.link(0).answersDelivered();
        assertTrue(delivered > 0, "the delayed link carried the answers");
        Set<Long> expected = new TreeSet<>(Set.of(held.get(0).handleId()));
        for (int backend = 0; backend < 3; backend++) {
            int b = backend;
            Await.equal("backend " + (b + 1) + " holds the one open handle", expected,
                    () -> unchecked(() -> held(b, SEATS)));
        }
        held.get(0).close();
    }

    @Test
    void aTamperedCopyIsNotCountedAndTheOtherTwoServe() throws Exception {
        io.opentmr.license.VendorState before = group.vendorState();
        var genuine = group.issueOnly(TmrTestGroup.seats(77, 5));
        group.resetVendorState(before);
        var tampered = group.issueOnly(TmrTestGroup.seats(77, 6));
        group.importFile(0, tampered.files().get(0));
        group.importFile(1, genuine.files().get(1));
        group.importFile(2, genuine.files().get(2));
        Await.until("license 77 listed", () -> listed().stream().anyMatch(p -> p.productCode() == 77));
        ProductInfo listedCopy = listed().stream().filter(p -> p.productCode() == 77).findFirst().orElseThrow();
        assertEquals(5, listedCopy.quantity(), "the two identical copies decide");
        LicenseHandle handle = client.access(FIRM, 77);
        handle.close();
        assertFalse(held(0, 77).contains(handle.handleId()), "the tampered copy holds no seat");
    }
}
