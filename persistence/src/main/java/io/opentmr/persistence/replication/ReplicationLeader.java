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
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The active node's side of replication (README "Replication"): answers the follower's handshake, ships every group
 * commit and the catch-up from the log within a window of {@code max-in-flight} messages, and holds the writers'
 * acknowledgements (through the log's {@link SegmentedLog.CommitGate}) until the follower has the batch, or until
 * {@code ack-timeout} passes: then it runs alone ({@link Status#DEGRADED}) until the follower has caught up again.
 */
public final class ReplicationLeader extends AbstractBehavior<ToLeader> {

    private static final Logger LOG = LoggerFactory.getLogger(ReplicationLeader.class);

    /** Whether writes wait for the follower. */
    public enum Status {
        /** The follower has everything acknowledged; each batch is acknowledged once both logs have it. */
        IN_SYNC,
        /** Running alone: a batch is acknowledged once this log has it. */
        DEGRADED
    }

    /**
     * What the leader shows the rest of the node: its status and how far the follower is behind (management HTTP and
     * {@code opentmr_replication_*} metrics), and the follower's durable position, which compaction must respect
     * ({@code OpenTmrPersistence.setReplicatedPositionSupplier(monitor::replicatedPosition)}). Thread-safe, and cheap
     * to read (volatile fields); create it before the log when the log's options need it.
     */
    public static final class Monitor {
        /** {@link #behindSince}: the follower has every record of this log. */
        private static final long CAUGHT_UP = Long.MIN_VALUE;

        private volatile Status status = Status.DEGRADED;
        private volatile String reason = "no follower yet";
        /** 0 until a follower has reported: nothing is compacted that it may still need. */
        private volatile long replicated;
        private volatile long statusChanges;
        private volatile long degradations;
        private volatile SegmentedLog log;
        private volatile boolean leading;
        private volatile long epoch = -1;
        private volatile String follower = "";
        private volatile boolean followerConnected;
        private volatile long catchUps;
        private volatile long divergences;
        /**
         * When this log first had a record the follower lacks ({@link System#nanoTime}), or {@link #CAUGHT_UP}. Set by
         * the log's writer at each durable batch (through the commit gate) and by the leader, cleared by the leader.
         */
        private final AtomicLong behindSince = new AtomicLong(CAUGHT_UP);

        public Status status() {
            return status;
        }

        /** Why the status is what it is, for an operator. */
        public String reason() {
            return reason;
        }

        /** The follower's log is durable below this position (as far as the leader knows). */
        public long replicatedPosition() {
            return replicated;
        }

        /** How many times the status changed; lets a test see a flip it could not watch. */
        public long statusChanges() {
            return statusChanges;
        }

        /** How many times the leader began to run alone ({@link Status#DEGRADED}) after being in sync. */
        public long degradations() {
            return degradations;
        }

        /** Whether a leader runs with this monitor now (from its start to its stop). */
        public boolean leading() {
            return leading;
        }

        /** The epoch the leader writes under; -1 before it started. */
        public long epoch() {
            return epoch;
        }

        /** The name the current follower gave (the standby node's), {@code ""} before one connected. */
        public String follower() {
            return follower;
        }

        /**
         * Whether the follower's session runs and it acknowledged something (an append or a heartbeat) within the
         * session timeout: the active node has a standby.
         */
        public boolean followerConnected() {
            return followerConnected;
        }

        /** Next position of this log: it holds every record below it. 0 before the leader started. */
        public long logPosition() {
            SegmentedLog current = log;
            return current == null ? 0 : current.nextPosition();
        }

        /** Records of this log the follower has not acknowledged as durable. */
        public long lagRecords() {
            return Math.max(0, logPosition() - replicated);
        }

        /** How long the oldest record the follower lacks has been durable here; 0 when it has them all. */
        public double lagSeconds() {
            long since = behindSince.get();
            return since == CAUGHT_UP ? 0 : Math.max(0, System.nanoTime() - since) / 1e9;
        }

        /** Follower sessions that began behind this log: it caught up from its position. */
        public long catchUps() {
            return catchUps;
        }

        /** Handshakes that found the follower with records this log does not have: it was told to truncate them. */
        public long divergences() {
            return divergences;
        }

        /** On the log's writer: a durable batch the follower does not have yet. */
        void behind() {
            // Read first: while the follower lags, each batch costs a read, not a locked compare-and-set.
            if (behindSince.get() == CAUGHT_UP) {
                behindSince.compareAndSet(CAUGHT_UP, System.nanoTime());
            }
        }

        /** On the leader: the follower is durable below {@code durableTo}; clears the lag once it has everything. */
        void progress(long durableTo, SegmentedLog log) {
            long seen = behindSince.get();
            if (durableTo >= log.nextPosition()) {
                // A batch published after the read above keeps its mark unless it raced this clear; the next tick
                // marks it again.
                behindSince.compareAndSet(seen, CAUGHT_UP);
            } else if (seen == CAUGHT_UP) {
                behindSince.compareAndSet(CAUGHT_UP, System.nanoTime());
            }
        }
    }

    /** A durable batch whose writers wait for the follower. */
    private record Committed(long first, long next, CompletableFuture<Void> done) implements ToLeader {
    }

    private enum Tick implements ToLeader {
        INSTANCE
    }

    private record Waiting(long next, CompletableFuture<Void> done, long since) {
    }

    /** A piece of a chunk, numbered when it is sent. */
    private record Piece(long from, boolean last, byte[] bytes) {
    }

    private final SegmentedLog log;
    private final ReplicationSettings settings;
    private final Monitor monitor;
    private final String name;
    /** Batches whose writers wait, oldest first. */
    private final Deque<Waiting> waiting = new ArrayDeque<>();
    /** Pieces of a chunk larger than a message, not sent yet because the window was full. */
    private final Deque<Piece> unsent = new ArrayDeque<>();

    private ActorRef<ToFollower> follower;
    private String followerName;
    private long session;
    private long sessionStart;
    /** The last Hello answered Diverged: the follower repeats it every hello-interval until it hears back. */
    private Hello lastDiverged;
    /** Next position to read from the log for the follower. */
    private long shippedTo;
    private long nextSeq;
    private long ackedSeq = -1;
    /** The follower's log is durable below this. */
    private long durableTo;
    private long lastSent;
    /** When the follower last acknowledged something (an append or a heartbeat). */
    private long lastHeard;

    /**
     * @param name a name for the log lines (the node's)
     */
    public static Behavior<ToLeader> create(SegmentedLog log, ReplicationSettings settings, Monitor monitor,
            String name) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(Tick.INSTANCE, settings.tick());
            return new ReplicationLeader(context, log, settings, monitor, name);
        }));
    }

    private ReplicationLeader(ActorContext<ToLeader> context, SegmentedLog log, ReplicationSettings settings,
            Monitor monitor, String name) {
        super(context);
        this.log = log;
        this.settings = settings;
        this.monitor = monitor;
        this.name = name;
        ActorRef<ToLeader> self = context.getSelf();
        monitor.log = log;
        monitor.epoch = log.currentEpoch();
        monitor.leading = true;
        monitor.progress(durableTo, log);
        log.setCommitGate((first, next) -> gate(self, first, next));
        LOG.warn("replication leader {}: replication degraded: no follower yet; writes are acknowledged by this log "
                + "alone", name);
    }

    /** On the log's writer thread: hold the batch only while in sync; never block. */
    private CompletionStage<?> gate(ActorRef<ToLeader> self, long first, long next) {
        monitor.behind();
        if (monitor.status != Status.IN_SYNC) {
            return CompletableFuture.completedFuture(null);
        }
        CompletableFuture<Void> done = new CompletableFuture<>();
        self.tell(new Committed(first, next, done));
        return done;
    }

    @Override
    public Receive<ToLeader> createReceive() {
        return newReceiveBuilder()
                .onMessage(Hello.class, this::onHello)
                .onMessage(Appended.class, this::onAppended)
                .onMessage(Committed.class, this::onCommitted)
                .onMessageEquals(Tick.INSTANCE, this::onTick)
                .onSignal(PostStop.class, signal -> onStop())
                .build();
    }

    private Behavior<ToLeader> onHello(Hello hello) {
        long epoch = log.currentEpoch();
        if (hello.lastEpoch() > epoch) {
            String reason = "follower " + hello.name() + " has records of epoch " + hello.lastEpoch()
                    + ", newer than this leader's epoch " + epoch + ": this node must not lead";
            LOG.error("replication leader {}: {}", name, reason);
            hello.follower().tell(new Refused(epoch, reason));
            return this;
        }
        Handshake.Answer answer = Handshake.answer(log, hello.next(), hello.lastEpoch());
        if (!answer.match()) {
            boolean repeated = lastDiverged != null && lastDiverged.follower().equals(hello.follower())
                    && lastDiverged.next() == hello.next() && lastDiverged.lastEpoch() == hello.lastEpoch();
            if (!repeated) {
                // One divergence however many times the follower said Hello before the answer reached it.
                LOG.info("replication leader {}: follower {} at position {} (epoch {}) diverged; it truncates below "
                        + "{} (epoch {} ends there here)", name, hello.name(), hello.next(), hello.lastEpoch(),
                        answer.end(), answer.epoch());
                monitor.divergences++;
                lastDiverged = hello;
            }
            // After the count: whoever hears the answer sees the divergence counted.
            hello.follower().tell(new Diverged(epoch, answer.epoch(), answer.end()));
            return this;
        }
        if (hello.follower().equals(follower) && hello.next() == sessionStart && nextSeq == 0) {
            // A Hello repeated while the first was on its way (the follower asks every hello-interval until it hears
            // back): same answer, same session, so the follower does not start over.
            follower.tell(new Welcome(getContext().getSelf(), session, epoch, sessionStart));
            return this;
        }
        follower = hello.follower();
        followerName = hello.name();
        sessionStart = hello.next();
        session = ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE);
        shippedTo = hello.next();
        nextSeq = 0;
        ackedSeq = -1;
        unsent.clear();
        durableTo = hello.next();
        monitor.replicated = durableTo;
        monitor.follower = followerName;
        monitor.followerConnected = true;
        lastHeard = now();
        if (hello.next() < log.nextPosition()) {
            monitor.catchUps++;
        }
        LOG.info("replication leader {}: follower {} connected at position {} (this log is at {}), session {}", name,
                followerName, hello.next(), log.nextPosition(), session);
        follower.tell(new Welcome(getContext().getSelf(), session, epoch, hello.next()));
        lastSent = now();
        releaseDurable();
        pump();
        inSyncIfCaughtUp();
        monitor.progress(durableTo, log);
        return this;
    }

    private void inSyncIfCaughtUp() {
        if (monitor.status == Status.DEGRADED && waiting.isEmpty() && durableTo >= log.nextPosition()) {
            setStatus(Status.IN_SYNC, "follower " + followerName + " has every record, below position " + durableTo);
        }
    }

    private Behavior<ToLeader> onAppended(Appended ack) {
        if (follower == null || ack.session() != session) {
            return this;
        }
        lastHeard = now();
        monitor.followerConnected = true;
        ackedSeq = Math.max(ackedSeq, ack.seq());
        if (ack.durableNext() > durableTo) {
            durableTo = ack.durableNext();
            monitor.replicated = durableTo;
        }
        releaseDurable();
        pump();
        inSyncIfCaughtUp();
        monitor.progress(durableTo, log);
        return this;
    }

    private Behavior<ToLeader> onCommitted(Committed c) {
        if (monitor.status != Status.IN_SYNC || durableTo >= c.next()) {
            // Degraded since the gate saw it in sync, or the follower already has it (catch-up read it).
            c.done().complete(null);
            return this;
        }
        waiting.addLast(new Waiting(c.next(), c.done(), now()));
        pump();
        return this;
    }

    private Behavior<ToLeader> onTick() {
        long now = now();
        Waiting oldest = waiting.peekFirst();
        if (oldest != null && now - oldest.since() > settings.ackTimeout().toNanos()) {
            setStatus(Status.DEGRADED, "follower " + followerName + " did not acknowledge position " + (oldest.next()
                    - 1) + " within " + settings.ackTimeout().toMillis() + " ms (it has " + durableTo + ")");
            waiting.forEach(w -> w.done().complete(null));
            waiting.clear();
        }
        if (follower != null) {
            monitor.followerConnected = now - lastHeard <= settings.sessionTimeout().toNanos();
            pump();
            if (now - lastSent >= settings.heartbeatInterval().toNanos()) {
                follower.tell(new Heartbeat(session, nextSeq));
                lastSent = now;
            }
        }
        monitor.progress(durableTo, log);
        return this;
    }

    private Behavior<ToLeader> onStop() {
        log.setCommitGate(null);
        // Durable here; nobody is left to wait for the follower.
        waiting.forEach(w -> w.done().complete(null));
        waiting.clear();
        monitor.status = Status.DEGRADED;
        monitor.reason = "replication leader stopped";
        monitor.leading = false;
        monitor.followerConnected = false;
        return this;
    }

    /** Completes the batches the follower has now. */
    private void releaseDurable() {
        while (!waiting.isEmpty() && waiting.peekFirst().next() <= durableTo) {
            waiting.removeFirst().done().complete(null);
        }
    }

    /** Sends what the window allows: pieces left over, then more of the log. */
    private void pump() {
        if (follower == null) {
            return;
        }
        while (inFlight() < settings.maxInFlight()) {
            Piece piece = unsent.pollFirst();
            if (piece == null) {
                if (shippedTo >= log.nextPosition()) {
                    return;
                }
                SegmentedLog.Chunk chunk = log.readChunk(shippedTo, settings.maxMessageBytes());
                if (chunk.isEmpty()) {
                    return;
                }
                split(chunk);
                shippedTo = chunk.next();
                continue;
            }
            follower.tell(new Append(session, nextSeq++, piece.from(), piece.last(), piece.bytes()));
            lastSent = now();
        }
    }

    private long inFlight() {
        return nextSeq - 1 - ackedSeq;
    }

    /** Cuts a chunk into pieces of at most a message. */
    private void split(SegmentedLog.Chunk chunk) {
        byte[] bytes = chunk.bytes();
        int size = settings.maxMessageBytes();
        for (int at = 0; at < bytes.length; at += size) {
            int end = Math.min(bytes.length, at + size);
            byte[] piece = at == 0 && end == bytes.length ? bytes : Arrays.copyOfRange(bytes, at, end);
            unsent.addLast(new Piece(chunk.from(), end == bytes.length, piece));
        }
    }

    private void setStatus(Status status, String reason) {
        monitor.reason = reason;
        monitor.status = status;
        monitor.statusChanges++;
        if (status == Status.DEGRADED) {
            monitor.degradations++;
            LOG.warn("replication leader {}: replication degraded: {}; writes are acknowledged by this log alone "
                    + "until the follower catches up", name, reason);
        } else {
            LOG.info("replication leader {}: replication in sync: {}; writes wait for both logs again", name, reason);
        }
    }

    private static long now() {
        return System.nanoTime();
    }
}
