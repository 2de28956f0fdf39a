package io.opentmr.tmr.lease;

import io.opentmr.tmr.backend.QuorumLease;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.apache.pekko.actor.Cancellable;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.coordination.lease.LeaseException;
import org.apache.pekko.coordination.lease.LeaseSettings;
import org.apache.pekko.coordination.lease.LeaseTimeoutException;
import org.apache.pekko.coordination.lease.javadsl.Lease;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Pekko {@link Lease} granted by the TMR group's backends: held while two or more of them grant the node one
 * epoch (the node's certificate), under the node's authenticated name, with the epoch the backends persist.
 * Pekko's {@code LeaseProvider} creates it from a config block whose {@code lease-class} names it
 * ({@code opentmr.backend-quorum-lease} in {@code reference.conf}); {@code backend-lease} there names the lease
 * on the backends, empty for Pekko's own lease name.
 *
 * <p>It drives the node's {@link QuorumLease} of that name, found through {@link NodeLeases}: acquiring makes the
 * node's backend watchers ask for it, releasing makes them give their grants back. Pekko's owner name (the
 * cluster address) is not what the backends see: they hold the lease under the node's configured name.
 *
 * <ul>
 *   <li>{@link #acquire()}: true once the certificate is held; false when it is not within
 *       {@code lease-operation-timeout}, and then the node stops asking (a rival keeps what it holds).</li>
 *   <li>{@link #acquire(Consumer)}: also calls back, checking every {@code heartbeat-interval}, when the
 *       certificate is lost while held (grants ran out or backends are gone) or held again under another epoch
 *       (another node held it in between); the node keeps asking for it until Pekko releases it.</li>
 *   <li>{@link #checkLease()}: whether the certificate is held now.</li>
 *   <li>{@link #release()}: stops asking and gives every grant back; true once each backend confirmed (or
 *       dropped its connection, which frees it), a {@link LeaseTimeoutException} after the timeout.</li>
 * </ul>
 */
public final class BackendQuorumLease extends Lease {

    private static final Logger LOG = LoggerFactory.getLogger(BackendQuorumLease.class);

    private final LeaseSettings settings;
    private final ActorSystem<?> system;
    private final String backendLease;
    private final Duration operationTimeout;
    private final Duration checkInterval;

    /** Counts acquires and releases: a timed-out acquire stops asking only if nothing was asked since. */
    private long generation;
    private Cancellable lossCheck;

    /** The constructor Pekko's {@code LeaseProvider} calls. */
    public BackendQuorumLease(LeaseSettings settings, ExtendedActorSystem system) {
        this.settings = settings;
        this.system = Adapter.toTyped(system);
        String configured = settings.leaseConfig().hasPath("backend-lease")
                ? settings.leaseConfig().getString("backend-lease").strip() : "";
        this.backendLease = configured.isEmpty() ? settings.leaseName() : configured;
        this.operationTimeout = settings.timeoutSettings().getOperationTimeout();
        this.checkInterval = settings.timeoutSettings().getHeartbeatInterval();
    }

    @Override
    public LeaseSettings getSettings() {
        return settings;
    }

    @Override
    public CompletionStage<Boolean> acquire() {
        return acquire(reason -> { });
    }

    @Override
    public CompletionStage<Boolean> acquire(Consumer<Optional<Throwable>> leaseLostCallback) {
        QuorumLease lease;
        try {
            lease = nodeLease();
        } catch (IllegalStateException e) {
            return CompletableFuture.failedFuture(new LeaseException(e.getMessage()));
        }
        long asked;
        synchronized (this) {
            asked = ++generation;
            cancelLossCheck();
            // Under the lock: acquires and releases of this lease take effect in the order they were made.
            lease.want(true);
        }
        return lease.whenHeld().toCompletableFuture()
                .orTimeout(operationTimeout.toMillis(), TimeUnit.MILLISECONDS)
                .handle((ok, timedOut) -> {
                    synchronized (this) {
                        long epoch = lease.epoch();
                        if (lease.held() && epoch > 0) {
                            if (asked == generation) {
                                lossCheck = scheduleLossCheck(lease, asked, epoch, leaseLostCallback);
                            }
                            return true;
                        }
                        if (asked == generation) {
                            lease.want(false);
                        }
                    }
                    LOG.info("Lease {} ({} on the backends) not acquired within {} ms: fewer than two backends "
                            + "granted it (another node holds it, or backends are unreachable)",
                            settings.leaseName(), backendLease, operationTimeout.toMillis());
                    return false;
                });
    }

    /**
     * Lost: not held now, or held under another epoch than the one acquired — the backends raise the epoch only
     * for a new holder, so another node held it in between, however short the gap was.
     */
    private Cancellable scheduleLossCheck(QuorumLease lease, long asked, long acquiredEpoch,
                                          Consumer<Optional<Throwable>> callback) {
        Cancellable[] self = new Cancellable[1];
        Cancellable scheduled = system.scheduler().scheduleAtFixedRate(checkInterval, checkInterval, () -> {
            long epoch = lease.epoch();
            if (lease.held() && epoch == acquiredEpoch) {
                return;
            }
            synchronized (this) {
                if (self[0] == null) {
                    return;
                }
                self[0].cancel();
                if (asked != generation) {
                    return;
                }
                lossCheck = null;
                String why = epoch == 0 ? "fewer than two backends grant it now"
                        : "the backends granted it under epoch " + epoch + " after " + acquiredEpoch
                        + ": another node held it in between";
                LOG.warn("Lease {} ({} on the backends) lost: {}", settings.leaseName(), backendLease, why);
                // Under the lock, so that no release() comes between this check and the call back.
                callback.accept(Optional.of(new LeaseException("lease " + backendLease + " lost: " + why)));
            }
        }, system.executionContext());
        self[0] = scheduled;
        return scheduled;
    }

    @Override
    public CompletionStage<Boolean> release() {
        QuorumLease lease;
        try {
            lease = nodeLease();
        } catch (IllegalStateException e) {
            return CompletableFuture.failedFuture(new LeaseException(e.getMessage()));
        }
        synchronized (this) {
            generation++;
            cancelLossCheck();
            lease.want(false);
        }
        CompletableFuture<Boolean> released = new CompletableFuture<>();
        lease.whenReleased().toCompletableFuture()
                .orTimeout(operationTimeout.toMillis(), TimeUnit.MILLISECONDS)
                .whenComplete((done, timedOut) -> {
                    if (timedOut == null) {
                        released.complete(true);
                    } else {
                        released.completeExceptionally(new LeaseTimeoutException("lease " + backendLease + ": not "
                                + "every backend confirmed the release within " + operationTimeout.toMillis()
                                + " ms; a grant not given back runs out after its TTL or with its connection"));
                    }
                });
        return released;
    }

    @Override
    public boolean checkLease() {
        return NodeLeases.get(system).find(backendLease).map(QuorumLease::held).orElse(false);
    }

    /** The node's lease of that name, if a Pekko lease may switch it (the node runs with lease-on-request). */
    private QuorumLease nodeLease() {
        QuorumLease lease = NodeLeases.get(system).lease(backendLease);
        if (!lease.onRequest()) {
            throw new IllegalStateException("lease " + backendLease + " is always wanted by this node (a single "
                    + "node): set opentmr.node.lease-on-request = on for a Pekko lease to acquire and release it");
        }
        return lease;
    }

    private void cancelLossCheck() {
        if (lossCheck != null) {
            lossCheck.cancel();
            lossCheck = null;
        }
    }
}
