package io.opentmr.tmr;

import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * A node over backends that each hold two containers (CmActIds 7 and 8): its connections reach each backend's first
 * container (PEER_HELLO names none), so its virtual container is the group of CmActId 7, served as over backends of
 * one container, with one backend down too; the copies of CmActId 8 stay on the backends.
 */
@Timeout(120)
@ExtendWith(NoLeaks.class)
class NodeOverSeveralContainersTest {

    private static final long OTHER_CM_ACT_ID = 8;

    @TempDir
    Path dir;

    private TmrTestGroup group;

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    @Test
    void theNodeServesTheGroupOfTheBackendsFirstContainersAndIgnoresTheirOthers() throws Exception {
        group = new TmrTestGroup(dir, Clock.systemUTC(), Map.of("opentmr.backend.additional-containers",
                List.of(OTHER_CM_ACT_ID)));
        group.issueTmr(TmrTestGroup.seats(42, 2));
        group.issueTmr(OTHER_CM_ACT_ID, TmrTestGroup.seats(43, 2));
        group.startNode(Map.of());
        Await.until("the node serves", group.node()::serving);
        try (RawConnection client = new RawConnection(group.nodeAddress())) {
            assertInstanceOf(Message.HelloOk.class, client.hello());
            Await.until("the license listed", () -> TmrTestGroup.listed(client).products().size() == 1);
            ContainerInfo listed = TmrTestGroup.listed(client);
            assertEquals(TmrTestGroup.CM_ACT_ID, listed.cmActId());
            assertEquals(List.of(42L), listed.products().stream().map(ProductInfo::productCode).toList());
            Message.AccessOk granted = (Message.AccessOk) client.request(new Message.Access(FIRM, 42, 0,
                    AccessMode.USERLIMIT));
            assertEquals(group.node().virtualSerial(), granted.container());
            assertEquals(io.opentmr.protocol.CmError.ENTRY_NOT_FOUND.code(),
                    ((Message.Error) client.request(new Message.Access(FIRM, 43, 0, AccessMode.USERLIMIT))).code(),
                    "the other CmActId's license is not this virtual container's");

            group.kill(2);
            Message second = client.request(new Message.Access(FIRM, 42, 0, AccessMode.USERLIMIT));
            assertInstanceOf(Message.AccessOk.class, second, "two of three copies: " + second);
            assertInstanceOf(Message.Ok.class, client.request(new Message.Release(granted.handleId())));
        }
        for (int b = 0; b < 2; b++) {
            int backend = b;
            Await.until("backend " + (b + 1) + "'s first container holds the open handle's seat only", () -> {
                try {
                    return group.allocations(backend).size() == 1;
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
        }
    }
}
