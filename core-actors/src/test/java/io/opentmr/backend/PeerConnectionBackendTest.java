package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.peer.PeerConnection;
import io.opentmr.peer.PeerOptions;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.testing.NoLeaks;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** The TMR node's peer client against a real backend: the challenge both ways, then its inventory. */
@Timeout(60)
@ExtendWith(NoLeaks.class)
class PeerConnectionBackendTest {

    private static final String SECRET = "a-cluster-secret-of-more-than-32-characters";

    @TempDir
    Path dir;

    private TestBackend backend;
    private NioEventLoopGroup group;

    @BeforeEach
    void start() throws Exception {
        Path file = dir.resolve("secret");
        Files.writeString(file, SECRET + "\n");
        backend = new TestBackend(dir, Clock.systemUTC(), Map.of(PeerAuth.SECRET_FILE_KEY, file.toString()));
        group = new NioEventLoopGroup(1, new DefaultThreadFactory("node-io", true));
    }

    @AfterEach
    void stop() {
        group.shutdownGracefully(0, 100, TimeUnit.MILLISECONDS).syncUninterruptibly();
        backend.close();
    }

    private PeerAuth auth(String secret) throws Exception {
        Path file = Files.createTempFile(dir, "node-secret", ".txt");
        Files.writeString(file, secret);
        return PeerAuth.fromFile(file);
    }

    @Test
    void aNodeWithTheSecretReadsTheInventoryWithItsTmrCopy() throws Exception {
        backend.issueAndImport(new LicenseIssuer.Request(TestBackend.FIRM, 77, 10, true, null, null, null, null, null,
                0, "TMR"));
        PeerConnection connection = PeerConnection.connect(backend.address(), "node-a", auth(SECRET),
                PeerOptions.defaults(), group).get(10, TimeUnit.SECONDS);
        try {
            assertTrue(connection.isOpen());
            assertFalse(connection.backendName().isEmpty(), "the backend names itself in PEER_CHALLENGE");
            Message.InventoryOk inventory = (Message.InventoryOk) connection.request(new Message.Inventory())
                    .get(10, TimeUnit.SECONDS);
            ContainerInfo container = inventory.containers().get(0);
            assertEquals(backend.identity().serial(), container.serial());
            ProductInfo copy = container.products().get(0);
            assertEquals(77, copy.productCode());
            assertEquals(1, copy.tmrId(), "the TMR copy, with its TMR-Id");

            ExecutionException refused = assertThrows(ExecutionException.class,
                    () -> connection.request(new Message.ListContainers()).get(10, TimeUnit.SECONDS));
            assertEquals(CmError.INVALID_PARAMETER.code(), assertInstanceOf(CmFailure.class, refused.getCause())
                    .code(), "client requests need their own connection; the peer connection stays up");
            assertTrue(connection.isOpen());
        } finally {
            connection.close();
            connection.closeFuture().get(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void aNodeWithAnotherSecretIsNotAdmitted() throws Exception {
        ExecutionException refused = assertThrows(ExecutionException.class, () -> PeerConnection.connect(
                backend.address(), "node-a", auth("another-secret-also-longer-than-32-characters"),
                PeerOptions.defaults(), group).get(10, TimeUnit.SECONDS));
        CmFailure error = assertInstanceOf(CmFailure.class, refused.getCause());
        // The backend's proof fails first on the node's side, so the node never shows its own.
        assertEquals(CmError.TMR_PEER_NOT_AUTHENTICATED.code(), error.code());
    }
}
