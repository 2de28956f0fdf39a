package io.opentmr.persistence;

import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.SnapshotCompleted;
import org.apache.pekko.persistence.typed.SnapshotFailed;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;

/**
 * A persistent actor whose events and state (also its snapshot) hold typed {@link ActorRef}s, as our domain's do
 * (reply-to refs, watchers): Jackson serializes them only with Pekko's transport information set. Reports its
 * recovery and every snapshot outcome to {@code reports}; a snapshot is taken after the first event.
 */
public final class RefHolder extends EventSourcedBehavior<RefHolder.Remember, RefHolder.Remembered,
        RefHolder.Refs> {

    /** Remembers {@code ref}; replies with the refs held once persisted. */
    public record Remember(ActorRef<String> ref, ActorRef<Refs> replyTo) {
    }

    /** The event. */
    public record Remembered(ActorRef<String> ref) implements CborSerializable {
    }

    /** The state and the snapshot. */
    public record Refs(List<ActorRef<String>> refs) implements CborSerializable {
        Refs plus(ActorRef<String> ref) {
            List<ActorRef<String>> more = new java.util.ArrayList<>(refs);
            more.add(ref);
            return new Refs(List.copyOf(more));
        }
    }

    private final ActorRef<String> reports;

    private RefHolder(String id, ActorRef<String> reports) {
        super(PersistenceId.ofUniqueId(id));
        this.reports = reports;
    }

    public static Behavior<Remember> create(String id, ActorRef<String> reports) {
        return new RefHolder(id, reports);
    }

    @Override
    public Refs emptyState() {
        return new Refs(List.of());
    }

    @Override
    public CommandHandler<Remember, Remembered, Refs> commandHandler() {
        return newCommandHandlerBuilder().forAnyState()
                .onCommand(Remember.class, (state, cmd) -> Effect().persist(new Remembered(cmd.ref()))
                        .thenReply(cmd.replyTo(), s -> s))
                .build();
    }

    @Override
    public EventHandler<Refs, Remembered> eventHandler() {
        return newEventHandlerBuilder().forAnyState().onEvent(Remembered.class, (s, e) -> s.plus(e.ref())).build();
    }

    @Override
    public boolean shouldSnapshot(Refs state, Remembered event, long sequenceNr) {
        return sequenceNr == 1;
    }

    @Override
    public SignalHandler<Refs> signalHandler() {
        return newSignalHandlerBuilder()
                .onSignal(RecoveryCompleted.instance(), state -> reports.tell("recovered " + state.refs().size()))
                .onSignal(SnapshotCompleted.class, (state, done) -> reports.tell("snapshot "
                        + done.metadata().sequenceNr()))
                .onSignal(SnapshotFailed.class, (state, failed) -> reports.tell("snapshot failed "
                        + failed.getFailure()))
                .build();
    }
}
