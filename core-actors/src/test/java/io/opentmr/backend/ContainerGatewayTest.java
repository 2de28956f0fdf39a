package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import java.time.Duration;
import java.util.List;
import org.apache.pekko.Done;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.pattern.StatusReply;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class ContainerGatewayTest {

    private static final ActorTestKit TEST_KIT = ActorTestKit.create();
    private static final Duration WAIT = Duration.ofSeconds(5);

    @AfterAll
    static void stop() {
        TEST_KIT.shutdownTestKit();
    }

    /** A container that hands everything to the probe. */
    private static org.apache.pekko.actor.typed.Behavior<Container.Command> forwardTo(TestProbe<Container.Command> probe) {
        return org.apache.pekko.actor.typed.javadsl.Behaviors.receiveMessage(message -> {
            probe.ref().tell(message);
            return org.apache.pekko.actor.typed.javadsl.Behaviors.same();
        });
    }

    private static Container.Release release(long id, ActorRef<StatusReply<Done>> replyTo) {
        return new Container.Release(id, 1, replyTo);
    }

    @Test
    void anIdleContainerGetsARequestAtOnceAndABusyOneGetsTheNextBatchWhenDone() {
        TestProbe<Container.Command> container = TEST_KIT.createTestProbe();
        TestProbe<StatusReply<Done>> replies = TEST_KIT.createTestProbe();
        ActorRef<ContainerGateway.Message> gateway = TEST_KIT.spawn(ContainerGateway.create(forwardTo(container), 10, 3, Duration.ofSeconds(30)));

        gateway.tell(new ContainerGateway.Submit(release(1, replies.ref())));
        Container.Batch first = container.expectMessageClass(Container.Batch.class, WAIT);
        assertEquals(1, first.requests().size());

        for (long id = 2; id <= 6; id++) {
            gateway.tell(new ContainerGateway.Submit(release(id, replies.ref())));
        }
        container.expectNoMessage(Duration.ofMillis(200));
        first.done().tell(new Container.BatchDone(first.number()));
        Container.Batch second = container.expectMessageClass(Container.Batch.class, WAIT);
        assertEquals(List.of(2L, 3L, 4L), second.requests().stream().map(r -> ((Container.Release) r).handleId())
                .toList(), "in order, at most the batch size");
        second.done().tell(new Container.BatchDone(second.number()));
        Container.Batch third = container.expectMessageClass(Container.Batch.class, WAIT);
        assertEquals(2, third.requests().size());
        third.done().tell(new Container.BatchDone(third.number()));
        container.expectNoMessage(Duration.ofMillis(200));
        gateway.tell(new ContainerGateway.Submit(release(7, replies.ref())));
        assertEquals(1, container.expectMessageClass(Container.Batch.class, WAIT).requests().size(),
                "idle again: sent at once");
    }

    @Test
    void aBatchNeverAnsweredIsGivenUpAndTheNextGoesOutAndALateAnswerIsIgnored() {
        TestProbe<Container.Command> container = TEST_KIT.createTestProbe();
        TestProbe<StatusReply<Done>> replies = TEST_KIT.createTestProbe();
        ActorRef<ContainerGateway.Message> gateway = TEST_KIT.spawn(ContainerGateway.create(forwardTo(container), 10, 10,
                Duration.ofMillis(300)));
        gateway.tell(new ContainerGateway.Submit(release(1, replies.ref())));
        Container.Batch lost = container.expectMessageClass(Container.Batch.class, WAIT);
        gateway.tell(new ContainerGateway.Submit(release(2, replies.ref())));
        Container.Batch next = container.expectMessageClass(Container.Batch.class, WAIT);
        assertEquals(List.of(2L), next.requests().stream().map(r -> ((Container.Release) r).handleId()).toList(),
                "after the batch timeout the waiting request goes out");
        lost.done().tell(new Container.BatchDone(lost.number()));
        gateway.tell(new ContainerGateway.Submit(release(3, replies.ref())));
        container.expectNoMessage(Duration.ofMillis(200));
        next.done().tell(new Container.BatchDone(next.number()));
        assertEquals(1, container.expectMessageClass(Container.Batch.class, WAIT).requests().size());
    }

    @Test
    void requestsBeyondTheQueueAreRefusedWith309() {
        TestProbe<Container.Command> container = TEST_KIT.createTestProbe();
        TestProbe<StatusReply<Done>> replies = TEST_KIT.createTestProbe();
        ActorRef<ContainerGateway.Message> gateway = TEST_KIT.spawn(ContainerGateway.create(forwardTo(container), 2, 10, Duration.ofSeconds(30)));
        for (long id = 1; id <= 4; id++) {
            gateway.tell(new ContainerGateway.Submit(release(id, replies.ref())));
        }
        container.expectMessageClass(Container.Batch.class, WAIT);
        StatusReply<Done> refused = replies.receiveMessage(WAIT);
        assertTrue(refused.isError());
        assertEquals(CmError.REQUEST_OVERLOAD, ((CmFailure) refused.getError()).error());
    }
}
