package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * A backend holding two containers (CmActIds 7 and 8): each its own serial, licenses, journal and leases; client
 * requests reach the right one by product, handle id, ticket or serial, and a TMR node's connection by the
 * CmActId it names.
 */
@Timeout(60)
@ExtendWith(NoLeaks.class)
class SeveralContainersTest {

    private static final long FIRM = TestBackend.FIRM;
    private static final String SECRET = "a-cluster-secret-of-more-than-32-characters";

    @TempDir
    Path dir;

    private TestBackend backend;

    @AfterEach
    void stop() {
        if (backend != null) {
            backend.close();
        }
    }

    private TestBackend start(boolean durable) throws Exception {
        Map<String, Object> overrides = new HashMap<>(Map.of("opentmr.backend.additional-containers", List.of(8)));
        if (durable) {
            overrides.putAll(TestBackend.durable(dir));
        }
        Path secret = dir.resolve("secret");
        Files.writeString(secret, SECRET);
        overrides.put(PeerAuth.SECRET_FILE_KEY, secret.toString());
        backend = new TestBackend(dir, Clock.systemUTC(), overrides);
        return backend;
    }

    private Serial first() {
        return backend.backend().containers().get(0).identity().serial();
    }

    private Serial second() {
        return backend.backend().containers().get(1).identity().serial();
    }

    private static LicenseIssuer.Request license(long product, long quantity, boolean tmr) {
        return new LicenseIssuer.Request(FIRM, product, quantity, tmr, null, null, null, null, Duration.ofDays(7), 0b1,
                "product " + product);
    }

    @Test
    void eachContainerHasItsOwnSerialCmActIdAndLicensesAndClientsReachTheOneHoldingTheirProduct() throws Exception {
        start(false);
        assertNotEquals(first(), second());
        backend.issueAndImport(first(), license(10, 5, false));
        backend.issueAndImport(second(), license(20, 5, false));
        try (RawConnection client = new RawConnection(backend.address())) {
            client.hello();
            List<ContainerInfo> listed = ((Message.ContainerList) client.request(new Message.ListContainers()))
                    .containers();
            assertEquals(List.of(first(), second()), listed.stream().map(ContainerInfo::serial).toList());
            assertEquals(List.of(7L, 8L), listed.stream().map(ContainerInfo::cmActId).toList());
            assertEquals(List.of(10L), listed.get(0).products().stream().map(ProductInfo::productCode).toList());
            assertEquals(List.of(20L), listed.get(1).products().stream().map(ProductInfo::productCode).toList());

            Message.AccessOk inSecond = (Message.AccessOk) client.request(new Message.Access(FIRM, 20, 0,
                    AccessMode.USERLIMIT));
            assertEquals(second(), inSecond.container());
            assertEquals(1, BackendContainers.containerOf(inSecond.handleId()), "the handle id names its container");
            Message.Info info = (Message.Info) client.request(new Message.GetInfo(inSecond.handleId()));
            assertEquals(second(), info.container());
            assertEquals(20, info.product().productCode());
            assertEquals(inSecond.handleId(), info.handleId());

            Message.AccessOk inFirst = (Message.AccessOk) client.request(new Message.Access(FIRM, 10, 0,
                    AccessMode.USERLIMIT));
            assertEquals(first(), inFirst.container());
            assertEquals(0, BackendContainers.containerOf(inFirst.handleId()), "the first container's ids as they were");
            assertEquals(CmError.ENTRY_NOT_FOUND.code(), ((Message.Error) client.request(new Message.Access(FIRM, 30,
                    0, AccessMode.USERLIMIT))).code());

            assertInstanceOf(Message.Ok.class, client.request(new Message.Release(inSecond.handleId())));
            assertInstanceOf(Message.Ok.class, client.request(new Message.Release(inFirst.handleId())));
            assertEquals(CmError.INVALID_HANDLE.code(), ((Message.Error) client.request(
                    new Message.Release(inSecond.handleId()))).code(), "released in its own container");
            assertEquals(CmError.INVALID_HANDLE.code(), ((Message.Error) client.request(
                    new Message.Release(BackendContainers.clientHandle(5, 1)))).code(), "no sixth container");

            Message.AccessOk borrowed = (Message.AccessOk) client.request(new Message.Access(FIRM, 20, 0,
                    AccessMode.USERLIMIT));
            Message.BorrowOk ticket = (Message.BorrowOk) client.request(new Message.Borrow(borrowed.handleId(), 3600));
            assertEquals(second(), ticket.ticket().issuer());
            assertInstanceOf(Message.Ok.class, client.request(new Message.Return(ticket.ticket().ticketId())));
            assertEquals(CmError.INVALID_HANDLE.code(), ((Message.Error) client.request(
                    new Message.Return(ticket.ticket().ticketId()))).code());

            Message.LicenseContextOk context = (Message.LicenseContextOk) client.request(
                    new Message.LicenseContext("", second()));
            assertEquals(8, ContainerContext.parse(context.context().toArray()).cmActId());
            assertEquals(CmError.BOX_NOT_FOUND.code(), ((Message.Error) client.request(
                    new Message.LicenseContext("", new Serial(129, 1)))).code());
        }
    }

    @Test
    void anAccessGoesOnToTheNextContainerOfTheProductWhenOneHasNoSeatLeft() throws Exception {
        start(false);
        backend.issueAndImport(first(), license(30, 1, false));
        backend.issueAndImport(second(), license(30, 1, false));
        try (RawConnection client = new RawConnection(backend.address())) {
            client.hello();
            Message.AccessOk one = (Message.AccessOk) client.request(new Message.Access(FIRM, 30, 0,
                    AccessMode.USERLIMIT));
            Message.AccessOk two = (Message.AccessOk) client.request(new Message.Access(FIRM, 30, 0,
                    AccessMode.USERLIMIT));
            assertEquals(List.of(first(), second()), List.of(one.container(), two.container()));
            assertEquals(CmError.NO_MORE_LICENSES.code(), ((Message.Error) client.request(new Message.Access(FIRM, 30,
                    0, AccessMode.USERLIMIT))).code());
        }
    }

    @Test
    void eachContainerKeepsItsLicensesAndHandlesInItsOwnJournalAcrossARestart() throws Exception {
        start(true);
        Serial firstSerial = first();
        Serial secondSerial = second();
        backend.issueAndImport(first(), license(10, 5, false));
        backend.issueAndImport(second(), license(20, 5, false));
        Message.AccessOk held;
        try (RawConnection client = new RawConnection(backend.address())) {
            client.hello();
            held = (Message.AccessOk) client.request(new Message.Access(FIRM, 20, 0, AccessMode.USERLIMIT));
        }
        backend.close();
        backend = null;
        start(true);
        assertEquals(List.of(firmSerialPair(firstSerial, 7), firmSerialPair(secondSerial, 8)),
                backend.backend().containers().all().stream().map(s -> firmSerialPair(s.identity().serial(),
                        s.identity().cmActId())).toList(), "the same containers");
        try (RawConnection client = new RawConnection(backend.address())) {
            client.hello();
            Message.AccessOk resumed = (Message.AccessOk) client.request(new Message.Resume(held.handleId(),
                    held.resumeToken()));
            assertEquals(secondSerial, resumed.container());
            assertEquals(held.handleId(), resumed.handleId());
            List<ContainerInfo> listed = ((Message.ContainerList) client.request(new Message.ListContainers()))
                    .containers();
            assertEquals(List.of(10L), listed.get(0).products().stream().map(ProductInfo::productCode).toList());
            assertEquals(List.of(20L), listed.get(1).products().stream().map(ProductInfo::productCode).toList());
            assertEquals(secondSerial, ((Message.AccessOk) client.request(new Message.Access(FIRM, 20, 0,
                    AccessMode.USERLIMIT))).container(), "routing learnt again at start");
        }
    }

    /**
     * RESUME_MANY on a backend: handles of two containers (and of two products) in one request, one answer in the
     * items' order; the released handle, the wrong token and a handle id of no container get 106, the others are bound
     * to the new session.
     */
    @Test
    void oneResumeManyResumesHandlesOfBothContainersAndAnswersTheGoneOnesWith106() throws Exception {
        start(false);
        backend.issueAndImport(first(), license(10, 5, false));
        backend.issueAndImport(second(), license(20, 5, false));
        Message.AccessOk inFirst;
        Message.AccessOk inSecond;
        Message.AccessOk released;
        Message.AccessOk stolen;
        try (RawConnection client = new RawConnection(backend.address())) {
            client.hello();
            inFirst = (Message.AccessOk) client.request(new Message.Access(FIRM, 10, 0, AccessMode.USERLIMIT));
            inSecond = (Message.AccessOk) client.request(new Message.Access(FIRM, 20, 0, AccessMode.USERLIMIT));
            released = (Message.AccessOk) client.request(new Message.Access(FIRM, 20, 0, AccessMode.USERLIMIT));
            stolen = (Message.AccessOk) client.request(new Message.Access(FIRM, 10, 0, AccessMode.USERLIMIT));
            assertInstanceOf(Message.Ok.class, client.request(new Message.Release(released.handleId())));
        }
        try (RawConnection client = new RawConnection(backend.address())) {
            client.hello();
            long noContainer = 0x0009_0000_0000_0001L;
            Message answer = client.request(new Message.ResumeMany(List.of(
                    new Message.Resume(inSecond.handleId(), inSecond.resumeToken()),
                    new Message.Resume(released.handleId(), released.resumeToken()),
                    new Message.Resume(inFirst.handleId(), inFirst.resumeToken()),
                    new Message.Resume(stolen.handleId(), Bytes.of(new byte[16])),
                    new Message.Resume(noContainer, inFirst.resumeToken()))));
            int gone = CmError.INVALID_HANDLE.code();
            assertEquals(new Message.ResumedMany(List.of(
                    new Message.ResumedMany.Outcome(inSecond.handleId(), Message.ResumedMany.RESUMED),
                    new Message.ResumedMany.Outcome(released.handleId(), gone),
                    new Message.ResumedMany.Outcome(inFirst.handleId(), Message.ResumedMany.RESUMED),
                    new Message.ResumedMany.Outcome(stolen.handleId(), gone),
                    new Message.ResumedMany.Outcome(noContainer, gone))), answer);
            assertEquals(second(), ((Message.Info) client.request(new Message.GetInfo(inSecond.handleId())))
                    .container(), "bound to this session, in its container");
            assertEquals(first(), ((Message.Info) client.request(new Message.GetInfo(inFirst.handleId())))
                    .container());
            assertEquals(gone, ((Message.Error) client.request(new Message.GetInfo(stolen.handleId()))).code(),
                    "a wrong token takes nothing");
            assertEquals(new Message.ResumedMany(List.of()), client.request(new Message.ResumeMany(List.of())));
        }
    }

    private static String firmSerialPair(Serial serial, long cmActId) {
        return serial + "/" + cmActId;
    }

    @Test
    void aTmrNodesConnectionServesTheContainerOfTheCmActIdItNamedWithItsOwnLeases() throws Exception {
        start(false);
        backend.issueAndImport(first(), license(40, 3, true));
        backend.issueAndImport(second(), license(50, 3, true));
        PeerAuth auth = PeerAuth.fromFile(dir.resolve("secret"));
        try (RawConnection toSecond = new RawConnection(backend.address());
             RawConnection toFirst = new RawConnection(backend.address());
             RawConnection toNone = new RawConnection(backend.address())) {
            authenticate(toSecond, auth, "node-a", 8);
            authenticate(toFirst, auth, "node-b", 0);
            List<ContainerInfo> second = ((Message.InventoryOk) toSecond.request(new Message.Inventory())).containers();
            assertEquals(List.of(second()), second.stream().map(ContainerInfo::serial).toList());
            assertEquals(50, second.get(0).products().get(0).productCode());
            List<ContainerInfo> first = ((Message.InventoryOk) toFirst.request(new Message.Inventory())).containers();
            assertEquals(List.of(first()), first.stream().map(ContainerInfo::serial).toList());

            // Each container's lease table is its own: node-a holds the second's lease, node-b the first's.
            LeaseGrant a = ((Message.LeaseGranted) toSecond.request(new Message.LeaseAcquire(
                    LeaseGrant.ACTIVE_LEASE, "node-a", 1, 10_000))).grant();
            assertEquals(second(), a.grantor());
            LeaseGrant b = ((Message.LeaseGranted) toFirst.request(new Message.LeaseAcquire(
                    LeaseGrant.ACTIVE_LEASE, "node-b", 1, 10_000))).grant();
            assertEquals(first(), b.grantor());

            // INVENTORY scope 1: every container, the connection's first; an unknown scope is refused, the
            // connection stays open.
            assertEquals(List.of(second(), first()), ((Message.InventoryOk) toSecond.request(new Message.Inventory(
                    Message.Inventory.SCOPE_ALL))).containers().stream().map(ContainerInfo::serial).toList());
            assertEquals(List.of(first(), second()), ((Message.InventoryOk) toFirst.request(new Message.Inventory(
                    Message.Inventory.SCOPE_ALL))).containers().stream().map(ContainerInfo::serial).toList());
            assertEquals(CmError.INVALID_PARAMETER.code(), ((Message.Error) toFirst.request(new Message.Inventory(2)))
                    .code());
            assertEquals(List.of(first()), ((Message.InventoryOk) toFirst.request(new Message.Inventory()))
                    .containers().stream().map(ContainerInfo::serial).toList());

            Message refused = toNone.request(new Message.PeerHello("node-c", Bytes.of(new byte[PeerAuth.NONCE_BYTES]),
                    99));
            assertEquals(CmError.BOX_NOT_FOUND.code(), ((Message.Error) refused).code());
        }
    }

    private static void authenticate(RawConnection connection, PeerAuth auth, String name, long cmActId)
            throws Exception {
        byte[] nodeNonce = new byte[PeerAuth.NONCE_BYTES];
        new SecureRandom().nextBytes(nodeNonce);
        Message.PeerChallenge challenge = (Message.PeerChallenge) connection.request(
                new Message.PeerHello(name, Bytes.of(nodeNonce), cmActId));
        assertInstanceOf(Message.Ok.class, connection.request(new Message.PeerProof(Bytes.of(auth.nodeProof(
                challenge.backendNonce().toArray(), nodeNonce, name)))));
    }

    @Test
    void additionalContainersNeedDistinctCmActIds() {
        for (List<Integer> bad : List.of(List.of(7), List.of(8, 8), List.of(0))) {
            Map<String, Object> settings = Map.of("opentmr.backend.data-dir", dir.toString(),
                    "opentmr.backend.cm-act-id", 7, "opentmr.backend.additional-containers", bad);
            ConfigException e = assertThrows(ConfigException.class, () -> BackendSettings.from(
                    ConfigFactory.parseMap(settings).withFallback(ConfigFactory.load())));
            assertTrue(e.getMessage().contains("additional-containers"), e.getMessage());
        }
    }
}
