package io.opentmr.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.client.TmrClient;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.tmr.backend.PeerLink;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** The test group's own promises: what a link control does to answers, and a backend restarted on its data. */
@Timeout(60)
class TmrTestGroupTest {

    private final ScheduledExecutorService scheduler = Executors.newSingleThreadScheduledExecutor();

    @AfterEach
    void stop() {
        scheduler.shutdownNow();
    }

    /** A link whose requests the test answers by hand, in the order it chooses. */
    private static final class ManualLink implements PeerLink {
        final List<CompletableFuture<Message>> asked = new ArrayList<>();
        final CompletableFuture<Void> closed = new CompletableFuture<>();

        @Override
        public synchronized CompletionStage<Message> request(Message request) {
            CompletableFuture<Message> answer = new CompletableFuture<>();
            asked.add(answer);
            return answer;
        }

        @Override
        public CompletionStage<Void> closed() {
            return closed;
        }

        @Override
        public String backendName() {
            return "manual";
        }

        @Override
        public void close() {
            closed.complete(null);
        }
    }

    private static Message.UnitsOk answer(int i) {
        return new Message.UnitsOk(i);
    }

    @Test
    void delayedAnswersOvertakeEachOtherAndAllArrive() throws Exception {
        LinkControl control = new LinkControl(0, scheduler, 7);
        ManualLink real = new ManualLink();
        PeerLink link = control.wrap(real);
        control.delay(Duration.ZERO, Duration.ofMillis(40));
        List<Long> order = new ArrayList<>();
        List<CompletableFuture<Void>> seen = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            seen.add(link.request(new Message.Inventory()).toCompletableFuture().thenAccept(reply -> {
                synchronized (order) {
                    order.add(((Message.UnitsOk) reply).remaining());
                }
            }));
        }
        for (int i = 0; i < 20; i++) {
            real.asked.get(i).complete(answer(i));
        }
        CompletableFuture.allOf(seen.toArray(CompletableFuture[]::new)).get(5, TimeUnit.SECONDS);
        List<Long> sent = new ArrayList<>();
        for (long i = 0; i < 20; i++) {
            sent.add(i);
        }
        synchronized (order) {
            assertEquals(20, order.size());
            assertNotEquals(sent, order, "random delays up to 40 ms reorder 20 answers");
            assertEquals(sent, order.stream().sorted().toList());
        }
        assertEquals(20, control.answersDelivered());
    }

    @Test
    void aFrozenLinkWithholdsAnswersUntilThawedThenDeliversThemInOrder() throws Exception {
        LinkControl control = new LinkControl(1, scheduler, 7);
        ManualLink real = new ManualLink();
        PeerLink link = control.wrap(real);
        control.freeze();
        CompletableFuture<Message> first = link.request(new Message.Inventory()).toCompletableFuture();
        CompletableFuture<Message> second = link.request(new Message.Inventory()).toCompletableFuture();
        real.asked.get(1).complete(answer(2));
        real.asked.get(0).complete(answer(1));
        assertFalse(first.isDone() || second.isDone(), "answers withheld while frozen");
        assertEquals(2, control.withheldAnswers());
        List<Long> order = new ArrayList<>();
        first.thenAccept(reply -> order.add(((Message.UnitsOk) reply).remaining()));
        second.thenAccept(reply -> order.add(((Message.UnitsOk) reply).remaining()));
        control.thaw();
        assertEquals(List.of(2L, 1L), order, "delivered in the order they arrived");
        assertEquals(0, control.withheldAnswers());
    }

    @Test
    void aCutLinkIsClosedAndRefusedUntilRestored() throws Exception {
        LinkControl control = new LinkControl(2, scheduler, 7);
        ManualLink real = new ManualLink();
        PeerLink link = control.wrap(real);
        control.cut();
        assertTrue(real.closed.isDone(), "the open link is closed");
        ExecutionException refused = org.junit.jupiter.api.Assertions.assertThrows(ExecutionException.class,
                () -> link.request(new Message.Inventory()).toCompletableFuture().get(1, TimeUnit.SECONDS));
        assertEquals(CmError.NETWORK_FAULT.code(), ((CmFailure) refused.getCause()).code());
        assertNull(control.wrap(new ManualLink()), "no new link while cut");
        control.restore();
        assertTrue(control.wrap(new ManualLink()) != null);
    }

    @Test
    @ExtendWith(NoLeaks.class)
    void aKilledBackendRestartsOnItsDataWithItsHandles(@TempDir Path dir) throws Exception {
        try (TmrTestGroup group = new TmrTestGroup(dir)) {
            group.issueOrdinary(1, new LicenseIssuer.Request(TmrTestGroup.FIRM, 5, 3, false, null, null, null, null,
                    null, 0, "ordinary"));
            var address = group.backendAddress(1);
            var serial = group.backend(1).identity().serial();
            // A raw connection: closing it does not release the handle (an SDK client's close would).
            try (RawConnection raw = new RawConnection(address)) {
                raw.hello();
                Message granted = raw.request(new Message.Access(TmrTestGroup.FIRM, 5, 0, AccessMode.USERLIMIT));
                assertInstanceOf(Message.AccessOk.class, granted, granted.toString());
            }
            group.kill(1);
            assertFalse(group.isRunning(1));
            group.restart(1);
            assertEquals(address, group.backend(1).address(), "the same address and port");
            assertEquals(serial, group.backend(1).identity().serial(), "the same container");
            try (TmrClient client = TmrClient.connect(address)) {
                assertEquals(1, client.listContainers().get(0).products().get(0).inUse(),
                        "the handle was journaled and survives the restart");
            }
        }
    }
}
