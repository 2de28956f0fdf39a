package io.opentmr.backend;

import io.opentmr.protocol.CmError;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * In front of the {@link Container}: passes a request on at once when the container is idle, and
 * collects the requests that arrive while it persists into the next {@link Container.Batch}. So an idle
 * server adds no latency and a busy one writes one batch per fsync. The queue is bounded: beyond it a
 * request is refused with 309 at once.
 */
public final class ContainerGateway extends AbstractBehavior<ContainerGateway.Message> {

    public sealed interface Message {
    }

    /** A client's request for the container. */
    public record Submit(Container.Request request) implements Message {
    }

    private record BatchDone() implements Message {
    }

    private final ActorRef<Container.Command> container;
    private final ActorRef<Container.BatchDone> done;
    private final int maxQueued;
    private final int maxBatch;
    private final ArrayDeque<Container.Request> queue = new ArrayDeque<>();
    private boolean busy;

    public static Behavior<Message> create(ActorRef<Container.Command> container, int maxQueued, int maxBatch) {
        return Behaviors.setup(context -> new ContainerGateway(context, container, maxQueued, maxBatch));
    }

    private ContainerGateway(ActorContext<Message> context, ActorRef<Container.Command> container, int maxQueued,
                             int maxBatch) {
        super(context);
        this.container = container;
        this.done = context.messageAdapter(Container.BatchDone.class, d -> new BatchDone());
        this.maxQueued = maxQueued;
        this.maxBatch = maxBatch;
    }

    @Override
    public Receive<Message> createReceive() {
        return newReceiveBuilder()
                .onMessage(Submit.class, this::onSubmit)
                .onMessage(BatchDone.class, d -> onBatchDone())
                .build();
    }

    private Behavior<Message> onSubmit(Submit submit) {
        if (!busy) {
            send(List.of(submit.request()));
        } else if (queue.size() >= maxQueued) {
            submit.request().refuse(new CmRefusal(CmError.REQUEST_OVERLOAD,
                    "the container has " + maxQueued + " requests waiting; try again"));
        } else {
            queue.add(submit.request());
        }
        return this;
    }

    private Behavior<Message> onBatchDone() {
        if (queue.isEmpty()) {
            busy = false;
            return this;
        }
        List<Container.Request> batch = new ArrayList<>(Math.min(queue.size(), maxBatch));
        while (!queue.isEmpty() && batch.size() < maxBatch) {
            batch.add(queue.poll());
        }
        send(batch);
        return this;
    }

    private void send(List<Container.Request> batch) {
        busy = true;
        container.tell(new Container.Batch(batch, done));
    }
}
