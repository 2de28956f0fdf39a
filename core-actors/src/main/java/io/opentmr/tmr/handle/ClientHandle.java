package io.opentmr.tmr.handle;

import io.opentmr.CborSerializable;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.tmr.VirtualContainer;
import io.opentmr.tmr.license.Seat;
import io.opentmr.tmr.license.TmrLicense;
import java.time.Clock;
import java.time.Duration;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.RecoveryCompleted;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.Effect;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;
import org.apache.pekko.persistence.typed.javadsl.SignalHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client handle on the node: who owns it (its session), its resume token's digest, when it was last
 * used. Event-sourced, so a restarted or taken-over node knows it; recovered when first needed, or in the
 * background by {@link Handles} so that idle handles are still reclaimed. The seat itself is the
 * {@link TmrLicense}'s: a handle whose own journal lacks it (a crash between the seat's grant and this
 * journal's write) is rebuilt from the seat.
 */
public final class ClientHandle extends EventSourcedBehavior<ClientHandle.Command, ClientHandle.Event, ClientHandle.State> {

    private static final Logger LOG = LoggerFactory.getLogger(ClientHandle.class);

    public sealed interface Command {
    }

    /** A request of the owning session (RELEASE, GET_INFO, CRYPT, DECREMENT_UNITS). */
    public record Use(long sessionId, Message request, ActorRef<Message> replyTo) implements Command {
    }

    public record Resume(Bytes token, long sessionId, ActorRef<Message> replyTo) implements Command {
    }

    /** The owning session is alive. */
    public record Touch(long sessionId) implements Command {
    }

    enum Sweep implements Command {
        INSTANCE
    }

    public sealed interface Event extends CborSerializable {
    }

    public record Opened(Seat seat, LicenseKey key, long atMillis) implements Event {
    }

    public record Resumed(long sessionId, long atMillis) implements Event {
    }

    public record Active(long atMillis) implements Event {
    }

    public record Closed(String reason, long atMillis) implements Event {
    }

    /** Null fields until opened. */
    public record State(Seat seat, LicenseKey key, long sessionId, long lastActivity, long persistedActivity,
                        boolean closed) {
        static final State EMPTY = new State(null, null, 0, 0, 0, false);

        State apply(Event event) {
            if (event instanceof Opened opened) {
                return new State(opened.seat(), opened.key(), opened.seat().sessionId(), opened.atMillis(),
                        opened.atMillis(), false);
            }
            if (event instanceof Resumed resumed) {
                return new State(seat, key, resumed.sessionId(), resumed.atMillis(), resumed.atMillis(), closed);
            }
            if (event instanceof Active active) {
                return new State(seat, key, sessionId, Math.max(lastActivity, active.atMillis()), active.atMillis(),
                        closed);
            }
            return new State(seat, key, sessionId, lastActivity, persistedActivity, true);
        }

        State touched(long now) {
            return new State(seat, key, sessionId, now, persistedActivity, closed);
        }
    }

    private final long handleId;
    private final LicenseKey key;
    private final Seat seat;
    private final ActorRef<VirtualContainer.Command> container;
    private final Clock clock;
    private final Duration cleanupTimeout;
    private final TimerScheduler<Command> timers;
    private State live;

    public static Behavior<Command> create(long handleId, LicenseKey key, Seat seat,
                                           ActorRef<VirtualContainer.Command> container, Clock clock,
                                           Duration cleanupTimeout) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers ->
                new ClientHandle(context, timers, handleId, key, seat, container, clock, cleanupTimeout)));
    }

    public static PersistenceId persistenceId(long handleId) {
        return PersistenceId.of("tmr-handle", Long.toUnsignedString(handleId), "|");
    }

    private ClientHandle(ActorContext<Command> context, TimerScheduler<Command> timers, long handleId, LicenseKey key,
                         Seat seat, ActorRef<VirtualContainer.Command> container, Clock clock,
                         Duration cleanupTimeout) {
        super(persistenceId(handleId));
        this.timers = timers;
        this.handleId = handleId;
        this.key = key;
        this.seat = seat;
        this.container = container;
        this.clock = clock;
        this.cleanupTimeout = cleanupTimeout;
    }

    @Override
    public State emptyState() {
        return State.EMPTY;
    }

    @Override
    public EventHandler<State, Event> eventHandler() {
        return newEventHandlerBuilder().forAnyState().onAnyEvent(State::apply);
    }

    @Override
    public SignalHandler<State> signalHandler() {
        return newSignalHandlerBuilder()
                .onSignal(RecoveryCompleted.instance(), state -> {
                    // A handle opened just now has no events yet: its seat (granted first) opens it at the first
                    // command, the same path that rebuilds one whose journal write a crash lost.
                    timers.startTimerWithFixedDelay(Sweep.INSTANCE, cleanupTimeout.dividedBy(4));
                })
                .build();
    }

    @Override
    public CommandHandler<Command, Event, State> commandHandler() {
        return newCommandHandlerBuilder().forAnyState()
                .onCommand(Use.class, this::onUse)
                .onCommand(Resume.class, this::onResume)
                .onCommand(Touch.class, this::onTouch)
                .onCommand(Sweep.class, this::onSweep)
                .build();
    }

    private Effect<Event, State> onUse(State state, Use use) {
        State current = opened(state);
        if (current.seat() == null || current.closed()) {
            use.replyTo().tell(new Message.Error(CmError.INVALID_HANDLE, "handle " + Long.toUnsignedString(handleId)
                    + " is unknown, released or reclaimed"));
            return persistOpenedIfMissing(state, Effect().stop());
        }
        if (current.sessionId() != use.sessionId()) {
            use.replyTo().tell(new Message.Error(CmError.INVALID_HANDLE, "handle " + Long.toUnsignedString(handleId)
                    + " belongs to another session; RESUME it with its token"));
            return persistOpenedIfMissing(state, Effect().none());
        }
        Message request = use.request();
        TmrLicense.Command command;
        if (request instanceof Message.Release) {
            Closed closed = new Closed("released", clock.millis());
            return persistAll(state, closed, after -> container.tell(new VirtualContainer.ToLicense(current.key(),
                    new TmrLicense.Release(handleId, "released by its client", use.replyTo()))));
        } else if (request instanceof Message.GetInfo) {
            command = new TmrLicense.GetInfo(handleId, use.replyTo());
        } else if (request instanceof Message.Crypt crypt) {
            command = new TmrLicense.Crypt(handleId, crypt.direction(), crypt.encryptionCode(), crypt.data(),
                    use.replyTo());
        } else if (request instanceof Message.DecrementUnits units) {
            command = new TmrLicense.DecrementUnits(handleId, units.operationId(), units.amount(), use.replyTo());
        } else {
            use.replyTo().tell(new Message.Error(CmError.INVALID_PARAMETER, request.type() + " is not a handle request"));
            return persistOpenedIfMissing(state, Effect().none());
        }
        container.tell(new VirtualContainer.ToLicense(current.key(), command));
        return touch(state, current);
    }

    private Effect<Event, State> onResume(State state, Resume resume) {
        State current = opened(state);
        if (current.seat() == null || current.closed()) {
            resume.replyTo().tell(new Message.Error(CmError.INVALID_HANDLE, "handle "
                    + Long.toUnsignedString(handleId) + " is unknown, released or reclaimed"));
            return persistOpenedIfMissing(state, Effect().stop());
        }
        if (!current.seat().tokenMatches(resume.token().toArray())) {
            LOG.warn("RESUME of handle {} with a wrong token refused (session {})", Long.toUnsignedString(handleId),
                    resume.sessionId());
            resume.replyTo().tell(new Message.Error(CmError.INVALID_HANDLE, "wrong resume token for handle "
                    + Long.toUnsignedString(handleId)));
            return persistOpenedIfMissing(state, Effect().none());
        }
        return persistAll(state, new Resumed(resume.sessionId(), clock.millis()), after -> resume.replyTo().tell(
                new Message.Ok()));
    }

    private Effect<Event, State> onTouch(State state, Touch touch) {
        State current = opened(state);
        if (current.seat() == null || current.closed() || current.sessionId() != touch.sessionId()) {
            return persistOpenedIfMissing(state, Effect().none());
        }
        return touch(state, current);
    }

    /** Activity is kept in memory and journaled at most every quarter of the cleanup timeout. */
    private Effect<Event, State> touch(State state, State current) {
        long now = clock.millis();
        live = current.touched(now);
        if (now - current.persistedActivity() >= cleanupTimeout.toMillis() / 4) {
            return persistAll(state, new Active(now), after -> { });
        }
        return persistOpenedIfMissing(state, Effect().none());
    }

    private Effect<Event, State> onSweep(State state, Sweep sweep) {
        State current = opened(state);
        if (current.seat() == null || current.closed()) {
            return Effect().stop();
        }
        long idle = clock.millis() - Math.max(current.lastActivity(), live == null ? 0 : live.lastActivity());
        if (idle < cleanupTimeout.toMillis()) {
            return Effect().none();
        }
        LOG.info("Handle {} of {}@{} on {} reclaimed: no traffic for {} s", Long.toUnsignedString(handleId),
                current.seat().user(), current.seat().station(), current.key(), idle / 1000);
        return persistAll(state, new Closed("reclaimed", clock.millis()), after -> container.tell(
                new VirtualContainer.ToLicense(current.key(), new TmrLicense.Release(handleId,
                        "reclaimed after " + cleanupTimeout, null))));
    }

    /** The state with the seat put in when this journal lacks the handle, and with in-memory activity. */
    private State opened(State state) {
        State base = state.seat() == null && seat != null ? state.apply(new Opened(seat, key, seat.grantedAtMillis())) : state;
        if (live != null && live.lastActivity() > base.lastActivity() && base.seat() != null) {
            return base.touched(live.lastActivity());
        }
        return base;
    }

    private Effect<Event, State> persistOpenedIfMissing(State state, Effect<Event, State> otherwise) {
        if (state.seat() == null && seat != null) {
            return Effect().persist(new Opened(seat, key, seat.grantedAtMillis()));
        }
        return otherwise;
    }

    private Effect<Event, State> persistAll(State state, Event event, java.util.function.Consumer<State> then) {
        java.util.List<Event> events = state.seat() == null && seat != null
                ? java.util.List.of(new Opened(seat, key, seat.grantedAtMillis()), event) : java.util.List.of(event);
        if (event instanceof Closed) {
            return Effect().persist(events).thenRun(then::accept).thenStop();
        }
        return Effect().persist(events).thenRun(then::accept);
    }
}
