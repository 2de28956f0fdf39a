package io.opentmr.tmr;

import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** Which backends' containers make the node's group: those that share a CmActId, not the first to answer. */
@Timeout(120)
@ExtendWith(NoLeaks.class)
class NodeGroupCmActIdTest {

    private static final long PRODUCT = 42;
    private static final long STRAY_CM_ACT_ID = 9;

    @TempDir
    Path dir;

    private TmrTestGroup group;

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    private Quorums.Backends backends() {
        try {
            return AskPattern.<Quorums.Command, Quorums.Backends>ask(group.node().quorums(), Quorums.GetBackends::new,
                    Duration.ofSeconds(5), group.node().actorSystem().scheduler()).toCompletableFuture().get();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void aContainerOfAStrayCmActIdOnTheBackendThatAnswersFirstDoesNotBecomeTheGroup() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(PRODUCT, 2));
        // Backend 1 comes back as another container, of another CmActId: the license's copies are on 2 and 3 only.
        group.kill(0);
        Path stray = dir.resolve("stray-backend-1");
        group.restart(0, Map.of("opentmr.backend.data-dir", stray.toString(),
                "opentmr.persistence.dir", stray.resolve("journal").toString(),
                "opentmr.backend.cm-act-id", STRAY_CM_ACT_ID));
        // The node hears of backend 1 first: the other two are cut off until it has.
        group.link(1).cut();
        group.link(2).cut();
        group.startNode(Map.of());
        Await.until("backend 1 inventoried by the node", () -> group.node().quorums() != null
                && backends().backends().get(0).name() != null);
        group.link(1).restore();
        group.link(2).restore();

        Await.until("the node serves", group.node()::serving);
        try (RawConnection client = new RawConnection(group.nodeAddress())) {
            assertInstanceOf(Message.HelloOk.class, client.hello());
            Await.until("the license listed with the copies of backends 2 and 3",
                    () -> TmrTestGroup.listed(client).products().size() == 1);
            assertEquals(TmrTestGroup.CM_ACT_ID, TmrTestGroup.listed(client).cmActId());
            Message granted = client.request(new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
            assertInstanceOf(Message.AccessOk.class, granted, granted.toString());
        }
        List<Quorums.BackendView> views = backends().backends();
        assertNull(views.get(0).container(), "backend 1's container is not the group's");
        assertEquals(List.of(TmrTestGroup.CM_ACT_ID, TmrTestGroup.CM_ACT_ID),
                List.of(views.get(1).container().cmActId(), views.get(2).container().cmActId()));
    }

    /** A container of a CmActId that one backend alone holds (beside its container of the group's) forms nothing. */
    @Test
    void aCmActIdThatOneBackendAloneHoldsMakesNoVirtualContainer() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(PRODUCT, 2));
        group.kill(0);
        group.restart(0, Map.of("opentmr.backend.additional-containers", List.of(STRAY_CM_ACT_ID)));
        group.startNode(Map.of());
        Await.until("the node serves", group.node()::serving);
        Await.until("every backend listed, backend 1 with both its containers", () -> {
            Quorums.Discovered discovered = group.node().discovered();
            return discovered != null && discovered.cmActIds().equals(List.of(
                    List.of(TmrTestGroup.CM_ACT_ID, STRAY_CM_ACT_ID), List.of(TmrTestGroup.CM_ACT_ID),
                    List.of(TmrTestGroup.CM_ACT_ID)));
        });
        assertEquals(List.of(), group.node().otherContainers(), "CmActId 9 on one backend alone forms nothing");
        try (RawConnection client = new RawConnection(group.nodeAddress())) {
            assertInstanceOf(Message.HelloOk.class, client.hello());
            Message list = client.request(new Message.ListContainers());
            assertEquals(1, ((Message.ContainerList) list).containers().size());
        }
    }
}
