package io.opentmr.tmr;

import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.backend.PeerLink;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * A node over backends that each hold two containers (CmActIds 7 and 8), licenses in both: one virtual container per
 * CmActId (docs/several-containers.md §2), each with its own 131 serial, its own peer connections and lease; ACCESS
 * reaches the container of its product, handle requests the container of their handle; with a backend down, across a
 * restart on the journal, and with a backend too old to list all its containers.
 */
@Timeout(180)
@ExtendWith(NoLeaks.class)
class NodeOverSeveralContainersTest {

    private static final long OTHER_CM_ACT_ID = 8;
    private static final long FIRST_PRODUCT = 42;
    private static final long OTHER_PRODUCT = 43;
    /** The request id of the restart test's ACCESS of {@link #OTHER_PRODUCT} before the restart. */
    private static final int OTHER_ACCESS_ID = 900;

    @TempDir
    Path dir;

    private TmrTestGroup group;

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    private void twoContainersEach() throws Exception {
        group = new TmrTestGroup(dir, Clock.systemUTC(), Map.of("opentmr.backend.additional-containers",
                List.of(OTHER_CM_ACT_ID)));
        group.issueTmr(TmrTestGroup.seats(FIRST_PRODUCT, 2));
        group.issueTmr(OTHER_CM_ACT_ID, TmrTestGroup.seats(OTHER_PRODUCT, 2));
    }

    /** LIST_CONTAINERS once both virtual containers list their license. */
    private static List<ContainerInfo> bothListed(RawConnection client) throws InterruptedException {
        Await.until("two virtual containers listed, a license each", () -> {
            List<ContainerInfo> listed = list(client);
            return listed.size() == 2 && listed.stream().allMatch(c -> c.products().size() == 1);
        });
        return list(client);
    }

    /** The products of the allocations backend {@code backend}'s container of {@code cmActId} holds (0: its first). */
    private List<Long> products(int backend, long cmActId) {
        try {
            return group.allocations(backend, cmActId).stream().map(a -> a.key().productCode()).toList();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static List<ContainerInfo> list(RawConnection client) {
        try {
            return ((Message.ContainerList) client.request(new Message.ListContainers())).containers();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Message.AccessOk access(RawConnection client, long product) throws IOException {
        Message reply = client.request(new Message.Access(FIRM, product, 0, AccessMode.USERLIMIT));
        return assertInstanceOf(Message.AccessOk.class, reply, "ACCESS " + product + ": " + reply);
    }

    @Test
    void theNodeServesOneVirtualContainerPerSharedCmActIdEachWithItsOwnSerial() throws Exception {
        twoContainersEach();
        group.startNode(Map.of());
        Await.until("the node serves", group.node()::serving);
        try (RawConnection client = new RawConnection(group.nodeAddress())) {
            assertInstanceOf(Message.HelloOk.class, client.hello());
            List<ContainerInfo> listed = bothListed(client);
            assertEquals(List.of(TmrTestGroup.CM_ACT_ID, OTHER_CM_ACT_ID),
                    listed.stream().map(ContainerInfo::cmActId).toList(), "the first group first");
            Serial first = listed.get(0).serial();
            Serial other = listed.get(1).serial();
            assertEquals(group.node().virtualSerial(), first);
            assertNotEquals(first, other);
            assertEquals(Serial.MASK_VIRTUAL_TMR, other.mask());
            assertEquals(List.of(FIRST_PRODUCT), listed.get(0).products().stream().map(ProductInfo::productCode)
                    .toList());
            assertEquals(List.of(OTHER_PRODUCT), listed.get(1).products().stream().map(ProductInfo::productCode)
                    .toList());

            Message.AccessOk firstGrant = access(client, FIRST_PRODUCT);
            Message.AccessOk otherGrant = access(client, OTHER_PRODUCT);
            assertEquals(first, firstGrant.container());
            assertEquals(other, otherGrant.container(), "ACCESS by firm and product reaches CmActId 8's container");
            Message.Info info = assertInstanceOf(Message.Info.class,
                    client.request(new Message.GetInfo(otherGrant.handleId())));
            assertEquals(other, info.container());
            assertEquals(OTHER_PRODUCT, info.product().productCode());
            assertEquals(CmError.ENTRY_NOT_FOUND.code(), ((Message.Error) client.request(new Message.Access(FIRM, 44,
                    0, AccessMode.USERLIMIT))).code(), "a product of neither container");
            for (int b = 0; b < 3; b++) {
                int backend = b;
                Await.until("backend " + (b + 1) + " holds each seat in the container of its CmActId", () ->
                        products(backend, 0).equals(List.of(FIRST_PRODUCT))
                        && products(backend, OTHER_CM_ACT_ID).equals(List.of(OTHER_PRODUCT)));
            }

            group.kill(2);
            Message.AccessOk firstAgain = access(client, FIRST_PRODUCT);
            Message.AccessOk otherAgain = access(client, OTHER_PRODUCT);
            assertEquals(other, otherAgain.container(), "two of three copies serve CmActId 8 too");
            assertEquals(CmError.NO_MORE_LICENSES.code(), ((Message.Error) client.request(new Message.Access(FIRM,
                    OTHER_PRODUCT, 0, AccessMode.USERLIMIT))).code(), "2 seats, both held: never a third");
            for (Message.AccessOk held : List.of(firstGrant, otherGrant, firstAgain, otherAgain)) {
                assertInstanceOf(Message.Ok.class, client.request(new Message.Release(held.handleId())));
            }
        }
        for (int b = 0; b < 2; b++) {
            int backend = b;
            Await.until("backend " + (b + 1) + " freed every seat in both containers", () ->
                    products(backend, 0).isEmpty() && products(backend, OTHER_CM_ACT_ID).isEmpty());
        }
    }

    /** RESUME_MANY over handles of both virtual containers: each found where it is, bound to the new session. */
    @Test
    void oneResumeManyResumesTheHandlesOfBothVirtualContainers() throws Exception {
        twoContainersEach();
        group.startNode(Map.of());
        Await.until("the node serves", group.node()::serving);
        Message.AccessOk firstGrant;
        Message.AccessOk otherGrant;
        try (RawConnection client = new RawConnection(group.nodeAddress())) {
            assertInstanceOf(Message.HelloOk.class, client.hello());
            bothListed(client);
            firstGrant = access(client, FIRST_PRODUCT);
            otherGrant = access(client, OTHER_PRODUCT);
        }
        assertNotEquals(firstGrant.container(), otherGrant.container());
        try (RawConnection client = new RawConnection(group.nodeAddress())) {
            assertInstanceOf(Message.HelloOk.class, client.hello());
            Message many = client.request(new Message.ResumeMany(List.of(
                    new Message.Resume(otherGrant.handleId(), otherGrant.resumeToken()),
                    new Message.Resume(firstGrant.handleId(), firstGrant.resumeToken()),
                    new Message.Resume(0x5555_0000_0000_0001L, firstGrant.resumeToken()))));
            assertEquals(new Message.ResumedMany(List.of(
                    new Message.ResumedMany.Outcome(otherGrant.handleId(), Message.ResumedMany.RESUMED),
                    new Message.ResumedMany.Outcome(firstGrant.handleId(), Message.ResumedMany.RESUMED),
                    new Message.ResumedMany.Outcome(0x5555_0000_0000_0001L, CmError.INVALID_HANDLE.code()))), many);
            for (Message.AccessOk held : List.of(firstGrant, otherGrant)) {
                Message info = client.request(new Message.GetInfo(held.handleId()));
                assertEquals(held.container(), assertInstanceOf(Message.Info.class, info, info.toString())
                        .container(), "in its own virtual container, on this session");
            }
        }
    }

    @Test
    void aNodeRestartedOnItsJournalKeepsBothSerialsAndResumesTheHandlesOfBoth() throws Exception {
        twoContainersEach();
        Map<String, Object> restartable = TmrTestGroup.restartableNode(dir.resolve("node-journal"));
        group.startNode(restartable);
        Await.until("the node serves", group.node()::serving);
        List<ContainerInfo> before;
        Message.AccessOk firstGrant;
        Message.AccessOk otherGrant;
        try (RawConnection client = new RawConnection(group.nodeAddress())) {
            assertInstanceOf(Message.HelloOk.class, client.hello());
            before = bothListed(client);
            firstGrant = access(client, FIRST_PRODUCT);
            client.send(OTHER_ACCESS_ID, new Message.Access(FIRM, OTHER_PRODUCT, 0, AccessMode.USERLIMIT));
            otherGrant = assertInstanceOf(Message.AccessOk.class, client.read().message());
        }
        Path kept = dir.resolve("node").resolve(TmrNode.GROUP_SERIALS_FILE);
        assertEquals(Map.of(OTHER_CM_ACT_ID, before.get(1).serial()), TmrNode.readGroupSerials(kept));
        group.stopNode();

        group.startNode(restartable);
        Await.until("the restarted node serves", group.node()::serving);
        try (RawConnection client = new RawConnection(group.nodeAddress())) {
            assertInstanceOf(Message.HelloOk.class, client.hello());
            // At once, before CmActId 8's container may run again: its handle is never answered 106 (a client would
            // drop it), only 130 until it is resumed.
            for (Message.AccessOk held : List.of(otherGrant, firstGrant)) {
                Message[] resumed = new Message[1];
                Await.until("handle " + held.handleId() + " resumed", () -> {
                    try {
                        resumed[0] = client.request(new Message.Resume(held.handleId(), held.resumeToken()));
                    } catch (IOException e) {
                        throw new IllegalStateException(e);
                    }
                    if (resumed[0] instanceof Message.Error error) {
                        assertNotEquals(CmError.INVALID_HANDLE.code(), error.code(), "handle " + held.handleId()
                                + " answered " + error);
                    }
                    return resumed[0] instanceof Message.AccessOk;
                });
                assertEquals(held.container(), ((Message.AccessOk) resumed[0]).container());
            }
            List<ContainerInfo> after = bothListed(client);
            assertEquals(before.stream().map(ContainerInfo::serial).toList(),
                    after.stream().map(ContainerInfo::serial).toList(), "the same two serials");
            // The resumed handle still holds its seat: one more of 2, never a third. The last ACCESS carries the request
            // id of the ACCESS that opened the resumed handle (a client numbering per connection): a new request, not
            // that one sent again, so not answered with the handle this client resumed.
            access(client, OTHER_PRODUCT);
            client.send(OTHER_ACCESS_ID, new Message.Access(FIRM, OTHER_PRODUCT, 0, AccessMode.USERLIMIT));
            Message third = client.read().message();
            assertEquals(CmError.NO_MORE_LICENSES.code(), assertInstanceOf(Message.Error.class, third,
                    third.toString()).code(), third.toString());
        }
    }

    /**
     * One product, a license of one seat in each CmActId's container. A client's ACCESS lands in CmActId 8's (the
     * first's seat is held); it reconnects and sends that ACCESS again after the first's seat was freed: it gets the
     * handle it opened, not a second seat in the first container (which would hold two seats for one client, the
     * first of them lost to it until the cleanup reclaims it).
     */
    @Test
    void aReSentAccessGetsItsHandleInTheOtherContainerNotASeatFreedMeanwhileInTheFirst() throws Exception {
        group = new TmrTestGroup(dir, Clock.systemUTC(), Map.of("opentmr.backend.additional-containers",
                List.of(OTHER_CM_ACT_ID)));
        group.issueTmr(TmrTestGroup.seats(FIRST_PRODUCT, 1));
        group.issueTmr(OTHER_CM_ACT_ID, TmrTestGroup.seats(FIRST_PRODUCT, 1));
        group.startNode(Map.of());
        Await.until("the node serves", group.node()::serving);
        try (RawConnection holder = new RawConnection(group.nodeAddress())) {
            assertInstanceOf(Message.HelloOk.class, holder.hello());
            List<ContainerInfo> listed = bothListed(holder);
            Message.AccessOk held = access(holder, FIRST_PRODUCT);
            assertEquals(listed.get(0).serial(), held.container());
            Message.AccessOk first;
            try (RawConnection before = otherProcess()) {
                before.send(77, new Message.Access(FIRM, FIRST_PRODUCT, 0, AccessMode.USERLIMIT));
                first = assertInstanceOf(Message.AccessOk.class, before.read().message());
                assertEquals(listed.get(1).serial(), first.container(), "the first container's seat is held");
            }
            assertInstanceOf(Message.Ok.class, holder.request(new Message.Release(held.handleId())));
            try (RawConnection after = otherProcess()) {
                after.send(77, new Message.Access(FIRM, FIRST_PRODUCT, 0, AccessMode.USERLIMIT));
                Message again = after.read().message();
                assertEquals(first, again, "the re-sent ACCESS is answered with the handle it opened");
            }
            assertEquals(List.of(0L, 1L), list(holder).stream().map(c -> c.products().get(0).inUse()).toList());
        }
    }

    /**
     * One product, a license of one seat in each CmActId's container: the second ACCESS on a connection falls through
     * from the full license of the first container to the other container's, as between two licenses of one
     * container (was: sent straight to the license that granted the first, alone in its container, and refused 212).
     */
    @Test
    void aSecondAccessOnAConnectionFallsThroughToTheOtherContainersLicenseOfTheProduct() throws Exception {
        group = new TmrTestGroup(dir, Clock.systemUTC(), Map.of("opentmr.backend.additional-containers",
                List.of(OTHER_CM_ACT_ID)));
        group.issueTmr(TmrTestGroup.seats(FIRST_PRODUCT, 1));
        group.issueTmr(OTHER_CM_ACT_ID, TmrTestGroup.seats(FIRST_PRODUCT, 1));
        group.startNode(Map.of());
        Await.until("the node serves", group.node()::serving);
        try (RawConnection client = new RawConnection(group.nodeAddress())) {
            assertInstanceOf(Message.HelloOk.class, client.hello());
            List<ContainerInfo> listed = bothListed(client);
            assertEquals(listed.get(0).serial(), access(client, FIRST_PRODUCT).container());
            assertEquals(listed.get(1).serial(), access(client, FIRST_PRODUCT).container(),
                    "the first container's license is full, the other's has its seat");
            assertEquals(CmError.NO_MORE_LICENSES.code(), ((Message.Error) client.request(new Message.Access(FIRM,
                    FIRST_PRODUCT, 0, AccessMode.USERLIMIT))).code(), "both full");
        }
    }

    /** A connection of another client process than {@link RawConnection#hello}'s, past its HELLO. */
    private RawConnection otherProcess() throws IOException {
        RawConnection connection = new RawConnection(group.nodeAddress());
        Message hello = connection.request(new Message.Hello("raw-test", "ws-raw", "tester", 2));
        assertInstanceOf(Message.HelloOk.class, hello, hello.toString());
        return connection;
    }

    /**
     * Backend 3 is older: it refuses INVENTORY's scope (ERROR 105, and closes the connection, as the codec of a backend
     * before scopes does) and PEER_HELLO naming a CmActId. The node knows its first container only, and the CmActId
     * that backends 1 and 2 list forms a virtual container of two copies.
     */
    @Test
    void aBackendThatCannotListAllItsContainersCountsWithItsFirstOnly() throws Exception {
        twoContainersEach();
        PeerLink.Connector connector = olderBackends("old-backend-node", Set.of(2));
        Map<String, Object> overrides = new HashMap<>();
        try (TmrNode node = TmrNode.start(group.nodeConfig("old-backend-node", "127.0.2.1", "node-old", overrides),
                Clock.systemUTC(), connector)) {
            Await.until("the node serves", node::serving);
            Await.until("the virtual container of CmActId 8 formed", () -> node.otherContainers().size() == 1);
            Await.until("backend 3 listed with its first container only", () -> node.discovered() != null
                    && node.discovered().cmActIds().get(2).equals(List.of(TmrTestGroup.CM_ACT_ID)));
            assertEquals(List.of(TmrTestGroup.CM_ACT_ID, OTHER_CM_ACT_ID), node.discovered().cmActIds().get(0));
            try (RawConnection client = new RawConnection(node.address())) {
                assertInstanceOf(Message.HelloOk.class, client.hello());
                bothListed(client);
                Message.AccessOk granted = access(client, OTHER_PRODUCT);
                assertEquals(node.otherContainers().get(0).serial(), granted.container());
                assertTrue(group.allocations(2, OTHER_CM_ACT_ID).isEmpty(), "backend 3's container 8 is not reached");
                assertEquals(1, group.allocations(0, OTHER_CM_ACT_ID).size());
            }
        }
    }

    /**
     * How node {@code name} reaches the backends when those of {@code older} (by index) are older: they refuse
     * INVENTORY's scope and a PEER_HELLO naming a CmActId.
     */
    private PeerLink.Connector olderBackends(String name, Set<Integer> older) {
        PeerLink.Connector real = group.connector(name);
        return PeerLink.Connector.binding((backend, cmActId) -> {
            boolean old = false;
            for (int i : older) {
                InetSocketAddress address = group.backendAddress(i);
                old |= backend.getPort() == address.getPort() && backend.getHostString().equals(address.getHostString());
            }
            if (old && cmActId != 0) {
                return CompletableFuture.failedFuture(new CmFailure(CmError.INVALID_PARAMETER, "PEER_HELLO: 4 "
                        + "unexpected trailing bytes"));
            }
            CompletionStage<PeerLink> link = real.forCmActId(cmActId).connect(backend);
            return old ? link.thenApply(OldBackend::new) : link;
        });
    }

    /**
     * The node restarts and its backends no longer list CmActId 8 (older ones): while the virtual container it kept for
     * 8 does not run, a handle of it and its product are answered 130 (the client keeps the handle and asks again),
     * not 106 or 200.
     */
    @Test
    void aHandleOfAVirtualContainerThatDoesNotRunYetIsAnswered130Not106() throws Exception {
        twoContainersEach();
        Map<String, Object> restartable = TmrTestGroup.restartableNode(dir.resolve("node-journal"));
        group.startNode(restartable);
        Await.until("the node serves", group.node()::serving);
        Message.AccessOk held;
        try (RawConnection client = new RawConnection(group.nodeAddress())) {
            assertInstanceOf(Message.HelloOk.class, client.hello());
            bothListed(client);
            held = access(client, OTHER_PRODUCT);
        }
        group.stopNode();
        try (TmrNode node = TmrNode.start(group.nodeConfig(TmrTestGroup.NODE_NAME, "127.0.2.1", "node", restartable),
                Clock.systemUTC(), olderBackends(TmrTestGroup.NODE_NAME, Set.of(0, 1, 2)));
             RawConnection client = new RawConnection(new InetSocketAddress("127.0.2.1",
                     (Integer) restartable.get("opentmr.node.port")))) {
            Await.until("the node serves its first virtual container", node::serving);
            assertInstanceOf(Message.HelloOk.class, client.hello());
            assertEquals(List.of(), node.otherContainers());
            Message resumed = client.request(new Message.Resume(held.handleId(), held.resumeToken()));
            assertEquals(CmError.REDUNDANCY_SERVER_MISSING.code(), assertInstanceOf(Message.Error.class, resumed)
                    .code(), resumed.toString());
            Message access = client.request(new Message.Access(FIRM, OTHER_PRODUCT, 0, AccessMode.USERLIMIT));
            assertEquals(CmError.REDUNDANCY_SERVER_MISSING.code(), assertInstanceOf(Message.Error.class, access)
                    .code(), access.toString());
            // The same for its item of a RESUME_MANY: 130, kept, not 106.
            Message many = client.request(new Message.ResumeMany(List.of(new Message.Resume(held.handleId(),
                    held.resumeToken()))));
            assertEquals(new Message.ResumedMany(List.of(new Message.ResumedMany.Outcome(held.handleId(),
                    CmError.REDUNDANCY_SERVER_MISSING.code()))), many);
        }
    }

    /** A link to a backend before INVENTORY scopes: a scope is refused with 105 and the connection closes. */
    private record OldBackend(PeerLink link) implements PeerLink {
        @Override
        public CompletionStage<Message> request(Message request) {
            if (request instanceof Message.Inventory inventory && inventory.scope() != 0) {
                link.close();
                return CompletableFuture.failedFuture(new CmFailure(CmError.INVALID_PARAMETER, "INVENTORY: 1 "
                        + "unexpected trailing bytes at offset 0"));
            }
            return link.request(request);
        }

        @Override
        public CompletionStage<Void> closed() {
            return link.closed();
        }

        @Override
        public String backendName() {
            return link.backendName();
        }

        @Override
        public void close() {
            link.close();
        }
    }
}
