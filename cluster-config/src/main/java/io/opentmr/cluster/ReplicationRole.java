package io.opentmr.cluster;

import io.opentmr.persistence.OpenTmrPersistence;
import io.opentmr.persistence.log.SegmentedLog;
import io.opentmr.persistence.replication.ReplicationFollower;
import io.opentmr.persistence.replication.ReplicationLeader;
import io.opentmr.persistence.replication.ReplicationSettings;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The journal's side of a twin node's role (persistence README "Replication"): a standby {@link Follow follows}
 * the twin's log; the active {@link Lead leads}: it stops following, waits until the log's writer has carried out
 * everything the follower queued on it (appends, a truncation), stamps every record with the lease's epoch and
 * replicates its log to the twin. Only then is the lead granted, so the persistent actors recover from a log that
 * no longer changes under them. A lease whose epoch is older than the log's newest record is refused: its records
 * would break the rule that a leader's epoch is the newest (backends that lost their data grant old epochs again).
 * A node leads at most once per actor system: losing the lease restarts the node ({@link TwinNode}), so there is no
 * way back to following here.
 */
final class ReplicationRole extends AbstractBehavior<ReplicationRole.Command> {

    private static final Logger LOG = LoggerFactory.getLogger(ReplicationRole.class);

    /** The leader's actor name under this one: {@code /system/replication/leader}. */
    static final String LEADER = "leader";
    /** This actor's name as a system actor. */
    static final String NAME = "replication";
    /**
     * How long the lead waits for the standby's seat tables: they are offered at once unless the standby is still
     * reading its log ({@link StandbyTail#FINISH_BOUND}); past it the licenses replay their journal (a late offer is
     * still a table of this log, and only a recovery that has not started takes it).
     */
    static final Duration HAND_OVER_BOUND = Duration.ofSeconds(3);

    sealed interface Command {
    }

    /**
     * Follow the twin's leader at {@code leaderPath}; ignored once leading. {@code following} hears whether a session
     * with it runs (the twin leads), and {@code false} once this node leads.
     */
    record Follow(String leaderPath, java.util.function.Consumer<Boolean> following) implements Command {
    }

    /** Lead under {@code epoch}; {@code done} completes once the journal may be written. */
    record Lead(long epoch, CompletableFuture<Void> done) implements Command {
    }

    private record FollowerStopped(Lead lead) implements Command {
    }

    /** The standby's seat tables are handed over (or the bound passed): the lead is granted. */
    private record TablesHandedOver(Lead lead, SegmentedLog log) implements Command {
    }

    /** The log's writer has carried out everything queued before the lead (or failed). */
    private record Drained(Lead lead, SegmentedLog log, Throwable failure) implements Command {
    }

    private final ReplicationSettings settings;
    private final String name;
    private final ReplicationLeader.Monitor monitor;
    private final ReplicationFollower.Monitor followerMonitor;
    private ActorRef<?> follower;
    /** The standby's fold of the licenses' seat tables; null unless following. */
    private ActorRef<StandbyTail.Command> tail;
    private java.util.function.Consumer<Boolean> following = ignored -> { };
    private boolean leading;

    static Behavior<Command> create(ReplicationSettings settings, String name, TwinReplication monitors) {
        return Behaviors.setup(context -> new ReplicationRole(context, settings, name, monitors.leader(),
                monitors.follower()));
    }

    private ReplicationRole(ActorContext<Command> context, ReplicationSettings settings, String name,
                            ReplicationLeader.Monitor monitor, ReplicationFollower.Monitor followerMonitor) {
        super(context);
        this.settings = settings;
        this.name = name;
        this.monitor = monitor;
        this.followerMonitor = followerMonitor;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Follow.class, this::onFollow)
                .onMessage(Lead.class, this::onLead)
                .onMessage(FollowerStopped.class, stopped -> drain(stopped.lead()))
                .onMessage(Drained.class, this::onDrained)
                .onMessage(TablesHandedOver.class, handed -> startLeader(handed.lead(), handed.log()))
                .build();
    }

    private Behavior<Command> onFollow(Follow follow) {
        if (leading || follower != null) {
            return this;
        }
        try {
            OpenTmrPersistence persistence = OpenTmrPersistence.get(getContext().getSystem());
            SegmentedLog log = persistence.log();
            following = follow.following();
            ActorRef<StandbyTail.Command> folding = getContext().spawn(StandbyTail.create(log,
                    persistence.warmStates()), "standby-tail", DispatcherSelector.blocking());
            tail = folding;
            follower = getContext().spawn(ReplicationFollower.create(log, settings, follow.leaderPath(), name,
                    following, followerMonitor, () -> {
                        try {
                            persistence.setAsideSnapshots("this journal is cut back to the active node's");
                        } catch (IOException e) {
                            throw new java.io.UncheckedIOException(e);
                        }
                        folding.tell(StandbyTail.Reset.INSTANCE);
                    }), "follower");
            LOG.info("Standby: the journal follows the twin's at {}", follow.leaderPath());
        } catch (IOException e) {
            LOG.error("Standby: cannot open the journal to follow the twin's: {}; this node will not have the "
                    + "active's state if it takes over", e.toString());
        }
        return this;
    }

    private Behavior<Command> onLead(Lead lead) {
        if (leading) {
            lead.done().completeExceptionally(new IllegalStateException("already leading"));
            return this;
        }
        leading = true;
        following.accept(false);
        if (follower != null) {
            getContext().watchWith(follower, new FollowerStopped(lead));
            getContext().stop(follower);
            follower = null;
            return this;
        }
        return drain(lead);
    }

    /**
     * The stopped follower's appends and truncation may still be queued on the log's writer: an empty write queued
     * behind them completes once they are done (the writer takes requests in order).
     */
    private Behavior<Command> drain(Lead lead) {
        SegmentedLog log;
        try {
            log = OpenTmrPersistence.get(getContext().getSystem()).log();
        } catch (IOException | RuntimeException e) {
            lead.done().completeExceptionally(e);
            return this;
        }
        getContext().pipeToSelf(log.append(List.of()), (ok, failure) -> new Drained(lead, log, failure));
        return this;
    }

    private Behavior<Command> onDrained(Drained drained) {
        Lead lead = drained.lead();
        if (drained.failure() != null) {
            lead.done().completeExceptionally(drained.failure());
            return this;
        }
        long newest = drained.log().lastEpoch();
        if (newest > lead.epoch()) {
            String why = "the lease's epoch " + lead.epoch() + " is older than the journal's newest record (epoch "
                    + newest + "): the backends granted an epoch that was used before (did two of them lose their "
                    + "data?); this node does not lead under it";
            LOG.error("Active role refused: {}", why);
            lead.done().completeExceptionally(new IllegalStateException(why));
            return this;
        }
        if (tail == null) {
            return startLeader(lead, drained.log());
        }
        // The log no longer changes: the standby's tables are read to its end and offered to the licenses' recovery.
        CompletableFuture<Integer> handed = new CompletableFuture<>();
        tail.tell(new StandbyTail.Finish(handed));
        tail = null;
        getContext().pipeToSelf(handed.orTimeout(HAND_OVER_BOUND.toMillis(), TimeUnit.MILLISECONDS),
                (offered, failure) -> {
                    if (failure != null) {
                        LOG.warn("Taking over: the standby's seat tables were not handed over within {} ms; the "
                                + "licenses replay their journal", HAND_OVER_BOUND.toMillis());
                    }
                    return new TablesHandedOver(lead, drained.log());
                });
        return this;
    }

    private Behavior<Command> startLeader(Lead lead, SegmentedLog log) {
        OpenTmrPersistence persistence = OpenTmrPersistence.get(getContext().getSystem());
        try {
            long epoch = lead.epoch();
            persistence.setEpochSupplier(() -> epoch);
            persistence.setReplicatedPositionSupplier(monitor::replicatedPosition);
            getContext().spawn(ReplicationLeader.create(log, settings, monitor, name), LEADER);
            LOG.info("Active: the journal is written under epoch {} and replicated to the twin", epoch);
            lead.done().complete(null);
        } catch (RuntimeException e) {
            lead.done().completeExceptionally(e);
        }
        return this;
    }
}
