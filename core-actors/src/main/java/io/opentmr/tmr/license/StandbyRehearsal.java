package io.opentmr.tmr.license;

import io.opentmr.protocol.AccessMode;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.SnapshotSelectionCriteria;
import org.apache.pekko.persistence.typed.javadsl.Recovery;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A standby's rehearsal of the take-over's journal path, so that the take-over does not run it cold.
 *
 * <p>A standby's JVM has never recovered a persistent actor: the first take-over loaded about 800 classes (a third
 * of them Pekko Persistence's) and ran their code interpreted, which made a virtual container of three events take
 * 170–450 ms to recover and a license without handles 100–800 ms (two-core machine, under load). So once, when the
 * standby starts, this actor writes and recovers a throw-away seat table a few times: the license's own events and
 * seat table ({@link TmrLicenseEvent}, {@link SeatTable#apply}), through Pekko's event-sourcing code and the node's
 * serializer, on a journal of its own ({@link #JOURNAL}: Pekko's in-memory journal, which serializes and reads
 * back every event). Nothing of it reaches the node's journal, its licenses or the backends. It holds at most
 * {@link #CYCLES} x {@link #EVENTS} small events in memory until the actor system ends, and it is stopped at once
 * when the node takes over ({@code TwinRole}).
 */
public final class StandbyRehearsal extends AbstractBehavior<StandbyRehearsal.Command> {

    private static final Logger LOG = LoggerFactory.getLogger(StandbyRehearsal.class);

    /** The rehearsal's journal plugin (core-actors' reference.conf): never the node's journal. */
    static final String JOURNAL = "opentmr.node.rehearsal-journal";
    /**
     * Write-and-recover cycles: enough to load and initialise what a recovery uses and compile its per-event code;
     * few, as every standby start pays for them.
     */
    public static final int CYCLES = 5;
    /** Events written, then replayed, per cycle, in writes of {@link #BATCH} as a license writes its batches. */
    static final int EVENTS = 100;
    static final int BATCH = 20;

    public sealed interface Command {
    }

    /** A cycle's table was written ({@code handles} open in it). */
    private record Written(int cycle, int handles) implements Command {
    }

    /** A cycle's table was recovered from its events. */
    private record Recovered(int cycle, int handles) implements Command {
    }

    private final ActorRef<Done> done;
    private final long startedNanos = System.nanoTime();

    /** What the rehearsal ends with: the cycles done and the handles the last recovery found (tests). */
    public record Done(int cycles, int handles) {
    }

    /** @param done told once when every cycle is done (the actor then stops) */
    public static Behavior<Command> create(ActorRef<Done> done) {
        return Behaviors.setup(context -> new StandbyRehearsal(context, done));
    }

    private StandbyRehearsal(ActorContext<Command> context, ActorRef<Done> done) {
        super(context);
        this.done = done;
        write(0);
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Written.class, w -> {
                    getContext().spawn(Table.create(false, getContext().getSelf(), w.cycle()), "recover-" + w.cycle());
                    return this;
                })
                .onMessage(Recovered.class, r -> {
                    if (r.cycle() + 1 < CYCLES) {
                        write(r.cycle() + 1);
                        return this;
                    }
                    LOG.info("Standby: the take-over's journal path rehearsed ({} cycles of {} events) in {} ms",
                            CYCLES, EVENTS, (System.nanoTime() - startedNanos) / 1_000_000);
                    done.tell(new Done(CYCLES, r.handles()));
                    return Behaviors.stopped();
                })
                .build();
    }

    private void write(int cycle) {
        getContext().spawn(Table.create(true, getContext().getSelf(), cycle), "write-" + cycle);
    }

    static PersistenceId idOf(int cycle) {
        return PersistenceId.ofUniqueId("opentmr-rehearsal-" + cycle);
    }

    /** A throw-away seat table: written in batches and stopped, or recovered and stopped. */
    private static final class Table extends EventSourcedBehavior<Table.Step, TmrLicenseEvent, SeatTable> {

        private enum Step {
            WRITE, STOP
        }

        private final boolean writing;
        private final ActorRef<Command> parent;
        private final int cycle;
        private final ActorRef<Step> self;
        private int written;

        private Table(PersistenceId id, boolean writing, ActorRef<Command> parent, int cycle, ActorRef<Step> self) {
            super(id);
            this.writing = writing;
            this.parent = parent;
            this.cycle = cycle;
            this.self = self;
        }

        static Behavior<Step> create(boolean writing, ActorRef<Command> parent, int cycle) {
            return Behaviors.setup(context -> new Table(idOf(cycle), writing, parent, cycle,
                    context.getSelf()));
        }

        @Override
        public String journalPluginId() {
            return JOURNAL;
        }

        /** No snapshot is written or read: the node's snapshot store is never asked. */
        @Override
        public Recovery recovery() {
            return Recovery.withSnapshotSelectionCriteria(SnapshotSelectionCriteria.none());
        }

        @Override
        public SeatTable emptyState() {
            return SeatTable.EMPTY;
        }

        @Override
        public boolean shouldSnapshot(SeatTable state, TmrLicenseEvent event, long sequenceNr) {
            return false;
        }

        @Override
        public CommandHandler<Step, TmrLicenseEvent, SeatTable> commandHandler() {
            return newCommandHandlerBuilder().forAnyState()
                    .onAnyCommand((state, step) -> {
                        if (step == Step.STOP) {
                            return Effect().stop();
                        }
                        List<TmrLicenseEvent> batch = new ArrayList<>(BATCH);
                        for (int i = 0; i < BATCH; i += 2, written += 2) {
                            Seat seat = new Seat(written + 1, AccessMode.USERLIMIT, 0, "127.0.0.1", "rehearsal",
                                    written, cycle, "", 0, written, "rehearsal", written);
                            batch.add(new TmrLicenseEvent.SeatGranted(seat, written));
                            // Every other seat is released again: the table keeps both kinds.
                            if (written % 4 == 0) {
                                batch.add(new TmrLicenseEvent.SeatReleased(written + 1, "RELEASE", written));
                            } else {
                                batch.add(new TmrLicenseEvent.SeatGranted(new Seat(written + 2, AccessMode.EXCLUSIVE,
                                        1, "127.0.0.1", "rehearsal", written, cycle, "", 0, written, "rehearsal",
                                        written + 1), written));
                            }
                        }
                        return Effect().persist(batch).thenRun(after -> {
                            if (written < EVENTS) {
                                self.tell(Step.WRITE);
                            } else {
                                parent.tell(new Written(cycle, after.handles()));
                                self.tell(Step.STOP);
                            }
                        });
                    });
        }

        @Override
        public EventHandler<SeatTable, TmrLicenseEvent> eventHandler() {
            return newEventHandlerBuilder().forAnyState().onAnyEvent(SeatTable::apply);
        }

        @Override
        public SignalHandler<SeatTable> signalHandler() {
            return newSignalHandlerBuilder()
                    .onSignal(RecoveryCompleted.instance(), state -> {
                        if (writing) {
                            self.tell(Step.WRITE);
                        } else {
                            parent.tell(new Recovered(cycle, state.handles()));
                            self.tell(Step.STOP);
                        }
                    })
                    .build();
        }

    }
}
