package io.opentmr.tmr.lease;

import io.opentmr.protocol.LeaseGrant;
import io.opentmr.tmr.backend.QuorumLease;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Extension;
import org.apache.pekko.actor.typed.ExtensionId;

/**
 * The leases a TMR node holds on its backends, by their name on the backends, for the actor system the node
 * runs in: the node registers them when it starts ({@code TmrNode}), {@link BackendQuorumLease} drives them,
 * and any actor reads the active lease's epoch here.
 *
 * <p>An actor system without a node has none; a lease asked for then fails, naming what is missing.
 */
public final class NodeLeases implements Extension {

    public static final Id ID = new Id();

    /** The extension's id; {@code NodeLeases.get(system)} is the usual way in. */
    public static final class Id extends ExtensionId<NodeLeases> {
        private Id() {
        }

        @Override
        public NodeLeases createExtension(ActorSystem<?> system) {
            return new NodeLeases(system.name());
        }
    }

    public static NodeLeases get(ActorSystem<?> system) {
        return ID.apply(system);
    }

    private final String systemName;
    private final Map<String, QuorumLease> leases = new TreeMap<>();

    private NodeLeases(String systemName) {
        this.systemName = systemName;
    }

    /** Makes {@code lease} reachable under its name; a name is registered once. */
    public synchronized void register(QuorumLease lease) {
        QuorumLease before = leases.putIfAbsent(lease.name(), lease);
        if (before != null && before != lease) {
            throw new IllegalStateException("lease " + lease.name() + " is registered already in actor system "
                    + systemName + ": one TMR node per actor system");
        }
    }

    public synchronized Optional<QuorumLease> find(String name) {
        return Optional.ofNullable(leases.get(name));
    }

    /**
     * The lease of that name on the backends.
     *
     * @throws IllegalStateException naming what is registered, when it is not
     */
    public synchronized QuorumLease lease(String name) {
        QuorumLease lease = leases.get(name);
        if (lease == null) {
            throw new IllegalStateException(leases.isEmpty()
                    ? "no TMR node runs in actor system " + systemName + ": the backend leases exist only inside a "
                    + "node (TmrNode.start registers them), so lease " + name + " cannot be used here"
                    : "the TMR node in actor system " + systemName + " holds no backend lease named " + name
                    + ", only " + leases.keySet());
        }
        return lease;
    }

    /**
     * The epoch of the active lease while the node holds it (every peer write carries it, and backends refuse a
     * lower one), 0 while it does not.
     */
    public long activeEpoch() {
        return find(LeaseGrant.ACTIVE_LEASE).map(QuorumLease::epoch).orElse(0L);
    }
}
