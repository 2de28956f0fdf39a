package io.opentmr.backend;

import io.opentmr.backend.ContainerEvent.LeaseEpochRaised;
import io.opentmr.protocol.CmError;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The leases this backend granted and that may still be live, one per lease name. Who holds a lease is
 * bound to a connection and is not journaled (after a restart there is none); what is journaled (through
 * {@link ContainerState}) is the highest epoch per name and the holder it was granted to or seen with.
 *
 * <p>A lease is live while its TTL runs and its connection is open: a node killed with -9 loses its
 * lease when the kernel closes its sockets, and another node may take it at once.
 *
 * <p>The holder is the name the connection authenticated as (PEER_HELLO, bound into PEER_PROOF): a node
 * asks only under its own name, and a live lease is never taken over, not even by a second connection
 * under the same name. The epoch rises only when the holder changes, so a node that comes back on a new
 * connection keeps its epoch and the grants of the other backends stay valid beside the new one.
 *
 * <p>Thread-safe: the container decides acquisitions, releases and certificates in its batches, while renewals
 * are decided at once on the sessions' threads ({@link RequestInbox}); every method is atomic.
 */
final class LeaseTable {

    /**
     * A grant as the table keeps it: the grant the holder got last, and the connection it is bound to.
     * {@code journaled}: false from an acquisition that raised the epoch until its event is durable
     * ({@link #journaled}); such a lease is renewed only in the container's batches, answered after that write.
     */
    record Lease(String name, String holder, long epoch, PeerConnection connection, Instant issuedAt,
                 Duration ttl, boolean journaled) {

        Instant expiresAt() {
            return issuedAt.plus(ttl);
        }

        boolean live(Instant now) {
            return !now.isAfter(expiresAt()) && connection.isOpen();
        }
    }

    private final Map<String, Lease> leases = new HashMap<>();

    /**
     * LEASE_ACQUIRE. Refused (134) when {@code holder} is not the connection's authenticated name, and while
     * a lease on {@code name} is live on another connection, whoever holds it. Otherwise:
     * <ul>
     *   <li>the holder of the live lease on this connection asking for no more than its epoch gets it again
     *       (a node converges its grants from several backends on the highest one);</li>
     *   <li>the holder of {@code highest} (a new connection of the same node) gets
     *       {@code max(proposedEpoch, highest)}: its epoch does not change;</li>
     *   <li>any other holder, or an unknown one ({@code highestHolder} null: written before holders were
     *       kept), gets {@code max(proposedEpoch, highest + 1)}, strictly above every epoch before.</li>
     * </ul>
     * A raised epoch comes with its event, to persist before the grant goes out.
     *
     * @param highest       the highest epoch granted or seen on this name
     * @param highestHolder the holder {@code highest} was granted to or seen with, or null when unknown
     */
    synchronized Decision<Lease> acquire(String name, String holder, long proposedEpoch, Duration ttl,
                                         PeerConnection connection, long highest, String highestHolder, Instant now) {
        Decision<Lease> refused = refusedAtOnce(name, holder, connection, now);
        if (refused != null) {
            return refused;
        }
        Lease current = live(name, now);
        if (current != null && current.connection() != connection) {
            return Decision.refuse(CmError.TMR_LEASE_REFUSED, "lease " + name + " is held under the name " + holder
                    + " on another connection (" + current.connection().address() + ") at epoch " + current.epoch()
                    + " until " + current.expiresAt() + " or until that connection closes; a live lease is not "
                    + "taken over");
        }
        long epoch;
        if (current != null && proposedEpoch <= current.epoch()) {
            epoch = current.epoch();
        } else if (holder.equals(highestHolder)) {
            epoch = Math.max(proposedEpoch, highest);
        } else if (highest == Long.MAX_VALUE) {
            return Decision.refuse(CmError.TMR_LEASE_REFUSED, "lease " + name + " has used up its epochs");
        } else {
            epoch = Math.max(proposedEpoch, highest + 1);
        }
        // Journaled unless this grant raises the epoch: then its event is written first.
        Lease granted = new Lease(name, holder, epoch, connection, now, ttl, epoch <= highest);
        leases.put(name, granted);
        return epoch > highest
                ? Decision.accept(granted, new LeaseEpochRaised(name, epoch, holder, now))
                : Decision.accept(granted);
    }

    /**
     * The refusal of a LEASE_ACQUIRE that needs nothing of the journal: a holder other than the connection's name,
     * or another holder's live lease (what a twin's standby asks at each heartbeat while the active holds it); null
     * when the acquisition must be decided by {@link #acquire}.
     */
    synchronized Decision<Lease> refusedAtOnce(String name, String holder, PeerConnection connection, Instant now) {
        if (!holder.equals(connection.node())) {
            return notOwnName(name, holder, connection);
        }
        Lease current = live(name, now);
        if (current != null && !current.holder().equals(holder)) {
            return Decision.refuse(CmError.TMR_LEASE_REFUSED, "lease " + name + " is held by " + current.holder()
                    + " at epoch " + current.epoch() + " until " + current.expiresAt()
                    + " or until its connection closes");
        }
        return null;
    }

    /** LEASE_RENEW: a fresh grant for the live lease of this holder, epoch and connection; else 134. */
    synchronized Decision<Lease> renew(String name, String holder, long epoch, Duration ttl,
                                       PeerConnection connection, Instant now) {
        if (!holder.equals(connection.node())) {
            return notOwnName(name, holder, connection);
        }
        Lease current = leases.get(name);
        if (current == null || !current.live(now)) {
            return Decision.refuse(CmError.TMR_LEASE_REFUSED, "lease " + name + " is not held: acquire it again");
        }
        if (!current.holder().equals(holder) || current.epoch() != epoch || current.connection() != connection) {
            return Decision.refuse(CmError.TMR_LEASE_REFUSED, "lease " + name + " is held by " + current.holder()
                    + " at epoch " + current.epoch() + (current.connection() == connection ? ""
                    : " on another connection") + ", not by " + holder + " at epoch " + epoch);
        }
        Lease renewed = new Lease(name, holder, epoch, connection, now, ttl, current.journaled());
        leases.put(name, renewed);
        return Decision.accept(renewed);
    }

    /**
     * As {@link #renew}, for a renewal decided outside the container's batches: null (not decided here) while the
     * lease's epoch is not journaled yet, so that no grant of an epoch a failed write may undo goes out.
     */
    synchronized Decision<Lease> renewAtOnce(String name, String holder, long epoch, Duration ttl,
                                             PeerConnection connection, Instant now) {
        Lease current = leases.get(name);
        if (current != null && !current.journaled() && current.epoch() == epoch) {
            return null;
        }
        return renew(name, holder, epoch, ttl, connection, now);
    }

    /** The event that raised {@code name}'s epoch to {@code epoch} is durable: its lease may be renewed at once. */
    synchronized void journaled(String name, long epoch) {
        Lease current = leases.get(name);
        if (current != null && current.epoch() == epoch && !current.journaled()) {
            leases.put(name, new Lease(current.name(), current.holder(), current.epoch(), current.connection(),
                    current.issuedAt(), current.ttl(), true));
        }
    }

    /**
     * LEASE_RELEASE: frees the lease if holder, epoch and connection match; whether it did. Refused (134) for
     * a holder other than the connection's authenticated name.
     */
    synchronized Decision<Boolean> release(String name, String holder, long epoch, PeerConnection connection) {
        if (!holder.equals(connection.node())) {
            return notOwnName(name, holder, connection);
        }
        Lease current = leases.get(name);
        if (current != null && current.holder().equals(holder) && current.epoch() == epoch
                && current.connection() == connection) {
            leases.remove(name);
            return Decision.accept(true);
        }
        return Decision.accept(false);
    }

    private static <T> Decision<T> notOwnName(String name, String holder, PeerConnection connection) {
        return Decision.refuse(CmError.TMR_LEASE_REFUSED, "lease " + name + " asked for holder " + holder
                + ", but this connection authenticated as " + connection.node()
                + ": a node holds leases under its own name only");
    }

    /** Every live lease, by name. */
    synchronized List<Lease> allLive(Instant now) {
        return leases.values().stream().filter(l -> l.live(now))
                .sorted(java.util.Comparator.comparing(Lease::name)).toList();
    }

    /** The live lease on {@code name}, or null. */
    synchronized Lease live(String name, Instant now) {
        Lease current = leases.get(name);
        return current != null && current.live(now) ? current : null;
    }

    /** Forgets leases that are no longer live: their TTL ran out or their connection closed. */
    synchronized List<Lease> purge(Instant now) {
        List<Lease> ended = leases.values().stream().filter(l -> !l.live(now)).toList();
        ended.forEach(l -> leases.remove(l.name()));
        return ended;
    }
}
