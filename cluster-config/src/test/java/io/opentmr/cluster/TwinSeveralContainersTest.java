package io.opentmr.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.opentmr.client.AdminClient;
import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.persistence.replication.ReplicationLeader;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Serial;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.TmrNode;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A twin over backends of two containers each (CmActIds 7 and 8), a license in each: both nodes agree on the second
 * virtual container's serial without a word (derived from the cluster secret and the CmActId), and the standby takes
 * over both virtual containers with every handle.
 */
class TwinSeveralContainersTest {

    private static final long OTHER_CM_ACT_ID = 8;
    private static final long FIRST_PRODUCT = 77;
    private static final long OTHER_PRODUCT = 88;

    @TempDir
    static Path keys;
    @TempDir
    Path dir;

    private TmrTestGroup group;
    private final List<TwinNode> nodes = new ArrayList<>();

    @BeforeAll
    static void keys() throws Exception {
        TwinFixture.keys(keys);
    }

    @AfterEach
    void close() {
        nodes.forEach(TwinNode::close);
        if (group != null) {
            group.close();
        }
    }

    private static void await(String what, Duration bound, BooleanSupplier condition) throws InterruptedException {
        TwinFixture.await(what, bound, condition);
    }

    /** Whether the node serves both virtual containers (the second: its own lease, its licenses reconciled). */
    private static boolean servesBoth(TwinNode node) {
        TmrNode running = node.node();
        return node.serving() && running != null && running.otherContainers().size() == 1
                && running.otherContainers().get(0).status().serving();
    }

    @Test
    void theStandbyTakesOverBothVirtualContainersWithEveryHandle() throws Exception {
        group = new TmrTestGroup(dir, Clock.systemUTC(), Map.of("opentmr.backend.additional-containers",
                List.of(OTHER_CM_ACT_ID)));
        group.issueTmr(TmrTestGroup.seats(FIRST_PRODUCT, 2));
        group.issueTmr(OTHER_CM_ACT_ID, TmrTestGroup.seats(OTHER_PRODUCT, 2));
        TwinFixture twin = new TwinFixture(keys, group, dir);
        TwinNode a = twin.start("node-a", twin.host("node-a"), "node-a", Map.of());
        nodes.add(a);
        await("node-a serves both virtual containers", Duration.ofSeconds(30), () -> servesBoth(a));
        TwinNode b = twin.start("node-b", twin.host("node-b"), "node-b", Map.of());
        nodes.add(b);
        await("node-b follows node-a's journal in sync", Duration.ofSeconds(30),
                () -> a.replication().status() == ReplicationLeader.Status.IN_SYNC);
        Serial first = a.node().virtualSerial();
        Serial other = a.node().otherContainers().get(0).serial();
        assertNotEquals(first, other);

        try (TmrClient client = TmrClient.connect(TmrClientOptions.builder()
                .addresses(new InetSocketAddress(twin.host("node-a"), TwinFixture.PORT),
                        new InetSocketAddress(twin.host("node-b"), TwinFixture.PORT))
                .requestTimeout(Duration.ofSeconds(20))
                .build())) {
            LicenseHandle firstHeld = client.access(TmrTestGroup.FIRM, FIRST_PRODUCT);
            LicenseHandle otherHeld = client.access(TmrTestGroup.FIRM, OTHER_PRODUCT);
            assertEquals(first, firstHeld.container());
            assertEquals(other, otherHeld.container());

            // node-a goes away as a crash looks to the backends: its connections close.
            nodes.remove(a);
            a.close();
            await("node-b serves both virtual containers", Duration.ofSeconds(30), () -> servesBoth(b));
            assertEquals(first, b.node().virtualSerial());
            assertEquals(other, b.node().otherContainers().get(0).serial(), "the twin's serial for CmActId 8");

            // Both handles are held on node-b, each in its virtual container, each still taking one of two seats.
            assertEquals(FIRST_PRODUCT, firstHeld.info().product().productCode());
            assertEquals(OTHER_PRODUCT, otherHeld.info().product().productCode());
            assertEquals(other, otherHeld.info().container());
            try (LicenseHandle second = client.access(TmrTestGroup.FIRM, OTHER_PRODUCT)) {
                assertEquals(other, second.container());
                CmException full = assertThrows(CmException.class,
                        () -> client.access(TmrTestGroup.FIRM, OTHER_PRODUCT));
                assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.getMessage());
            }
            firstHeld.close();
            otherHeld.close();
        }
    }

    /**
     * A step-down answers only once the node gave back every lease it held, the further virtual container's too, and
     * that container serves no more: until then the twin cannot have that container's lease, and the old active's
     * container (still running) would count as serving beside the twin's.
     */
    @Test
    void aStepDownGivesBackTheFurtherVirtualContainersLeaseBeforeItAnswers() throws Exception {
        group = new TmrTestGroup(dir, Clock.systemUTC(), Map.of("opentmr.backend.additional-containers",
                List.of(OTHER_CM_ACT_ID)));
        group.issueTmr(TmrTestGroup.seats(FIRST_PRODUCT, 2));
        group.issueTmr(OTHER_CM_ACT_ID, TmrTestGroup.seats(OTHER_PRODUCT, 2));
        TwinFixture twin = new TwinFixture(keys, group, dir);
        TwinNode a = twin.start("node-a", twin.host("node-a"), "node-a", Map.of());
        nodes.add(a);
        await("node-a serves both virtual containers", Duration.ofSeconds(30), () -> servesBoth(a));
        TwinNode b = twin.start("node-b", twin.host("node-b"), "node-b", Map.of());
        nodes.add(b);
        await("node-b follows node-a's journal in sync", Duration.ofSeconds(30),
                () -> a.replication().status() == ReplicationLeader.Status.IN_SYNC);
        Serial other = a.node().otherContainers().get(0).serial();
        TmrNode.Group otherOnA = a.node().otherContainers().get(0);

        try (TmrClient client = TmrClient.connect(TmrClientOptions.builder()
                .addresses(new InetSocketAddress(twin.host("node-a"), TwinFixture.PORT),
                        new InetSocketAddress(twin.host("node-b"), TwinFixture.PORT))
                .requestTimeout(Duration.ofSeconds(20))
                .build())) {
            LicenseHandle otherHeld = client.access(TmrTestGroup.FIRM, OTHER_PRODUCT);
            assertEquals(other, otherHeld.container());

            try (AdminClient admin = AdminClient.connect(TmrClientOptions.builder().addresses(a.node().address())
                    .requestTimeout(Duration.ofSeconds(20)).build(), "")) {
                admin.stepDown();
            }
            assertFalse(otherOnA.status().serving(), "the stepped-down node's further virtual container serves");
            assertFalse(otherOnA.peers().leaseWanted(), "the stepped-down node still wants the further lease");
            for (int backend = 0; backend < 3; backend++) {
                assertFalse(otherOnA.peers().mayHold(backend), "backend " + (backend + 1) + " may still hold the "
                        + "stepped-down node's lease of the further virtual container");
            }

            await("node-b serves both virtual containers", Duration.ofSeconds(30), () -> servesBoth(b));
            assertEquals(other, otherHeld.info().container());
            try (LicenseHandle second = client.access(TmrTestGroup.FIRM, OTHER_PRODUCT)) {
                assertEquals(other, second.container());
                CmException full = assertThrows(CmException.class,
                        () -> client.access(TmrTestGroup.FIRM, OTHER_PRODUCT));
                assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.getMessage());
            }
            otherHeld.close();
        }
    }
}
