package io.opentmr.backend;

import java.time.Duration;
import java.time.Instant;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Terminated;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * The {@link Container}'s parent: starts it, attaches it to the {@link RequestInbox} the sessions submit to,
 * and when it stops (a failed journal write stops it) starts a new one after a backoff; the new one recovers
 * from snapshot and journal and takes what waits in the inbox. The batch in flight is lost: its askers time
 * out, and nothing of it was persisted. Requests never pass through this actor.
 */
public final class ContainerGateway extends AbstractBehavior<ContainerGateway.Message> {

    public sealed interface Message {
    }

    private record Respawn() implements Message {
    }

    private final Behavior<Container.Command> containerBehavior;
    private final RequestInbox inbox;
    private final TimerScheduler<Message> timers;
    private ActorRef<Container.Command> container;
    private int incarnation;
    private Instant startedAt;
    private Duration backoff = MIN_BACKOFF;

    private static final Duration MIN_BACKOFF = Duration.ofMillis(200);
    private static final Duration MAX_BACKOFF = Duration.ofSeconds(5);
    /** A container that ran this long before it stopped was healthy: the next one starts after the least backoff. */
    private static final Duration HEALTHY = Duration.ofSeconds(30);

    public static Behavior<Message> create(Behavior<Container.Command> container, RequestInbox inbox) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers ->
                new ContainerGateway(context, timers, container, inbox)));
    }

    private ContainerGateway(ActorContext<Message> context, TimerScheduler<Message> timers,
                             Behavior<Container.Command> containerBehavior, RequestInbox inbox) {
        super(context);
        this.timers = timers;
        this.containerBehavior = containerBehavior;
        this.inbox = inbox;
        spawnContainer();
    }

    private void spawnContainer() {
        incarnation++;
        container = getContext().spawn(containerBehavior, "container-" + incarnation);
        getContext().watch(container);
        startedAt = Instant.now();
        inbox.attach(container);
    }

    @Override
    public Receive<Message> createReceive() {
        return newReceiveBuilder()
                .onMessage(Respawn.class, r -> {
                    spawnContainer();
                    return this;
                })
                .onSignal(Terminated.class, t -> onContainerStopped())
                .build();
    }

    private Behavior<Message> onContainerStopped() {
        inbox.detach();
        container = null;
        if (Duration.between(startedAt, Instant.now()).compareTo(HEALTHY) > 0) {
            backoff = MIN_BACKOFF;
        }
        getContext().getLog().error("The container stopped (a failed journal write stops it); starting a new one "
                + "from its snapshot and journal in {}; the requests of its last batch have failed, {} wait",
                backoff, inbox.waiting());
        timers.startSingleTimer("respawn", new Respawn(), backoff);
        backoff = backoff.multipliedBy(2).compareTo(MAX_BACKOFF) > 0 ? MAX_BACKOFF : backoff.multipliedBy(2);
        return this;
    }
}
