package io.opentmr.cluster;

import io.opentmr.persistence.replication.ReplicationFollower;
import io.opentmr.persistence.replication.ReplicationLeader;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.util.Locale;
import java.util.function.DoubleSupplier;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Extension;
import org.apache.pekko.actor.typed.ExtensionId;

/**
 * The replicated journal of one incarnation of a twin node (an actor system of a {@link TwinNode}), as operators see
 * it: the leader's and the follower's monitors, the state they add up to, the {@code opentmr_replication_*} metrics
 * and what management HTTP's {@code /tmr/status} shows. An extension of the incarnation's actor system, so that what
 * runs in it (the replication role, management HTTP) finds it without being handed it; a single node has none
 * ({@link #of}).
 */
public final class TwinReplication implements Extension {

    /** What the node's journal does now. */
    public enum State {
        /** Active: the standby has every acknowledged record; writes wait for both logs. */
        IN_SYNC,
        /** Active: the journal is written alone (no standby, or it fell behind); a crash now loses the unshipped. */
        DEGRADED,
        /** Standby: a session with the active node's leader runs; the journal follows it record for record. */
        FOLLOWING,
        /** Neither: a standby that has no session with an active node (none leads, or it cannot be reached). */
        NONE;

        /** As metrics and JSON show it: {@code in_sync}, {@code degraded}, {@code following}, {@code none}. */
        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** The extension's id: {@code system.registerExtension(TwinReplication.ID)}. */
    public static final class Id extends ExtensionId<TwinReplication> {
        @Override
        public TwinReplication createExtension(ActorSystem<?> system) {
            return new TwinReplication();
        }
    }

    public static final Id ID = new Id();

    private final ReplicationLeader.Monitor leader = new ReplicationLeader.Monitor();
    private final ReplicationFollower.Monitor follower = new ReplicationFollower.Monitor();
    private volatile String twin = "";
    private volatile long incarnation = 1;

    private TwinReplication() {
    }

    /** The twin's replication of {@code system}, created on first use: only a {@link TwinNode} calls this. */
    static TwinReplication get(ActorSystem<?> system) {
        return system.registerExtension(ID);
    }

    /** The replication of a twin node's actor system; empty on a single node. */
    public static java.util.Optional<TwinReplication> of(ActorSystem<?> system) {
        return system.hasExtension(ID) ? java.util.Optional.of(system.extension(ID)) : java.util.Optional.empty();
    }

    /** The other node's cluster address, and which start of this node in its process this is (1: the first). */
    void describe(String twin, long incarnation) {
        this.twin = twin;
        this.incarnation = incarnation;
    }

    public ReplicationLeader.Monitor leader() {
        return leader;
    }

    public ReplicationFollower.Monitor follower() {
        return follower;
    }

    /** The other node of the twin, as {@code host:port} of its cluster address. */
    public String twin() {
        return twin;
    }

    /** 1 for the node's first actor system in its process, one more at each restart in the process. */
    public long incarnation() {
        return incarnation;
    }

    public State state() {
        if (leader.leading()) {
            return leader.status() == ReplicationLeader.Status.IN_SYNC ? State.IN_SYNC : State.DEGRADED;
        }
        return follower.following() ? State.FOLLOWING : State.NONE;
    }

    /**
     * This node's journal position: its log holds every record below it (the active's own; the standby's copy).
     */
    public long logPosition() {
        return leader.leading() ? leader.logPosition() : follower.logPosition();
    }

    /**
     * Adds the {@code opentmr_replication_*} metrics (docs/management-http.md) to a node's registry. Each is read
     * from the monitors at scrape time; the standby-related ones have a sample only on the active node, so the alert
     * rules over them never fire on a standby.
     */
    void register(PrometheusRegistry registry) {
        GaugeWithCallback.builder().name("opentmr_replication_state")
                .help("1 for what the twin node's journal does now: in_sync (active, the standby has every "
                        + "acknowledged record), degraded (active, written alone), following (standby, copying the "
                        + "active's), none (standby without a session)")
                .labelNames("state")
                .callback(callback -> {
                    State now = state();
                    for (State state : State.values()) {
                        callback.call(state == now ? 1 : 0, state.label());
                    }
                }).register(registry);
        activeGauge(registry, "opentmr_replication_standby_up", "On the active node: 1 while its standby's session "
                + "runs and it acknowledged within the session timeout", () -> leader.followerConnected() ? 1 : 0);
        activeGauge(registry, "opentmr_replication_lag_seconds", "On the active node: how long the oldest journal "
                + "record its standby lacks has been durable here (0: the standby has every record)",
                leader::lagSeconds);
        activeGauge(registry, "opentmr_replication_lag_records", "On the active node: journal records its standby "
                + "has not acknowledged as durable", leader::lagRecords);
        activeGauge(registry, "opentmr_replication_acknowledged_position", "On the active node: the standby's "
                + "journal is durable below this position (records), as it acknowledged",
                leader::replicatedPosition);
        GaugeWithCallback.builder().name("opentmr_replication_log_position")
                .help("This twin node's journal holds every record below this position (the active's own log, the "
                        + "standby's copy of it)")
                .callback(callback -> callback.call(logPosition())).register(registry);
        counter(registry, "opentmr_replication_catchups", "On the active node: standby sessions that began behind "
                + "its journal (the standby caught up from its position)", leader::catchUps);
        counter(registry, "opentmr_replication_degradations", "On the active node: times it began to write its "
                + "journal alone after being in sync (standby gone or too slow)", leader::degradations);
        counter(registry, "opentmr_replication_truncations", "On the standby: suffixes of its journal cut because "
                + "the active did not have them (records of an epoch that ended before they were shipped)",
                follower::truncations);
    }

    private void activeGauge(PrometheusRegistry registry, String name, String help, DoubleSupplier value) {
        GaugeWithCallback.builder().name(name).help(help).callback(callback -> {
            if (leader.leading()) {
                callback.call(value.getAsDouble());
            }
        }).register(registry);
    }

    private static void counter(PrometheusRegistry registry, String name, String help, DoubleSupplier value) {
        CounterWithCallback.builder().name(name).help(help)
                .callback(callback -> callback.call(value.getAsDouble())).register(registry);
    }
}
