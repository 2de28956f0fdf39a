package io.opentmr.tmr;

import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** Handles on the TMR node: owned by their session, resumed by token, reclaimed when their client vanished. */
@Timeout(120)
@ExtendWith(NoLeaks.class)
class TmrHandleTest {

    private static final long PRODUCT = 42;

    @TempDir
    Path dir;

    private TmrTestGroup group;

    @BeforeEach
    void start() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(PRODUCT, 1));
        group.startNode(Map.of("opentmr.node.cleanup-timeout", "2s", "opentmr.node.keep-alive-interval", "500ms"));
        // The client's connect timeout is short; a node starting on a loaded machine may need longer to serve.
        Await.until("the node serves", group.node()::serving);
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            Await.until("license listed", () -> !client.listContainers().get(0).products().isEmpty());
        }
    }

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    @Test
    void aHandleWhoseClientVanishedIsReclaimedOnTheNodeAndEveryBackend() throws Exception {
        try (RawConnection raw = new RawConnection(group.nodeAddress())) {
            raw.hello();
            Message granted = raw.request(new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
            assertInstanceOf(Message.AccessOk.class, granted, granted.toString());
        }
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            CmException full = assertThrows(CmException.class, () -> client.access(FIRM, PRODUCT));
            assertEquals(CmError.NO_MORE_LICENSES.code(), full.code());
            Await.until("the seat reclaimed after the cleanup timeout", () -> {
                try (LicenseHandle handle = client.access(FIRM, PRODUCT)) {
                    return handle.isOpen();
                } catch (CmException e) {
                    return false;
                }
            });
            for (int backend = 0; backend < 3; backend++) {
                int b = backend;
                Await.until("backend " + (b + 1) + " freed the reclaimed seat", () -> {
                    try {
                        return group.allocations(b).isEmpty();
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                });
            }
        }
    }

    @Test
    void aHandleBelongsToItsSessionAndMovesOnlyWithItsToken() throws Exception {
        try (RawConnection owner = new RawConnection(group.nodeAddress());
             RawConnection other = new RawConnection(group.nodeAddress())) {
            owner.hello();
            other.hello();
            Message.AccessOk ok = (Message.AccessOk) owner.request(new Message.Access(FIRM, PRODUCT, 0,
                    AccessMode.USERLIMIT));
            Message stolen = other.request(new Message.Release(ok.handleId()));
            assertEquals(CmError.INVALID_HANDLE.code(), ((Message.Error) stolen).code(), stolen.toString());
            Message wrongToken = other.request(new Message.Resume(ok.handleId(), Bytes.of(new byte[16])));
            assertEquals(CmError.INVALID_HANDLE.code(), ((Message.Error) wrongToken).code(), wrongToken.toString());
            Message resumed = other.request(new Message.Resume(ok.handleId(), ok.resumeToken()));
            assertInstanceOf(Message.AccessOk.class, resumed, resumed.toString());
            Message formerOwner = owner.request(new Message.GetInfo(ok.handleId()));
            assertEquals(CmError.INVALID_HANDLE.code(), ((Message.Error) formerOwner).code(), formerOwner.toString());
            assertInstanceOf(Message.Ok.class, other.request(new Message.Release(ok.handleId())));
            Message released = other.request(new Message.GetInfo(ok.handleId()));
            assertEquals(CmError.INVALID_HANDLE.code(), ((Message.Error) released).code(), released.toString());
        }
    }

    /** An ACCESS with request id {@code requestId} on a connection closed once it is answered. */
    private Message.AccessOk accessOnAConnectionOfItsOwn(int requestId) throws Exception {
        try (RawConnection before = new RawConnection(group.nodeAddress())) {
            before.hello();
            before.send(requestId, new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
            return (Message.AccessOk) before.read().message();
        }
    }

    /**
     * A client numbering its requests anew on each connection: after it took up its handle again (RESUME), an ACCESS
     * that happens to carry the id of the one that opened it is a new request, refused for want of a seat, not the old
     * handle answered a second time (the client would count two seats where it holds one).
     */
    @Test
    void anAccessAfterTheHandleWasResumedIsANewRequestEvenWithTheOldRequestId() throws Exception {
        Message.AccessOk first = accessOnAConnectionOfItsOwn(77);
        try (RawConnection after = new RawConnection(group.nodeAddress())) {
            after.hello();
            assertInstanceOf(Message.AccessOk.class, after.request(new Message.Resume(first.handleId(),
                    first.resumeToken())));
            after.send(77, new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
            Message another = after.read().message();
            assertEquals(CmError.NO_MORE_LICENSES.code(), assertInstanceOf(Message.Error.class, another,
                    another.toString()).code(), another.toString());
            assertInstanceOf(Message.Ok.class, after.request(new Message.Release(first.handleId())));
        }
    }

    @Test
    void aReSentAccessGetsTheSameHandleNotASecondSeat() throws Exception {
        Message.AccessOk first = accessOnAConnectionOfItsOwn(77);
        // The same client process after a reconnect (a new session) sends the same request again.
        try (RawConnection after = new RawConnection(group.nodeAddress())) {
            after.hello();
            after.send(77, new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
            assertEquals(first, after.read().message(), "the re-sent ACCESS is answered with the same handle");
            after.send(78, new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
            Message another = after.read().message();
            assertEquals(CmError.NO_MORE_LICENSES.code(), ((Message.Error) another).code(),
                    "a new request still finds the one seat taken: " + another);
            // The answer made the new session the handle's owner.
            assertInstanceOf(Message.Ok.class, after.request(new Message.Release(first.handleId())));
        }
        for (int backend = 0; backend < 3; backend++) {
            int b = backend;
            Await.until("backend " + (b + 1) + " holds no seat", () -> {
                try {
                    return group.allocations(b).isEmpty();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
        }
    }

    @Test
    void aRepeatedReleaseIsOkAndChangesNothing() throws Exception {
        try (RawConnection owner = new RawConnection(group.nodeAddress())) {
            owner.hello();
            Message.AccessOk ok = (Message.AccessOk) owner.request(new Message.Access(FIRM, PRODUCT, 0,
                    AccessMode.USERLIMIT));
            assertInstanceOf(Message.Ok.class, owner.request(new Message.Release(ok.handleId())));
            assertInstanceOf(Message.Ok.class, owner.request(new Message.Release(ok.handleId())),
                    "a RELEASE repeated on the same connection");
            try (RawConnection later = new RawConnection(group.nodeAddress())) {
                later.hello();
                assertInstanceOf(Message.Ok.class, later.request(new Message.Release(ok.handleId())),
                        "a RELEASE repeated after a reconnect");
                Message resumed = later.request(new Message.Resume(ok.handleId(), ok.resumeToken()));
                assertEquals(CmError.INVALID_HANDLE.code(), ((Message.Error) resumed).code(),
                        "a released handle is not resumed: " + resumed);
                Message again = later.request(new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
                assertInstanceOf(Message.AccessOk.class, again, "the one seat is free again: " + again);
            }
        }
    }

    @Test
    void aHandleOutlivesALeaseOutageLongerThanTheCleanupTimeout() throws Exception {
        try (TmrClient client = TmrClient.connect(group.nodeAddress())) {
            LicenseHandle held = client.access(FIRM, PRODUCT);
            group.link(0).cut();
            group.link(1).cut();
            Await.until("the node stops serving", () -> !group.node().serving());
            // The outage lasts longer than the cleanup timeout (2 s): nobody could show they are alive meanwhile.
            Thread.sleep(3_000);
            group.link(0).restore();
            group.link(1).restore();
            Await.until("the node serves again", () -> group.node().serving());
            // The client resumed its handle; it was not reclaimed as idle.
            assertEquals(PRODUCT, held.info().product().productCode());
            Thread.sleep(2_500);
            assertEquals(PRODUCT, held.info().product().productCode(), "still held a cleanup timeout later");
            held.close();
        }
    }
}
