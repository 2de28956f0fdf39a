package io.opentmr.persistence;

import java.io.PrintStream;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;

/**
 * For the crash test's child JVM: persists events one after the other, forever, and prints {@code ACK pid seqNr}
 * once each is persisted (Pekko calls back only after the journal acknowledged the write).
 */
public final class AckingWriter extends EventSourcedBehavior<AckingWriter.Next, AckingWriter.Written, Long> {

    /** Persist the next event. */
    public enum Next {
        INSTANCE
    }

    /** The event. */
    public record Written(long n) implements CborSerializable {
    }

    private final String id;
    private final PrintStream out;
    private final ActorRef<Next> self;

    private AckingWriter(String id, PrintStream out, ActorRef<Next> self) {
        super(PersistenceId.ofUniqueId(id));
        this.id = id;
        this.out = out;
        this.self = self;
    }

    public static Behavior<Next> create(String id, PrintStream out) {
        return Behaviors.setup(ctx -> {
            ctx.getSelf().tell(Next.INSTANCE);
            return new AckingWriter(id, out, ctx.getSelf());
        });
    }

    @Override
    public Long emptyState() {
        return 0L;
    }

    @Override
    public CommandHandler<Next, Written, Long> commandHandler() {
        return newCommandHandlerBuilder().forAnyState()
                .onCommand(Next.class, (state, cmd) -> Effect().persist(new Written(state + 1)).thenRun(s -> {
                    synchronized (out) {
                        out.println("ACK " + id + " " + s);
                    }
                    self.tell(Next.INSTANCE);
                }))
                .build();
    }

    @Override
    public EventHandler<Long, Written> eventHandler() {
        return newEventHandlerBuilder().forAnyState().onAnyEvent((state, e) -> e.n());
    }
}
