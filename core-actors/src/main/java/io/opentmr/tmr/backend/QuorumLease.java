package io.opentmr.tmr.backend;

import java.util.concurrent.CompletionStage;

/**
 * One lease the node holds on its backends, as a Pekko {@code Lease} drives it: wanted or not, held while two
 * or more backends grant it one epoch. Wanting it makes the backend watchers ask for it at their next chance;
 * not wanting it makes them give back the grants they hold, while they keep connecting, heartbeating and
 * reading inventories.
 *
 * <p>Each lease name on the backends is one instance ({@link PeerGroup#activeLease()}: the active lease, whose
 * grants make up the certificate of every peer write).
 */
public interface QuorumLease {

    /** The lease's name on the backends (LEASE_ACQUIRE's leaseName). */
    String name();

    /** Asks for the lease ({@code true}) or gives it back ({@code false}); takes effect at once, idempotent. */
    void want(boolean wanted);

    boolean wanted();

    /**
     * Whether a Pekko lease decides when the node wants it ({@code opentmr.node.lease-on-request}); false: the
     * node always wants it (a single node), and a Pekko lease must not switch it off.
     */
    boolean onRequest();

    /** Whether two or more unexpired grants of one epoch are held now. */
    boolean held();

    /** The epoch of the grants held, 0 when not {@link #held()}. */
    long epoch();

    /** Completes once the lease is held (at once when it is); never fails. */
    CompletionStage<Void> whenHeld();

    /**
     * Completes once the lease is not wanted and no backend may still hold a grant of it for this node: each
     * gave it back, refused it, or lost its connection (a backend frees a lease whose connection closed). Never
     * fails; a caller bounds the wait.
     */
    CompletionStage<Void> whenReleased();
}
