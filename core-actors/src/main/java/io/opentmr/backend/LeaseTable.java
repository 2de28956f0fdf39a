package io.opentmr.backend;

import io.opentmr.backend.ContainerEvent.LeaseEpochRaised;
import io.opentmr.protocol.CmError;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The leases this backend granted and that may still be live, one per lease name. Only the epochs are
 * journaled (through {@link ContainerState}); who holds a lease is not: a lease is bound to its holder's
 * connection, and after a restart there is none.
 *
 * <p>A lease is live while its TTL runs and its connection is open: a node killed with -9 loses its
 * lease when the kernel closes its sockets, and another node may take it at once.
 */
final class LeaseTable {

    /** A grant as the table keeps it: the grant the holder got last, and the connection it is bound to. */
    record Lease(String name, String holder, long epoch, PeerConnection connection, Instant issuedAt,
                 Duration ttl) {

        Instant expiresAt() {
            return issuedAt.plus(ttl);
        }

        boolean live(Instant now) {
            return !now.isAfter(expiresAt()) && connection.isOpen();
        }
    }

    private final Map<String, Lease> leases = new HashMap<>();

    /**
     * LEASE_ACQUIRE. Refused (134) while another holder's lease is live. Otherwise the epoch is
     * {@code max(proposedEpoch, highest + 1)}; but the same holder on the same connection asking for no more
     * than its epoch gets that epoch again, so a node can converge its grants from several backends on the
     * highest one. A raised epoch comes with its event, to persist before the grant goes out.
     *
     * @param highest the highest epoch granted or seen on this name
     */
    Decision<Lease> acquire(String name, String holder, long proposedEpoch, Duration ttl, PeerConnection connection,
                            long highest, Instant now) {
        Lease current = leases.get(name);
        long epoch;
        if (current != null && current.live(now) && !current.holder().equals(holder)) {
            return Decision.refuse(CmError.TMR_LEASE_REFUSED, "lease " + name + " is held by " + current.holder()
                    + " at epoch " + current.epoch() + " until " + current.expiresAt()
                    + " or until its connection closes");
        }
        if (current != null && current.live(now) && current.connection() == connection
                && proposedEpoch <= current.epoch()) {
            epoch = current.epoch();
        } else if (highest == Long.MAX_VALUE) {
            return Decision.refuse(CmError.TMR_LEASE_REFUSED, "lease " + name + " has used up its epochs");
        } else {
            epoch = Math.max(proposedEpoch, highest + 1);
        }
        Lease granted = new Lease(name, holder, epoch, connection, now, ttl);
        leases.put(name, granted);
        return epoch > highest
                ? Decision.accept(granted, new LeaseEpochRaised(name, epoch, now))
                : Decision.accept(granted);
    }

    /** LEASE_RENEW: a fresh grant for the live lease of this holder, epoch and connection; else 134. */
    Decision<Lease> renew(String name, String holder, long epoch, Duration ttl, PeerConnection connection,
                          Instant now) {
        Lease current = leases.get(name);
        if (current == null || !current.live(now)) {
            return Decision.refuse(CmError.TMR_LEASE_REFUSED, "lease " + name + " is not held: acquire it again");
        }
        if (!current.holder().equals(holder) || current.epoch() != epoch || current.connection() != connection) {
            return Decision.refuse(CmError.TMR_LEASE_REFUSED, "lease " + name + " is held by " + current.holder()
                    + " at epoch " + current.epoch() + (current.connection() == connection ? ""
                    : " on another connection") + ", not by " + holder + " at epoch " + epoch);
        }
        Lease renewed = new Lease(name, holder, epoch, connection, now, ttl);
        leases.put(name, renewed);
        return Decision.accept(renewed);
    }

    /** LEASE_RELEASE: frees the lease if holder, epoch and connection match; whether it did. */
    boolean release(String name, String holder, long epoch, PeerConnection connection) {
        Lease current = leases.get(name);
        if (current != null && current.holder().equals(holder) && current.epoch() == epoch
                && current.connection() == connection) {
            leases.remove(name);
            return true;
        }
        return false;
    }

    /** The live lease on {@code name}, or null. */
    Lease live(String name, Instant now) {
        Lease current = leases.get(name);
        return current != null && current.live(now) ? current : null;
    }

    /** Forgets leases that are no longer live: their TTL ran out or their connection closed. */
    List<Lease> purge(Instant now) {
        List<Lease> ended = leases.values().stream().filter(l -> !l.live(now)).toList();
        ended.forEach(l -> leases.remove(l.name()));
        return ended;
    }
}
