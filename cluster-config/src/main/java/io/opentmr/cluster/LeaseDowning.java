package io.opentmr.cluster;

import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Set;
import java.util.Map;
import java.util.function.BooleanSupplier;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.Down;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The twin's downing: the node that holds the backends' lease downs a member it has found unreachable for
 * {@code downAfter}; a node without the lease never downs anyone. The lease, not the cluster, decides which node is
 * active (fenced by epoch on every backend), so downing only tidies the membership: a dead or cut-off twin leaves
 * it and, if alive, restarts as a standby and joins again. No take-over waits for it.
 */
final class LeaseDowning {

    private static final Logger LOG = LoggerFactory.getLogger(LeaseDowning.class);

    private enum Tick {
        INSTANCE
    }

    private LeaseDowning() {
    }

    /** @param holdsLease whether this node holds the backends' lease now */
    static Behavior<Object> create(BooleanSupplier holdsLease, Duration downAfter, Duration check) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(Tick.INSTANCE, check);
            Cluster cluster = Cluster.get(context.getSystem());
            Map<Address, Long> unreachableSince = new HashMap<>();
            Set<Address> downed = new HashSet<>();
            return Behaviors.receiveMessage(tick -> {
                long now = System.nanoTime();
                Map<Address, Long> seen = new HashMap<>();
                for (Member member : cluster.state().getUnreachable()) {
                    if (!member.address().equals(cluster.selfMember().address())) {
                        seen.put(member.address(), unreachableSince.getOrDefault(member.address(), now));
                    }
                }
                unreachableSince.keySet().retainAll(seen.keySet());
                downed.retainAll(seen.keySet());
                unreachableSince.putAll(seen);
                if (!holdsLease.getAsBoolean()) {
                    return Behaviors.same();
                }
                unreachableSince.forEach((address, since) -> {
                    if (now - since >= downAfter.toNanos() && downed.add(address)) {
                        LOG.warn("Downing the twin {}: unreachable for {} ms while this node holds the backends' "
                                + "lease", address, (now - since) / 1_000_000);
                        cluster.manager().tell(new Down(address));
                    }
                });
                return Behaviors.same();
            });
        }));
    }
}
