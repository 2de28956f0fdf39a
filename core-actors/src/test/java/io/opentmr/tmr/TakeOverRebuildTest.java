package io.opentmr.tmr;

import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import io.opentmr.client.TmrClient;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * A node that takes the lease over with a journal that lacks a handle another node acknowledged (its twin acknowledged
 * it while replication was degraded, then lost the lease) rebuilds it from the allocations two backends hold, also
 * when the third backend is not there at the take-over: the client's RESUME finds its handle.
 */
@Timeout(120)
@ExtendWith(NoLeaks.class)
class TakeOverRebuildTest {

    private static final long PRODUCT = 91;

    @TempDir
    Path dir;

    private TmrTestGroup group;

    @BeforeEach
    void start() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(PRODUCT, 2));
    }

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    private Set<Long> handlesOn(int backend) {
        return Await.unchecked(() -> group.allocations(backend)).stream().map(Allocation::tmrHandleId)
                .collect(Collectors.toSet());
    }

    @Test
    void aHandleTwoBackendsHoldIsRebuiltByANodeWhoseJournalLacksItWhileTheThirdBackendIsDown() throws Exception {
        group.kill(2);
        TmrNode first = group.startNode(Map.of());
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            Await.until("the license listed", () -> !client.listContainers().get(0).products().isEmpty());
        }
        Message.AccessOk granted;
        try (RawConnection raw = new RawConnection(group.nodeAddress())) {
            raw.request(new Message.Hello("raw", "ws-1", "anna", 1));
            Message access = null;
            // A loaded machine may let the lease lapse a moment (NOT_ACTIVE): asked again, a bounded number of times.
            for (int attempt = 0; attempt < 10 && !(access instanceof Message.AccessOk); attempt++) {
                Await.until("the first node serves", first::serving);
                access = raw.request(new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
            }
            granted = assertInstanceOf(Message.AccessOk.class, access);
        }
        long handle = granted.handleId();
        Await.until("backends 1 and 2 hold the handle", () -> handlesOn(0).contains(handle)
                && handlesOn(1).contains(handle));
        // The node that acknowledged it is gone with its journal (in memory); another node, whose journal never had
        // the handle, takes the lease over while backend 3 is still down.
        group.stopNode();
        TmrNode second = group.startOtherNode("node-b", "127.0.2.2", Map.of());
        Await.until("the second node serves", second::serving);
        try (RawConnection raw = new RawConnection(second.address())) {
            raw.request(new Message.Hello("raw", "ws-1", "anna", 1));
            // "Not serving yet" (NOT_ACTIVE, 130) is asked again; any other answer is the node's verdict.
            AtomicReference<Message> resumed = new AtomicReference<>();
            Await.until("the second node answers the RESUME with a verdict", () -> {
                resumed.set(Await.unchecked(() -> raw.request(new Message.Resume(handle, granted.resumeToken()))));
                return resumed.get() instanceof Message.AccessOk || resumed.get() instanceof Message.Error error
                        && error.code() != TmrTestGroup.QUORUM_LOST;
            });
            assertInstanceOf(Message.AccessOk.class, resumed.get(), "RESUME of the handle two backends hold: "
                    + resumed.get());
        }
        Await.until("backends 1 and 2 still hold the handle", () -> handlesOn(0).contains(handle)
                && handlesOn(1).contains(handle));
    }

    /**
     * An ACCESS the backends allocated whose answer never reached the client, and whose record never reached the
     * journal of the node that takes over (the active died between the backends' OK and its answer, its journal with
     * it): the client sends the ACCESS again to the new active, which must answer with the handle it rebuilt from the
     * backends, not open a second one beside it (that one would hold a seat until {@code cleanup-timeout}).
     */
    @Test
    void anAccessWhoseAnswerWasLostWithTheNodeGetsTheHandleTheBackendsHoldWhenSentAgainToTheNext() throws Exception {
        TmrNode first = group.startNode(Map.of());
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            Await.until("the license listed", () -> !client.listContainers().get(0).products().isEmpty());
        }
        int accessId = 7;
        Message.Access access = new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT);
        Message.AccessOk granted = assertInstanceOf(Message.AccessOk.class, accessUntilDecided(first, accessId,
                access));
        long handle = granted.handleId();
        Await.until("every backend holds the handle", () -> handlesOn(0).contains(handle)
                && handlesOn(1).contains(handle) && handlesOn(2).contains(handle));
        // As if the answer had been lost: the client knows no handle, and sends its ACCESS again to the next node.
        group.stopNode();
        TmrNode second = group.startOtherNode("node-b", "127.0.2.2", Map.of());
        Message.AccessOk again = assertInstanceOf(Message.AccessOk.class, accessUntilDecided(second, accessId,
                access), "the re-sent ACCESS");
        assertEquals(handle, again.handleId(), "the handle the backends hold, not a second one");
        assertEquals(granted.resumeToken(), again.resumeToken());
        for (int b = 0; b < 3; b++) {
            assertEquals(Set.of(handle), handlesOn(b), "backend " + (b + 1) + " holds the one handle only");
        }
    }

    /**
     * Sends {@code access} with request id {@code id} from the same client (HELLO host, user, pid) until a node that
     * serves decides on it: "not serving yet" (NOT_ACTIVE, which closes the connection, or 130) is the same request
     * sent again on a new connection, as the SDK does, a bounded number of times.
     */
    private static Message accessUntilDecided(TmrNode node, int id, Message.Access access) throws Exception {
        AtomicReference<Message> answer = new AtomicReference<>();
        Await.until("an ACCESS decided by " + node.address(), () -> Await.unchecked(() -> {
            Await.until("the node serves", node::serving);
            try (RawConnection raw = new RawConnection(node.address())) {
                Message hello = raw.request(new Message.Hello("raw", "ws-1", "anna", 1));
                if (hello instanceof Message.NotActive) {
                    return false;
                }
                raw.send(id, access);
                Frame reply = raw.read();
                assertEquals(id, reply.requestId());
                answer.set(reply.message());
            }
            return !(answer.get() instanceof Message.NotActive) && !(answer.get() instanceof Message.Error error
                    && error.code() == TmrTestGroup.QUORUM_LOST);
        }));
        return answer.get();
    }
}
