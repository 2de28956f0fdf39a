package io.opentmr.backend;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * In front of the {@link Container}, and its parent: passes a request on at once when the container is
 * idle, and collects the requests that arrive while it persists into the next {@link Container.Batch}.
 * So an idle server adds no latency and a busy one writes one batch per fsync. The queue is bounded:
 * beyond it a request is refused with 309 at once.
 *
 * <p>When the container stops (a failed journal write stops it), the gateway starts a new one after a
 * backoff; the new one recovers from snapshot and journal. The batch in flight is lost: its askers time
 * out, and nothing of it was persisted.
 */
public final class ContainerGateway extends AbstractBehavior<ContainerGateway.Message> {

    public sealed interface Message {
    }

    /** A client's request for the container. */
    public record Submit(Container.Request request) implements Message {
    }

    /** A session's sign of life, passed on to the container of the moment. */
    public record Activity(long sessionId) implements Message {
    }

    private record Respawn() implements Message {
    }

    private record BatchDone(long number) implements Message {
    }

    /** The batch in flight was not answered in time: its write failed, or the container is restarting. */
    private record BatchLost(long number) implements Message {
    }

    private final Behavior<Container.Command> containerBehavior;
    private final ActorRef<Container.BatchDone> done;
    private final int maxQueued;
    private final int maxBatch;
    private final Duration batchTimeout;
    private final TimerScheduler<Message> timers;
    private final ArrayDeque<Container.Request> queue = new ArrayDeque<>();
    private ActorRef<Container.Command> container;
    private int incarnation;
    private Duration backoff = MIN_BACKOFF;
    private boolean busy;
    private long batchNumber;

    private static final Duration MIN_BACKOFF = Duration.ofMillis(200);
    private static final Duration MAX_BACKOFF = Duration.ofSeconds(5);

    /**
     * @param batchTimeout how long a batch may stay unanswered before the gateway gives it up and sends the
     *                     next: its requests' askers have timed out by then
     */
    public static Behavior<Message> create(Behavior<Container.Command> container, int maxQueued, int maxBatch,
                                           Duration batchTimeout) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers ->
                new ContainerGateway(context, timers, container, maxQueued, maxBatch, batchTimeout)));
    }

    private ContainerGateway(ActorContext<Message> context, TimerScheduler<Message> timers,
                             Behavior<Container.Command> containerBehavior, int maxQueued, int maxBatch,
                             Duration batchTimeout) {
        super(context);
        this.timers = timers;
        this.containerBehavior = containerBehavior;
        this.done = context.messageAdapter(Container.BatchDone.class, d -> new BatchDone(d.number()));
        this.maxQueued = maxQueued;
        this.maxBatch = maxBatch;
        this.batchTimeout = batchTimeout;
        spawnContainer();
    }

    private void spawnContainer() {
        incarnation++;
        container = getContext().spawn(containerBehavior, "container-" + incarnation);
        getContext().watch(container);
    }

    @Override
    public Receive<Message> createReceive() {
        return newReceiveBuilder()
                .onMessage(Submit.class, this::onSubmit)
                .onMessage(Activity.class, a -> {
                    if (container != null) {
                        container.tell(new Container.SessionActive(a.sessionId()));
                    }
                    return this;
                })
                .onMessage(Respawn.class, r -> {
                    spawnContainer();
                    return onBatchDone();
                })
                .onSignal(Terminated.class, t -> onContainerStopped())
                .onMessage(BatchDone.class, d -> d.number() == batchNumber ? onBatchDone() : this)
                .onMessage(BatchLost.class, lost -> {
                    if (lost.number() == batchNumber && busy && container != null) {
                        getContext().getLog().warn("Batch {} of requests was not answered within {}; its requests "
                                + "have failed, going on with the next", lost.number(), batchTimeout);
                        return onBatchDone();
                    }
                    return this;
                })
                .build();
    }

    private Behavior<Message> onContainerStopped() {
        getContext().getLog().error("The container stopped (a failed journal write stops it); starting a new one "
                + "from its snapshot and journal in {}; the requests of batch {} have failed", backoff, batchNumber);
        container = null;
        busy = true;
        timers.cancel("batch");
        timers.startSingleTimer("respawn", new Respawn(), backoff);
        backoff = backoff.multipliedBy(2).compareTo(MAX_BACKOFF) > 0 ? MAX_BACKOFF : backoff.multipliedBy(2);
        return this;
    }

    private Behavior<Message> onSubmit(Submit submit) {
        if (!busy) {
            send(List.of(submit.request()));
        } else if (queue.size() >= maxQueued) {
            submit.request().refuse(new CmFailure(CmError.REQUEST_OVERLOAD,
                    "the container has " + maxQueued + " requests waiting; try again"));
        } else {
            queue.add(submit.request());
        }
        return this;
    }

    private Behavior<Message> onBatchDone() {
        timers.cancel("batch");
        if (container == null) {
            return this;
        }
        if (queue.isEmpty()) {
            busy = false;
            return this;
        }
        List<Container.Request> batch = new ArrayList<>(Math.min(queue.size(), maxBatch));
        while (!queue.isEmpty() && batch.size() < maxBatch) {
            batch.add(queue.poll());
        }
        send(batch);
        backoff = MIN_BACKOFF;
        return this;
    }

    private void send(List<Container.Request> batch) {
        busy = true;
        batchNumber++;
        container.tell(new Container.Batch(batchNumber, batch, done));
        timers.startSingleTimer("batch", new BatchLost(batchNumber), batchTimeout);
    }
}
