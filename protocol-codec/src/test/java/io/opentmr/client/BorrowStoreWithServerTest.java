package io.opentmr.client;

import static io.opentmr.client.BorrowedLicenseTest.assertCode;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.testing.NoLeaks;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Borrow and return through the SDK against the fake server. Its container shows no public key and its
 * tickets carry no real signature, so what can be seen here is the refusal path: the seat goes back.
 */
@ExtendWith(NoLeaks.class)
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class BorrowStoreWithServerTest {

    @TempDir
    Path dir;

    private FakeLicenseServer server;
    private TmrClient client;

    @BeforeEach
    void start() {
        server = FakeLicenseServer.start("backend-a");
        client = TmrClient.connect(TmrClientTest.options(server.address()).build());
    }

    @AfterEach
    void stop() {
        client.close();
        server.close();
    }

    @Test
    void aTicketThatCannotBeCheckedIsNotStoredAndItsSeatGoesBack() throws Exception {
        BorrowStore store = BorrowStore.open(dir);
        try (LicenseHandle handle = client.access(FakeLicenseServer.FIRM, FakeLicenseServer.PRODUCT)) {
            // The fake server is a virtual container whose tickets carry 64 zero bytes: no backend signatures and
            // no vendor statement of the group's keys.
            CmException refused = assertCode(CmError.ACCESS_DENIED,
                    () -> store.borrow(client, handle, Duration.ofHours(1), "ws-17/anna"));
            assertTrue(refused.text().contains("malformed signature"), refused.text());
        }
        assertTrue(server.awaitReceived(MessageType.RETURN, 1, Duration.ofSeconds(5)));
        assertEquals(1, server.received(MessageType.BORROW));
        assertEquals(List.of(), store.all());
    }

    @Test
    void returningATicketTheServerDoesNotKnowRemovesIt() throws Exception {
        BorrowStore store = BorrowStore.open(dir);
        BorrowTestIssuer issuer = new BorrowTestIssuer();
        store.save(BorrowedLicense.of(issuer.issue(5, FakeLicenseServer.FIRM, FakeLicenseServer.PRODUCT, "ws-17/anna",
                Instant.now().plusSeconds(3600).toEpochMilli()), issuer.publicKey()));

        store.returnBorrow(client, 5);

        assertEquals(1, server.received(MessageType.RETURN));
        assertEquals(List.of(), store.all());
    }

    @Test
    void aReturnWithoutServerKeepsTheTicket() {
        BorrowStore store = BorrowStore.open(dir);
        BorrowTestIssuer issuer = new BorrowTestIssuer();
        BorrowedLicense license = BorrowedLicense.of(issuer.issue(5, FakeLicenseServer.FIRM, FakeLicenseServer.PRODUCT,
                "ws-17/anna", Instant.now().plusSeconds(3600).toEpochMilli()), issuer.publicKey());
        store.save(license);
        server.stop();

        CmException failed = assertThrows(CmException.class, () -> store.returnBorrow(client, 5));

        assertTrue(failed.code() == 100 || failed.code() == 101, failed.getMessage());
        assertEquals(List.of(license), store.all());
    }
}
