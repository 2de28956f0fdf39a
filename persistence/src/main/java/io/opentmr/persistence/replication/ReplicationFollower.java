package io.opentmr.persistence.replication;

import io.opentmr.persistence.log.SegmentedLog;
import io.opentmr.persistence.replication.ReplicationProtocol.Append;
import io.opentmr.persistence.replication.ReplicationProtocol.Appended;
import io.opentmr.persistence.replication.ReplicationProtocol.Diverged;
import io.opentmr.persistence.replication.ReplicationProtocol.Heartbeat;
import io.opentmr.persistence.replication.ReplicationProtocol.Hello;
import io.opentmr.persistence.replication.ReplicationProtocol.Refused;
import io.opentmr.persistence.replication.ReplicationProtocol.ToFollower;
import io.opentmr.persistence.replication.ReplicationProtocol.ToLeader;
import io.opentmr.persistence.replication.ReplicationProtocol.Welcome;
import java.io.ByteArrayOutputStream;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The standby's side of replication (README "Replication"): says Hello to the leader until it has a session,
 * truncates a suffix the leader does not have, appends what the leader sends at the leader's positions (the log's
 * writer fsyncs what is queued at once) and acknowledges each message with its durable position. Any doubt (a lost
 * message, a refused chunk, silence for {@code session-timeout}) ends the session and starts a new handshake; the log
 * is consistent at every step, so a new handshake is always safe.
 */
public final class ReplicationFollower extends AbstractBehavior<ToFollower> {

    private static final Logger LOG = LoggerFactory.getLogger(ReplicationFollower.class);

    /**
     * What the follower shows the rest of the node (management HTTP, {@code opentmr_replication_*} metrics).
     * Thread-safe; written by the follower only.
     */
    public static final class Monitor {
        private volatile boolean following;
        private volatile String leader = "";
        private volatile long leaderEpoch = -1;
        private volatile long sessions;
        private volatile long truncations;
        private volatile long truncatedRecords;
        private volatile SegmentedLog log;

        /** Whether a session with the leader runs now. */
        public boolean following() {
            return following;
        }

        /** The leader's actor path of the current (or last) session, {@code ""} before the first. */
        public String leader() {
            return leader;
        }

        /** The epoch of the current (or last) session's leader; -1 before the first. */
        public long leaderEpoch() {
            return leaderEpoch;
        }

        /** Sessions with a leader begun (a handshake answered Welcome). */
        public long sessions() {
            return sessions;
        }

        /** Suffixes of this log cut because the leader did not have them (records of a dead epoch). */
        public long truncations() {
            return truncations;
        }

        /** Records those truncations removed. */
        public long truncatedRecords() {
            return truncatedRecords;
        }

        /** Next position of this log (it holds every record below it); 0 before the follower started. */
        public long logPosition() {
            SegmentedLog current = log;
            return current == null ? 0 : current.nextPosition();
        }
    }

    private enum Tick implements ToFollower {
        INSTANCE
    }

    /** A chunk of a session is durable (or was refused). */
    private record Written(long session, long seq, long durableNext, Throwable failure) implements ToFollower {
    }

    /** A truncation asked for by the handshake is done (or failed). */
    private record Truncated(long next, Throwable failure) implements ToFollower {
    }

    private final SegmentedLog log;
    private final ReplicationSettings settings;
    private final String leaderPath;
    private final String name;
    private final java.util.function.Consumer<Boolean> following;
    private final Monitor monitor;
    private final Runnable beforeTruncation;

    /** Null while there is no session. */
    private ActorRef<ToLeader> leader;
    private long session;
    private long expectedSeq;
    private long lastHeard;
    private long lastHello;
    private boolean truncating;
    /** Pieces of the chunk being received, and where it starts. */
    private final ByteArrayOutputStream assembly = new ByteArrayOutputStream();
    private long assemblyFrom = -1;
    /** The last acknowledgement of this session, repeated as the answer to a heartbeat. */
    private long ackedSeq = -1;
    private long ackedDurable;

    /**
     * @param leaderPath the leader actor's path, e.g. {@code pekko://opentmr@10.0.0.1:25520/user/replication-leader}
     * @param name       this node's name, for the leader's log lines
     */
    public static Behavior<ToFollower> create(SegmentedLog log, ReplicationSettings settings, String leaderPath,
            String name) {
        return create(log, settings, leaderPath, name, following -> { });
    }

    /**
     * As {@link #create(SegmentedLog, ReplicationSettings, String, String)}, telling {@code following} when a session
     * with the leader starts ({@code true}) and ends ({@code false}): whether the twin leads now, as far as this
     * follower knows. Called on the follower's thread; must not block.
     */
    public static Behavior<ToFollower> create(SegmentedLog log, ReplicationSettings settings, String leaderPath,
            String name, java.util.function.Consumer<Boolean> following) {
        return create(log, settings, leaderPath, name, following, new Monitor());
    }

    /**
     * As {@link #create(SegmentedLog, ReplicationSettings, String, String, java.util.function.Consumer)}, showing its
     * sessions in {@code monitor}.
     */
    public static Behavior<ToFollower> create(SegmentedLog log, ReplicationSettings settings, String leaderPath,
            String name, java.util.function.Consumer<Boolean> following, Monitor monitor) {
        return create(log, settings, leaderPath, name, following, monitor, () -> { });
    }

    /**
     * As {@link #create(SegmentedLog, ReplicationSettings, String, String, java.util.function.Consumer, Monitor)},
     * running {@code beforeTruncation} on the follower's thread before this log is cut back to the leader's (the node
     * sets its snapshots aside there); if it throws, the log is not cut and the follower stops.
     */
    public static Behavior<ToFollower> create(SegmentedLog log, ReplicationSettings settings, String leaderPath,
            String name, java.util.function.Consumer<Boolean> following, Monitor monitor, Runnable beforeTruncation) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(Tick.INSTANCE, settings.tick());
            ReplicationFollower follower = new ReplicationFollower(context, log, settings, leaderPath, name,
                    following, monitor, beforeTruncation);
            follower.hello();
            return follower;
        }));
    }

    private ReplicationFollower(ActorContext<ToFollower> context, SegmentedLog log, ReplicationSettings settings,
            String leaderPath, String name, java.util.function.Consumer<Boolean> following, Monitor monitor,
            Runnable beforeTruncation) {
        super(context);
        this.following = following;
        this.monitor = monitor;
        this.beforeTruncation = beforeTruncation;
        monitor.log = log;
        this.log = log;
        this.settings = settings;
        this.leaderPath = leaderPath;
        this.name = name;
    }

    @Override
    public Receive<ToFollower> createReceive() {
        return newReceiveBuilder()
                .onMessage(Welcome.class, this::onWelcome)
                .onMessage(Diverged.class, this::onDiverged)
                .onMessage(Refused.class, this::onRefused)
                .onMessage(Append.class, this::onAppend)
                .onMessage(Heartbeat.class, this::onHeartbeat)
                .onMessage(Written.class, this::onWritten)
                .onMessage(Truncated.class, this::onTruncated)
                .onMessageEquals(Tick.INSTANCE, this::onTick)
                .build();
    }

    private void hello() {
        lastHello = now();
        Hello hello = new Hello(getContext().getSelf(), name, log.nextPosition(), log.lastEpoch());
        Adapter.toClassic(getContext().getSystem()).actorSelection(leaderPath)
                .tell(hello, org.apache.pekko.actor.ActorRef.noSender());
    }

    /** Ends the session (if any) and asks again. */
    private void restart(String why) {
        if (leader != null) {
            LOG.info("replication follower {}: session {} ended: {}; new handshake from position {}", name, session,
                    why, log.nextPosition());
            following.accept(false);
            monitor.following = false;
        }
        leader = null;
        session = 0;
        assembly.reset();
        assemblyFrom = -1;
        if (!truncating) {
            hello();
        }
    }

    private Behavior<ToFollower> onWelcome(Welcome w) {
        if (truncating) {
            return this;
        }
        long mine = log.lastEpoch();
        if (w.leaderEpoch() < mine) {
            LOG.error("replication follower {}: refusing leader {} of epoch {}: this log has records of epoch {}", name,
                    w.leader().path(), w.leaderEpoch(), mine);
            return this;
        }
        if (w.start() != log.nextPosition()) {
            // An answer to an older Hello: the log moved since.
            restart("welcome at position " + w.start() + " but the log is at " + log.nextPosition());
            return this;
        }
        leader = w.leader();
        session = w.session();
        expectedSeq = 0;
        lastHeard = now();
        assembly.reset();
        assemblyFrom = -1;
        ackedSeq = -1;
        ackedDurable = w.start();
        monitor.leader = w.leader().path().toString();
        monitor.leaderEpoch = w.leaderEpoch();
        monitor.sessions++;
        monitor.following = true;
        LOG.info("replication follower {}: following {} (epoch {}) from position {}, session {}", name,
                w.leader().path(), w.leaderEpoch(), w.start(), session);
        following.accept(true);
        return this;
    }

    private Behavior<ToFollower> onDiverged(Diverged d) {
        if (leader != null || truncating) {
            return this;
        }
        long at = Handshake.truncationPoint(log, d.epoch(), d.end());
        try {
            // Snapshots stand for the events before them, and those the cut removes may be among them.
            beforeTruncation.run();
        } catch (RuntimeException e) {
            LOG.error("replication follower {}: cannot set the snapshots aside before the log is cut back, so the "
                    + "log stays as it is and replication stops until this node restarts: {}", name, e.toString());
            return Behaviors.stopped();
        }
        LOG.warn("replication follower {}: this log has records the leader (epoch {}) does not: truncating from "
                + "position {} (log at {}, last epoch {})", name, d.leaderEpoch(), at, log.nextPosition(),
                log.lastEpoch());
        truncating = true;
        monitor.truncations++;
        monitor.truncatedRecords += Math.max(0, log.nextPosition() - at);
        getContext().pipeToSelf(log.truncateFrom(at), (next, failure) -> new Truncated(next == null ? -1 : next,
                failure));
        return this;
    }

    private Behavior<ToFollower> onTruncated(Truncated t) {
        truncating = false;
        if (t.failure() != null) {
            // The log refuses writes now; the node must restart it (it reopens consistent).
            LOG.error("replication follower {}: truncation failed; replication stops until the log is reopened: {}",
                    name, t.failure().toString());
            return Behaviors.stopped();
        }
        hello();
        return this;
    }

    private Behavior<ToFollower> onRefused(Refused r) {
        LOG.warn("replication follower {}: leader of epoch {} refused: {}", name, r.leaderEpoch(), r.reason());
        return this;
    }

    private Behavior<ToFollower> onAppend(Append a) {
        if (leader == null || a.session() != session) {
            return this;
        }
        lastHeard = now();
        if (a.seq() != expectedSeq) {
            restart("message " + a.seq() + " where " + expectedSeq + " was expected");
            return this;
        }
        expectedSeq++;
        if (assemblyFrom < 0) {
            assemblyFrom = a.from();
        }
        assembly.writeBytes(a.bytes());
        if (!a.last()) {
            acknowledge(a.seq(), log.nextPosition());
            return this;
        }
        byte[] records = assembly.toByteArray();
        long from = assemblyFrom;
        assembly.reset();
        assemblyFrom = -1;
        long s = session;
        long seq = a.seq();
        getContext().pipeToSelf(log.appendReplicated(from, records),
                (next, failure) -> new Written(s, seq, next == null ? -1 : next, failure));
        return this;
    }

    private Behavior<ToFollower> onWritten(Written w) {
        if (leader == null || w.session() != session) {
            return this;
        }
        if (w.failure() != null) {
            restart("append refused: " + w.failure().getMessage());
            return this;
        }
        acknowledge(w.seq(), w.durableNext());
        return this;
    }

    private void acknowledge(long seq, long durableNext) {
        ackedSeq = seq;
        ackedDurable = durableNext;
        leader.tell(new Appended(session, seq, durableNext));
    }

    private Behavior<ToFollower> onHeartbeat(Heartbeat h) {
        if (leader == null || h.session() != session) {
            return this;
        }
        lastHeard = now();
        if (h.nextSeq() > expectedSeq) {
            restart("messages " + expectedSeq + ".." + (h.nextSeq() - 1) + " were lost");
            return this;
        }
        // The last acknowledgement again: the leader learns that this standby is there while nothing is written.
        leader.tell(new Appended(session, ackedSeq, ackedDurable));
        return this;
    }

    private Behavior<ToFollower> onTick() {
        long now = now();
        if (leader != null) {
            if (now - lastHeard > settings.sessionTimeout().toNanos()) {
                restart("nothing heard from the leader for " + settings.sessionTimeout().toMillis() + " ms");
            }
        } else if (!truncating && now - lastHello >= settings.helloInterval().toNanos()) {
            hello();
        }
        return this;
    }

    private static long now() {
        return System.nanoTime();
    }
}
