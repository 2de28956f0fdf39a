package io.opentmr.tmr.handle;

import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.tmr.VirtualContainer;
import io.opentmr.tmr.license.Seat;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * The node's handles: which handle holds a seat of which license (told by the licenses, from their seat
 * tables), and a {@link ClientHandle} actor for each one in use. A handle's actor starts on its first
 * message or, in the background and a bounded number at a time, soon after its seat was granted or its
 * seat table recovered: so idle ones are reclaimed, without 100 000 recoveries at once after a restart.
 */
public final class Handles extends AbstractBehavior<Handles.Command> {

    /** Handle actors started per background step after a restart. */
    static final int RECOVER_PER_STEP = 200;

    public sealed interface Command {
    }

    public record Granted(LicenseKey key, Seat seat) implements Command {
    }

    public record Released(long handleId) implements Command {
    }

    public record Use(long handleId, long sessionId, Message request, ActorRef<Message> replyTo) implements Command {
    }

    public record Resume(long handleId, Bytes token, long sessionId, ActorRef<Message> replyTo) implements Command {
    }

    public record Touch(long sessionId, long[] handleIds) implements Command {
    }

    private record Stopped(long handleId) implements Command {
    }

    private enum RecoverStep implements Command {
        INSTANCE
    }

    private record Known(LicenseKey key, Seat seat) {
    }

    private final ActorRef<VirtualContainer.Command> container;
    private final Clock clock;
    private final Duration cleanupTimeout;
    private final TimerScheduler<Command> timers;
    private final Map<Long, Known> known = new HashMap<>();
    private final Map<Long, ActorRef<ClientHandle.Command>> running = new HashMap<>();
    private final Deque<Long> toRecover = new ArrayDeque<>();

    public static Behavior<Command> create(ActorRef<VirtualContainer.Command> container, Clock clock,
                                           Duration cleanupTimeout) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers ->
                new Handles(context, timers, container, clock, cleanupTimeout)));
    }

    private Handles(ActorContext<Command> context, TimerScheduler<Command> timers,
                    ActorRef<VirtualContainer.Command> container, Clock clock, Duration cleanupTimeout) {
        super(context);
        this.timers = timers;
        this.container = container;
        this.clock = clock;
        this.cleanupTimeout = cleanupTimeout;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Granted.class, this::onGranted)
                .onMessage(Released.class, released -> {
                    known.remove(released.handleId());
                    return this;
                })
                .onMessage(Use.class, use -> {
                    ActorRef<ClientHandle.Command> handle = handle(use.handleId());
                    if (handle == null) {
                        use.replyTo().tell(unknown(use.handleId()));
                    } else {
                        handle.tell(new ClientHandle.Use(use.sessionId(), use.request(), use.replyTo()));
                    }
                    return this;
                })
                .onMessage(Resume.class, resume -> {
                    ActorRef<ClientHandle.Command> handle = handle(resume.handleId());
                    if (handle == null) {
                        resume.replyTo().tell(unknown(resume.handleId()));
                    } else {
                        handle.tell(new ClientHandle.Resume(resume.token(), resume.sessionId(), resume.replyTo()));
                    }
                    return this;
                })
                .onMessage(Touch.class, touch -> {
                    for (long handleId : touch.handleIds()) {
                        ActorRef<ClientHandle.Command> handle = handle(handleId);
                        if (handle != null) {
                            handle.tell(new ClientHandle.Touch(touch.sessionId()));
                        }
                    }
                    return this;
                })
                .onMessage(Stopped.class, stopped -> {
                    running.remove(stopped.handleId());
                    return this;
                })
                .onMessage(RecoverStep.class, step -> onRecoverStep())
                .build();
    }

    private Behavior<Command> onGranted(Granted granted) {
        long handleId = granted.seat().handleId();
        known.put(handleId, new Known(granted.key(), granted.seat()));
        // Every handle gets its actor soon, recovered or new, so that one whose client vanished right after
        // ACCESS is still reclaimed; in the background, a bounded number at a time.
        if (toRecover.isEmpty()) {
            timers.startSingleTimer(RecoverStep.INSTANCE, Duration.ofMillis(100));
        }
        toRecover.add(handleId);
        return this;
    }

    private Behavior<Command> onRecoverStep() {
        for (int i = 0; i < RECOVER_PER_STEP && !toRecover.isEmpty(); i++) {
            handle(toRecover.poll());
        }
        if (!toRecover.isEmpty()) {
            timers.startSingleTimer(RecoverStep.INSTANCE, Duration.ofMillis(100));
        }
        return this;
    }

    /** The handle's actor, started if needed; null for a handle no license knows. */
    private ActorRef<ClientHandle.Command> handle(long handleId) {
        ActorRef<ClientHandle.Command> handle = running.get(handleId);
        if (handle != null) {
            return handle;
        }
        Known entry = known.get(handleId);
        if (entry == null) {
            return null;
        }
        handle = getContext().spawn(ClientHandle.create(handleId, entry.key(), entry.seat(), container, clock,
                cleanupTimeout), "handle-" + Long.toUnsignedString(handleId));
        getContext().watchWith(handle, new Stopped(handleId));
        running.put(handleId, handle);
        return handle;
    }

    private static Message unknown(long handleId) {
        return new Message.Error(CmError.INVALID_HANDLE, "handle " + Long.toUnsignedString(handleId)
                + " is unknown, released or reclaimed");
    }
}
