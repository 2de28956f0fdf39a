package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** A TMR node's connection to a backend: the mutual challenge on the cluster secret, then inventory. */
@Timeout(60)
@ExtendWith(NoLeaks.class)
class PeerSessionTest {

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

    private TestBackend start(String secret) throws Exception {
        Map<String, Object> overrides = Map.of();
        if (secret != null) {
            Path file = dir.resolve("secret");
            Files.writeString(file, "  " + secret + "\n");
            overrides = Map.of(PeerAuth.SECRET_FILE_KEY, file.toString());
        }
        backend = new TestBackend(dir, Clock.systemUTC(), overrides);
        return backend;
    }

    private static PeerAuth auth(String secret) throws Exception {
        Path file = Files.createTempFile("secret", ".txt");
        Files.writeString(file, secret);
        try {
            return PeerAuth.fromFile(file);
        } finally {
            Files.delete(file);
        }
    }

    /** What the node saw: whether the backend's proof matched its secret, and the answer to its own proof. */
    private record Outcome(boolean backendProofValid, Message answer) {
    }

    /** The node's side of the challenge. */
    private static Outcome challenge(RawConnection connection, PeerAuth node) throws Exception {
        return challenge(connection, node, "node-a", "node-a");
    }

    /** The challenge saying one name in PEER_HELLO and proving another in PEER_PROOF. */
    private static Outcome challenge(RawConnection connection, PeerAuth node, String said, String proved)
            throws Exception {
        byte[] nodeNonce = new byte[PeerAuth.NONCE_BYTES];
        new SecureRandom().nextBytes(nodeNonce);
        Message.PeerChallenge challenge = (Message.PeerChallenge) connection.request(
                new Message.PeerHello(said, Bytes.of(nodeNonce)));
        boolean valid = PeerAuth.matches(node.backendProof(nodeNonce, challenge.backendNonce().toArray()),
                challenge.backendProof().toArray());
        Message answer = connection.request(new Message.PeerProof(Bytes.of(node.nodeProof(
                challenge.backendNonce().toArray(), nodeNonce, proved))));
        return new Outcome(valid, answer);
    }

    @Test
    void aNodeWithTheSecretIsAdmittedProvesTheBackendAndSeesTmrCopies() throws Exception {
        start(SECRET).issueAndImport(new LicenseIssuer.Request(TestBackend.FIRM, 77, 10, true, null, null, null, null,
                null, 0, "TMR"));
        PeerAuth node = auth(SECRET);
        try (RawConnection connection = new RawConnection(backend.address())) {
            byte[] nodeNonce = new byte[PeerAuth.NONCE_BYTES];
            new SecureRandom().nextBytes(nodeNonce);
            Message.PeerChallenge challenge = (Message.PeerChallenge) connection.request(
                    new Message.PeerHello("node-a", Bytes.of(nodeNonce)));
            assertArrayEquals(node.backendProof(nodeNonce, challenge.backendNonce().toArray()),
                    challenge.backendProof().toArray(), "the backend proves it knows the secret too");
            assertInstanceOf(Message.Ok.class, connection.request(new Message.PeerProof(Bytes.of(node.nodeProof(
                    challenge.backendNonce().toArray(), nodeNonce, "node-a")))));

            Message.InventoryOk inventory = (Message.InventoryOk) connection.request(new Message.Inventory());
            ProductInfo copy = inventory.containers().get(0).products().get(0);
            assertEquals(77, copy.productCode());
            assertEquals(1, copy.tmrId(), "a TMR copy, with its TMR-Id");
            assertEquals(backend.identity().serial(), inventory.containers().get(0).serial());
            assertEquals(CmError.INVALID_PARAMETER.code(), ((Message.Error) connection.request(
                    new Message.ListContainers())).code(), "client requests need their own connection");
        }
    }

    @Test
    void aWrongSecretIsRefusedWith135AndTheConnectionCloses() throws Exception {
        start(SECRET);
        try (RawConnection connection = new RawConnection(backend.address())) {
            Outcome outcome = challenge(connection, auth("another-secret-also-longer-than-32-characters"));
            assertFalse(outcome.backendProofValid(), "the node sees the backend's proof fail too");
            assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(), ((Message.Error) outcome.answer()).code());
            assertTrue(connection.closedByServer());
        }
    }

    @Test
    void theProofCoversTheNodeNameSoAProofForAnotherNameIsRefused() throws Exception {
        start(SECRET);
        try (RawConnection connection = new RawConnection(backend.address())) {
            Outcome outcome = challenge(connection, auth(SECRET), "node-b", "node-a");
            assertTrue(outcome.backendProofValid());
            assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(), ((Message.Error) outcome.answer()).code(),
                    "node-a's proof does not admit a connection that said node-b");
            assertTrue(connection.closedByServer());
        }
        try (RawConnection connection = new RawConnection(backend.address())) {
            assertInstanceOf(Message.Ok.class, challenge(connection, auth(SECRET), "node-b", "node-b").answer());
        }
    }

    @Test
    void aConnectionThatIsNotAuthenticatedLearnsNothingOfTheLease() throws Exception {
        start(SECRET);
        try (RawConnection holder = new RawConnection(backend.address())) {
            assertInstanceOf(Message.Ok.class, challenge(holder, auth(SECRET)).answer());
            assertInstanceOf(Message.LeaseGranted.class, holder.request(new Message.LeaseAcquire(
                    LeaseGrant.ACTIVE_LEASE, "node-a", 0, 30_000)));
            try (RawConnection stranger = new RawConnection(backend.address())) {
                Message.Error early = (Message.Error) stranger.request(new Message.LeaseAcquire(
                        LeaseGrant.ACTIVE_LEASE, "node-b", 0, 30_000));
                assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(), early.code());
                assertNoLeaseIn(early.text());
                Message challenge = stranger.request(new Message.PeerHello("node-a", Bytes.of(new byte[32])));
                assertNoLeaseIn(assertInstanceOf(Message.PeerChallenge.class, challenge).backendName());
                Message.Error wrong = (Message.Error) stranger.request(new Message.PeerProof(Bytes.of(new byte[32])));
                assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(), wrong.code());
                assertNoLeaseIn(wrong.text());
            }
            try (RawConnection wrongSecret = new RawConnection(backend.address())) {
                Outcome outcome = challenge(wrongSecret, auth("another-secret-also-longer-than-32-characters"));
                assertNoLeaseIn(((Message.Error) outcome.answer()).text());
            }
        }
    }

    private static void assertNoLeaseIn(String text) {
        assertFalse(text.contains("node-a") || text.contains("epoch") || text.contains(LeaseGrant.ACTIVE_LEASE),
                "a connection that is not authenticated learns nothing of the lease: " + text);
    }

    @Test
    void noPeerRequestIsServedBeforeTheChallenge() throws Exception {
        start(SECRET);
        try (RawConnection connection = new RawConnection(backend.address())) {
            assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(),
                    ((Message.Error) connection.request(new Message.Inventory())).code());
            assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(),
                    ((Message.Error) connection.request(new Message.PeerProof(Bytes.of(new byte[32])))).code(),
                    "a proof without a challenge");
        }
        try (RawConnection client = new RawConnection(backend.address())) {
            client.hello();
            assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(),
                    ((Message.Error) client.request(new Message.Inventory())).code(), "not on a client connection");
        }
    }

    @Test
    void aNodeNameThatIsNoSensibleTokenIsRefusedWith105() throws Exception {
        start(SECRET);
        try (RawConnection connection = new RawConnection(backend.address())) {
            for (String bad : new String[] {"node a", "-a", "n\u0000", "x".repeat(65)}) {
                Message answer = connection.request(new Message.PeerHello(bad, Bytes.of(new byte[32])));
                assertEquals(CmError.INVALID_PARAMETER.code(), ((Message.Error) answer).code(), bad);
            }
            assertInstanceOf(Message.PeerChallenge.class,
                    connection.request(new Message.PeerHello("node-a", Bytes.of(new byte[32]))));
        }
    }

    @Test
    void aBackendWithoutASecretRefusesTmrNodesAndStillServesClients() throws Exception {
        start(null);
        try (RawConnection connection = new RawConnection(backend.address())) {
            Message answer = connection.request(new Message.PeerHello("node-a", Bytes.of(new byte[32])));
            assertEquals(CmError.ACCESS_DENIED.code(), ((Message.Error) answer).code());
            assertTrue(connection.closedByServer());
        }
        try (RawConnection client = new RawConnection(backend.address())) {
            assertInstanceOf(Message.HelloOk.class, client.hello());
        }
    }

    @Test
    void aShortSecretRefusesToStartNamingTheKey() throws Exception {
        Path file = dir.resolve("short");
        Files.writeString(file, "too short\n");
        ConfigException e = assertThrows(ConfigException.class, () -> BackendSettings.peerAuth(
                ConfigFactory.parseMap(Map.of(PeerAuth.SECRET_FILE_KEY, file.toString()))));
        assertTrue(e.getMessage().contains(PeerAuth.SECRET_FILE_KEY), e.getMessage());
        assertTrue(e.getMessage().contains("at least 32"), e.getMessage());
    }
}
