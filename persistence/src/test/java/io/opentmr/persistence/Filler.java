package io.opentmr.persistence;

import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.persistence.typed.DeleteEventsCompleted;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.RetentionCriteria;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;

/**
 * Persists {@code events} events, {@code perWrite} at a time, as fast as the journal acknowledges them, with a snapshot
 * every {@code snapshotEvery} events that deletes the events before the previous one (Pekko's retention with one
 * snapshot kept); once the last of those deletions completed, tells {@code done} the sequence number deleted to,
 * {@code events - snapshotEvery}. {@code events} must be a multiple of {@code snapshotEvery}, at least two. With
 * {@code snapshotEvery} 0 it keeps every event and tells {@code done} its last sequence number once persisted.
 */
public final class Filler extends EventSourcedBehavior<Filler.Next, Filler.Filled, Long> {

    /** Persist the next events. */
    public enum Next {
        INSTANCE
    }

    /** The event; the text gives it a realistic size. */
    public record Filled(long n, String text) implements CborSerializable {
    }

    private final long events;
    private final int perWrite;
    private final int snapshotEvery;
    private final ActorRef<Long> done;
    private final ActorRef<Next> self;

    private Filler(String id, long events, int perWrite, int snapshotEvery, ActorRef<Long> done, ActorRef<Next> self) {
        super(PersistenceId.ofUniqueId(id));
        this.events = events;
        this.perWrite = perWrite;
        this.snapshotEvery = snapshotEvery;
        this.done = done;
        this.self = self;
    }

    public static Behavior<Next> create(String id, long events, int perWrite, int snapshotEvery, ActorRef<Long> done) {
        return Behaviors.setup(ctx -> {
            ctx.getSelf().tell(Next.INSTANCE);
            return new Filler(id, events, perWrite, snapshotEvery, done, ctx.getSelf());
        });
    }

    @Override
    public Long emptyState() {
        return 0L;
    }

    @Override
    public CommandHandler<Next, Filled, Long> commandHandler() {
        return newCommandHandlerBuilder().forAnyState()
                .onCommand(Next.class, (state, cmd) -> {
                    if (state >= events) {
                        if (snapshotEvery == 0) {
                            done.tell(state);
                        }
                        return Effect().none();
                    }
                    List<Filled> batch = new ArrayList<>();
                    for (long n = state + 1; n <= Math.min(events, state + perWrite); n++) {
                        batch.add(new Filled(n, "seat of handle " + n + " on license 6000010/42, backend 127.0.1.1"));
                    }
                    return Effect().persist(batch).thenRun(s -> self.tell(Next.INSTANCE));
                })
                .build();
    }

    @Override
    public EventHandler<Long, Filled> eventHandler() {
        return newEventHandlerBuilder().forAnyState().onAnyEvent((state, e) -> e.n());
    }

    @Override
    public SignalHandler<Long> signalHandler() {
        return newSignalHandlerBuilder()
                .onSignal(DeleteEventsCompleted.class, (state, deleted) -> {
                    if (snapshotEvery > 0 && deleted.toSequenceNr() == events - snapshotEvery) {
                        done.tell(deleted.toSequenceNr());
                    }
                })
                .build();
    }

    @Override
    public RetentionCriteria retentionCriteria() {
        if (snapshotEvery == 0) {
            return RetentionCriteria.disabled();
        }
        return RetentionCriteria.snapshotEvery(snapshotEvery, 1).withDeleteEventsOnSnapshot();
    }
}
