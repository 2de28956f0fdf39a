package io.opentmr.persistence.snapshot;

import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * States a twin's standby kept current in memory from the records its log copied, offered to the recoveries of the
 * node's persistent actors when it takes over: the snapshot store hands a recovery its offer as the snapshot it
 * selected (an object already in memory, not a file), and Pekko replays only the events after it. Each offer is taken
 * at most once, so a later recovery of the same actor (a restart after a failed write) recovers from the journal as
 * usual. The store uses an offer only while the journal still holds every event after it (its sequence number is not
 * above the journal's highest, nor below the events deleted); the offering side vouches that the state is what a
 * replay of the journal up to that sequence number makes. Thread-safe.
 */
public final class WarmStates {

    /** A state as of {@code sequenceNr}; {@code state} is what the actor's snapshot adapter reads. */
    public record Offer(long sequenceNr, long timestampMillis, Object state) {
    }

    private final ConcurrentHashMap<String, Offer> offers = new ConcurrentHashMap<>();
    private final AtomicLong used = new AtomicLong();

    /** Offers {@code state} as the state of {@code persistenceId} after its event {@code sequenceNr}. */
    public void offer(String persistenceId, long sequenceNr, Object state) {
        offers.put(persistenceId, new Offer(sequenceNr, System.currentTimeMillis(), state));
    }

    /** The offer for {@code persistenceId}, removed: a second call finds none. */
    public Optional<Offer> take(String persistenceId) {
        return Optional.ofNullable(offers.remove(persistenceId));
    }

    /** The snapshot store recovered an actor from an offer. */
    public void used() {
        used.incrementAndGet();
    }

    /** Recoveries that started from an offer so far. */
    public long usedCount() {
        return used.get();
    }

    /** Drops every offer not taken yet. */
    public void clear() {
        offers.clear();
    }

    /** Offers not taken yet. */
    public int size() {
        return offers.size();
    }
}
