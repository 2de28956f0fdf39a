package io.opentmr.persistence;

import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.javadsl.CommandHandlerWithReply;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehaviorWithEnforcedReplies;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;

/** A persistent counter for the tests: events tagged "counter", a snapshot every 5 events. */
public final class Counter extends EventSourcedBehaviorWithEnforcedReplies<Counter.Command, Counter.Added,
        Counter.Total> {

    /** Commands of the counter. */
    public sealed interface Command {
    }

    /** Adds {@code amount}; replies with the new total once persisted. */
    public record Add(long amount, ActorRef<StatusReply<Long>> replyTo) implements Command {
    }

    /** Replies with the current total. */
    public record Get(ActorRef<Long> replyTo) implements Command {
    }

    /** The one event. */
    public record Added(long amount) implements CborSerializable {
    }

    /** The state, also the snapshot. */
    public record Total(long value, long events) implements CborSerializable {
        Total apply(Added e) {
            return new Total(value + e.amount(), events + 1);
        }
    }

    public static Behavior<Command> create(String id) {
        return new Counter(PersistenceId.ofUniqueId(id));
    }

    private Counter(PersistenceId id) {
        super(id);
    }

    @Override
    public Total emptyState() {
        return new Total(0, 0);
    }

    @Override
    public CommandHandlerWithReply<Command, Added, Total> commandHandler() {
        return newCommandHandlerWithReplyBuilder().forAnyState()
                .onCommand(Add.class, (state, cmd) -> Effect().persist(new Added(cmd.amount()))
                        .thenReply(cmd.replyTo(), s -> StatusReply.success(s.value())))
                .onCommand(Get.class, (state, cmd) -> Effect().reply(cmd.replyTo(), state.value()))
                .build();
    }

    @Override
    public EventHandler<Total, Added> eventHandler() {
        return newEventHandlerBuilder().forAnyState().onEvent(Added.class, Total::apply).build();
    }

    @Override
    public Set<String> tagsFor(Added event) {
        return Set.of("counter");
    }

    @Override
    public RetentionCriteria retentionCriteria() {
        return RetentionCriteria.snapshotEvery(5, 2);
    }
}
