package io.opentmr.cluster;

import io.opentmr.persistence.OpenTmrPersistence;
import io.opentmr.persistence.log.SegmentedLog;
import io.opentmr.persistence.replication.ReplicationLeader;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorSystem;

/**
 * The journal's part of a step-down: the active node has stopped serving and waits until its standby has every
 * record it wrote (the follower durable up to the log's end, replication in sync) and the log has been quiet for a
 * moment, so that requests still in flight when serving stopped are in both logs before the role moves.
 */
final class HandOver {

    /** How often the positions are compared. */
    private static final Duration CHECK = Duration.ofMillis(20);
    /** The log must not have grown for this long: a request in flight when serving stopped has written by then. */
    private static final Duration QUIET = Duration.ofMillis(100);

    private final SegmentedLog log;
    private final ReplicationLeader.Monitor monitor;
    private final ActorSystem<Void> system;
    private final long deadline;
    private final Duration bound;
    private final CompletableFuture<Void> done = new CompletableFuture<>();
    private long lastEnd = -1;
    private long quietSince;

    private HandOver(ActorSystem<Void> system, SegmentedLog log, ReplicationLeader.Monitor monitor, Duration bound) {
        this.system = system;
        this.log = log;
        this.monitor = monitor;
        this.bound = bound;
        this.deadline = System.nanoTime() + bound.toNanos();
    }

    /** Completes once the twin has every record; fails after {@code bound} naming both positions. */
    static CompletionStage<Void> await(ActorSystem<Void> system, ReplicationLeader.Monitor monitor, Duration bound) {
        if (system == null) {
            return CompletableFuture.failedFuture(new IllegalStateException("this node has not led the journal"));
        }
        SegmentedLog log;
        try {
            log = OpenTmrPersistence.get(system).log();
        } catch (IOException e) {
            return CompletableFuture.failedFuture(e);
        }
        HandOver handOver = new HandOver(system, log, monitor, bound);
        handOver.check();
        return handOver.done;
    }

    private void check() {
        long now = System.nanoTime();
        long end = log.nextPosition();
        if (end != lastEnd) {
            lastEnd = end;
            quietSince = now;
        }
        boolean caughtUp = monitor.status() == ReplicationLeader.Status.IN_SYNC && monitor.replicatedPosition() >= end;
        if (caughtUp && now - quietSince >= QUIET.toNanos()) {
            done.complete(null);
        } else if (now > deadline) {
            done.completeExceptionally(new IllegalStateException("after " + bound.toMillis() + " ms the twin has the "
                    + "journal below position " + monitor.replicatedPosition() + " of " + end + " (replication "
                    + monitor.status() + ": " + monitor.reason() + ")"));
        } else {
            system.scheduler().scheduleOnce(CHECK, this::check, system.executionContext());
        }
    }
}
