package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import java.time.Duration;
import java.util.List;
import org.apache.pekko.Done;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.pattern.StatusReply;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The inbox between the sessions and the container, and the gateway that attaches each new container to it. */
@Timeout(30)
class ContainerGatewayTest {

    private static final ActorTestKit TEST_KIT = ActorTestKit.create();
    private static final Duration WAIT = Duration.ofSeconds(5);

    @AfterAll
    static void stop() {
        TEST_KIT.shutdownTestKit();
    }

    /** A container that hands everything to the probe. */
    private static Behavior<Container.Command> forwardTo(TestProbe<Container.Command> probe) {
        return Behaviors.receiveMessage(message -> {
            probe.ref().tell(message);
            return Behaviors.same();
        });
    }

    private static Container.Release release(long id, ActorRef<StatusReply<Done>> replyTo) {
        return new Container.Release(id, 1, Container.ReplyTo.of(replyTo));
    }

    private static List<Long> ids(List<Container.Request> batch) {
        return batch.stream().map(r -> ((Container.Release) r).handleId()).toList();
    }

    @Test
    void aSleepingContainerIsWokenOnceAndABusyOneIsNotWokenAtAll() {
        TestProbe<Container.Command> container = TEST_KIT.createTestProbe();
        TestProbe<StatusReply<Done>> replies = TEST_KIT.createTestProbe();
        RequestInbox inbox = new RequestInbox(10, 3);
        TEST_KIT.spawn(ContainerGateway.create(forwardTo(container), inbox));
        Container.Drain attached = container.expectMessageClass(Container.Drain.class, WAIT);
        assertTrue(attached.inbox().take().isEmpty());
        assertFalse(inbox.sleep(), "nothing came meanwhile");

        inbox.submit(release(1, replies.ref()));
        container.expectMessageClass(Container.Drain.class, WAIT);
        inbox.submit(release(2, replies.ref()));
        container.expectNoMessage(Duration.ofMillis(200));
        assertEquals(List.of(1L, 2L), ids(inbox.take()), "awake: the second request woke nobody");

        for (long id = 3; id <= 7; id++) {
            inbox.submit(release(id, replies.ref()));
        }
        container.expectNoMessage(Duration.ofMillis(200));
        assertEquals(List.of(3L, 4L, 5L), ids(inbox.take()), "in order, at most the batch size");
        assertEquals(List.of(6L, 7L), ids(inbox.take()));
        assertTrue(inbox.take().isEmpty());
        assertFalse(inbox.sleep());
        inbox.submit(release(8, replies.ref()));
        assertEquals(List.of(8L), ids(container.expectMessageClass(Container.Drain.class, WAIT).inbox().take()),
                "asleep again: woken by the next request");
    }

    @Test
    void aRequestThatCameWhileTheContainerWentToSleepIsTakenAtOnce() {
        TestProbe<StatusReply<Done>> replies = TEST_KIT.createTestProbe();
        RequestInbox inbox = new RequestInbox(10, 10);
        // Not attached: nothing to wake. A request in the queue when the container goes to sleep keeps it awake.
        inbox.submit(release(1, replies.ref()));
        assertTrue(inbox.sleep(), "the container must take again");
        assertEquals(List.of(1L), ids(inbox.take()));
        assertFalse(inbox.sleep());
    }

    @Test
    void requestsBeyondTheQueueAreRefusedWith309() {
        TestProbe<StatusReply<Done>> replies = TEST_KIT.createTestProbe();
        RequestInbox inbox = new RequestInbox(2, 10);
        for (long id = 1; id <= 3; id++) {
            inbox.submit(release(id, replies.ref()));
        }
        StatusReply<Done> refused = replies.receiveMessage(WAIT);
        assertTrue(refused.isError());
        assertEquals(CmError.REQUEST_OVERLOAD, ((CmFailure) refused.getError()).error());
        assertEquals(List.of(1L, 2L), ids(inbox.take()));
        inbox.submit(release(4, replies.ref()));
        assertEquals(List.of(4L), ids(inbox.take()), "room again once taken");
    }

    @Test
    void aStoppedContainerIsReplacedAndTheNewOneTakesWhatWaits() {
        TestProbe<List<Long>> taken = TEST_KIT.createTestProbe();
        TestProbe<StatusReply<Done>> replies = TEST_KIT.createTestProbe();
        RequestInbox inbox = new RequestInbox(10, 1);
        // Takes one request per Drain and stops after it, as a failed write stops the container.
        Behavior<Container.Command> stopsAfterOne = Behaviors.receiveMessage(message -> {
            if (message instanceof Container.Drain drain) {
                List<Long> batch = ids(drain.inbox().take());
                taken.ref().tell(batch);
                if (!batch.isEmpty()) {
                    return Behaviors.stopped();
                }
                if (drain.inbox().sleep()) {
                    taken.ref().tell(ids(drain.inbox().take()));
                    return Behaviors.stopped();
                }
            }
            return Behaviors.same();
        });
        inbox.submit(release(1, replies.ref()));
        inbox.submit(release(2, replies.ref()));
        TEST_KIT.spawn(ContainerGateway.create(stopsAfterOne, inbox));
        assertEquals(List.of(1L), taken.receiveMessage(WAIT));
        assertEquals(List.of(2L), taken.receiveMessage(Duration.ofSeconds(10)),
                "the next container, started after a backoff, takes what waited");
    }
}
