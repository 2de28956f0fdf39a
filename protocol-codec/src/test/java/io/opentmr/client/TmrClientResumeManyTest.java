package io.opentmr.client;

import static io.opentmr.client.TmrClientTest.assertCode;
import static io.opentmr.client.TmrClientTest.options;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.testing.NoLeaks;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A reconnecting client holding many handles resumes them in RESUME_MANYs, not one RESUME each; and with one RESUME
 * each on a server older than RESUME_MANY, which it asks once.
 */
@ExtendWith(NoLeaks.class)
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class TmrClientResumeManyTest {

    private static final long FIRM = FakeLicenseServer.FIRM;
    private static final long PRODUCT = FakeLicenseServer.PRODUCT;

    private FakeLicenseServer server;
    private TmrClient client;

    @BeforeEach
    void start() {
        server = FakeLicenseServer.start("node-a");
        client = TmrClient.connect(options(server.address()).build());
    }

    @AfterEach
    void stop() {
        client.close();
        server.close();
    }

    private List<LicenseHandle> open(int count) {
        List<LicenseHandle> handles = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            handles.add(client.access(FIRM, PRODUCT, 0, AccessMode.NOUSERLIMIT));
        }
        return handles;
    }

    /** Restarts the server and waits (bounded) until {@code resumed} handles were resumed by RESUME_MANY items. */
    private void restartAndAwait(int resumed) throws InterruptedException {
        server.stop();
        server.restart();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (server.resumedItems() < resumed && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(resumed, server.resumedItems(), "handles resumed by RESUME_MANY");
    }

    private static void assertUsable(List<LicenseHandle> handles) {
        for (LicenseHandle handle : handles) {
            assertTrue(handle.isOpen(), handle.toString());
            assertEquals(handle.handleId(), handle.info().handleId());
        }
    }

    @Test
    void twoHundredHandlesAreResumedInTwoRequestsNotTwoHundred() throws Exception {
        List<LicenseHandle> handles = open(200);
        restartAndAwait(200);
        assertUsable(handles);
        assertEquals(0, server.received(MessageType.RESUME), "no handle resumed alone");
        assertEquals(2, server.received(MessageType.RESUME_MANY),
                "one handle to learn that the server takes RESUME_MANY, then the 199 others in one");
        assertEquals(200, client.openHandles());

        // Known now: the next reconnect sends them all in one.
        restartAndAwait(400);
        assertEquals(3, server.received(MessageType.RESUME_MANY));
        assertEquals(0, server.received(MessageType.RESUME));
        assertUsable(handles);
    }

    @Test
    void moreHandlesThanOneRequestTakesGoInSeveral() throws Exception {
        int count = ClientConnection.RESUME_BATCH * 2 + 5;
        List<LicenseHandle> handles = open(count);
        restartAndAwait(count);
        assertEquals(4, server.received(MessageType.RESUME_MANY), "1 + " + ClientConnection.RESUME_BATCH + " + "
                + ClientConnection.RESUME_BATCH + " + 4");
        assertEquals(0, server.received(MessageType.RESUME));
        assertEquals(count, client.openHandles());
        assertUsable(handles.subList(count - 10, count));
    }

    @Test
    void aHandleTheServerNoLongerHasIsLostAndTheOthersOfItsRequestAreResumed() throws Exception {
        List<LicenseHandle> handles = open(50);
        LicenseHandle reclaimed = handles.get(25);
        server.forget(reclaimed.handleId());
        restartAndAwait(49);
        CmException lost = assertCode(CmError.INVALID_HANDLE, reclaimed::info);
        assertTrue(lost.text().contains("106"), lost.text());
        assertFalse(reclaimed.isOpen());
        List<LicenseHandle> others = new ArrayList<>(handles);
        others.remove(reclaimed);
        assertUsable(others);
        assertEquals(49, client.openHandles());
    }

    /** Any code of an item but 0 and 106 keeps its handle: it is resumed again, on this connection or the next. */
    @ParameterizedTest(name = "an item answered {0}")
    @ValueSource(ints = {100, 130, 309})
    void anItemNotResumedNowKeepsItsHandle(int code) throws Exception {
        List<LicenseHandle> handles = open(50);
        server.notNowOnce(code);
        server.stop();
        server.restart();
        assertUsable(handles);
        assertEquals(50, client.openHandles());
        assertEquals(0, server.handleCount() - 50, "nothing granted twice");
        int many = server.received(MessageType.RESUME_MANY);
        assertTrue(many >= 2 && many + server.received(MessageType.RESUME) >= 3, "the probe, the batch with the item "
                + "not resumed, and its handle again (alone when a request waited for it)");
        if (code == 309) {
            assertEquals(2, server.received(MessageType.HELLO), "paced on the same connection");
        }
    }

    /** A RESUME_MANY refused as a whole (but not as an unknown type) keeps every handle, as a refused RESUME does. */
    @ParameterizedTest(name = "RESUME_MANY answered {0}")
    @ValueSource(ints = {309, 100, 130, 0})
    void aResumeManyRefusedAsAWholeKeepsEveryHandle(int code) throws Exception {
        List<LicenseHandle> handles = open(50);
        if (code == 0) {
            server.answerOnceWith(MessageType.RESUME_MANY, new io.opentmr.protocol.Message.NotActive(""));
        } else {
            server.errorOnce(MessageType.RESUME_MANY, code);
        }
        server.stop();
        server.restart();
        assertUsable(handles);
        assertEquals(50, client.openHandles());
        assertTrue(server.received(MessageType.RESUME_MANY) >= 2, "asked again after the refusal");
        if (code == 309) {
            assertEquals(2, server.received(MessageType.HELLO), "paced on the same connection");
        } else {
            assertTrue(server.received(MessageType.HELLO) >= 3, "the connection given up, the handles resumed on the "
                    + "next");
        }
    }

    /**
     * An older server refuses the unknown type with 105 and closes the connection. The client learns it on the first
     * reconnect, before the session is ready: the BORROW waiting for the reconnect (not safe to repeat) is sent on
     * the next connection, not lost with this one. The server is asked once: the next reconnects send RESUMEs only.
     */
    @Test
    void aServerOlderThanResumeManyIsAskedOnceAndGetsOneResumeEach() throws Exception {
        server.knowsResumeMany(false);
        List<LicenseHandle> handles = open(40);
        server.stop();
        CompletableFuture<io.opentmr.protocol.BorrowTicket> borrow = CompletableFuture.supplyAsync(
                () -> handles.get(0).borrow(Duration.ofHours(1)));
        server.restart();
        assertTrue(borrow.get(10, TimeUnit.SECONDS).ticketId() > 0, "the waiting BORROW was answered");
        assertUsable(handles);
        assertEquals(1, server.received(MessageType.RESUME_MANY));
        assertEquals(41, server.received(MessageType.RESUME), "each handle once on the connection after the refusal, "
                + "and the one the BORROW waited for also beside the refused RESUME_MANY");
        assertEquals(3, server.received(MessageType.HELLO));
        assertEquals(1, server.received(MessageType.BORROW));

        server.stop();
        server.restart();
        assertUsable(handles);
        assertEquals(1, server.received(MessageType.RESUME_MANY), "not asked again");
        assertEquals(81, server.received(MessageType.RESUME));
        assertEquals(4, server.received(MessageType.HELLO));
        assertEquals(40, client.openHandles());
    }
}
