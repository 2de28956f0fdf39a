package io.opentmr.backend;

import io.opentmr.protocol.LicenseKey;
import java.time.Duration;
import java.time.Instant;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The PEER_UNITS results a container remembers by operation id, so that a node's retry of a DECREMENT or
 * SET gets the first answer and is not charged twice.
 *
 * <p>One memory for the whole container, by time: an entry is kept for the retry window
 * ({@code opentmr.backend.units.retry-memory}), however many operations other handles or re-syncs make
 * meanwhile, so they cannot push each other's ids out. The count is bounded
 * ({@code opentmr.backend.units.max-remembered}); when that many operations of the window are remembered,
 * {@link #full} says so and the container refuses further ones (309) rather than forget one that may still
 * be retried. A SET forgets the item's earlier ids: a counter re-synced to the majority is a new start, and
 * a decrement retried after it is charged against it.
 *
 * <p>Entries are kept in the order they were remembered (the journal's order); the oldest go first. Only
 * the container's thread touches it; it is rebuilt from events (with their times) and snapshots.
 */
final class PeerUnitMemory {

    private record Key(LicenseKey item, long operationId) {
    }

    private record Entry(long remaining, Instant at) {
    }

    private final Duration window;
    private final int max;
    private final LinkedHashMap<Key, Entry> entries = new LinkedHashMap<>();

    PeerUnitMemory(BackendSettings.Units settings) {
        this.window = settings.retryMemory();
        this.max = settings.maxRemembered();
    }

    /** The counter after operation {@code operationId} on {@code item}, if it is remembered and in the window. */
    Long recall(LicenseKey item, long operationId, Instant now) {
        Entry entry = entries.get(new Key(item, operationId));
        return entry == null || expired(entry, now) ? null : entry.remaining();
    }

    /**
     * Whether a new operation on {@code item} finds no room: {@link #max} operations of the window are
     * remembered, not counting those of {@code item} when it is a SET (which forgets them). Forgets what left
     * the window first: that changes no answer, since {@link #recall} ignores such entries.
     */
    boolean full(LicenseKey item, boolean set, Instant now) {
        prune(now);
        long kept = entries.size();
        if (set && kept >= max) {
            kept -= entries.keySet().stream().filter(k -> k.item().equals(item)).count();
        }
        return kept >= max;
    }

    /** Records an operation's result; a SET first forgets the item's earlier operations. */
    void remember(LicenseKey item, long operationId, long remaining, boolean set, Instant at) {
        if (set) {
            entries.keySet().removeIf(k -> k.item().equals(item));
        }
        Key key = new Key(item, operationId);
        entries.remove(key);
        entries.put(key, new Entry(remaining, at));
        prune(at);
    }

    /** Forgets the entries that left the window by {@code now}, oldest first. */
    void prune(Instant now) {
        Iterator<Entry> oldest = entries.values().iterator();
        while (oldest.hasNext() && expired(oldest.next(), now)) {
            oldest.remove();
        }
    }

    private boolean expired(Entry entry, Instant now) {
        return entry.at().plus(window).isBefore(now);
    }

    int size() {
        return entries.size();
    }

    int max() {
        return max;
    }

    Duration window() {
        return window;
    }

    List<ContainerSnapshot.PeerOperation> toSnapshot() {
        return entries.entrySet().stream().map(e -> new ContainerSnapshot.PeerOperation(e.getKey().item(),
                e.getKey().operationId(), e.getValue().remaining(), e.getValue().at())).toList();
    }

    /**
     * Entries of a snapshot, in its order. Snapshots written before entries had times lack them: such an
     * entry counts as remembered at the epoch, so it leaves at the next operation (a retry across the
     * restart that read such a snapshot is charged again).
     */
    void restore(List<ContainerSnapshot.PeerOperation> operations) {
        for (ContainerSnapshot.PeerOperation op : operations) {
            entries.put(new Key(op.item(), op.operationId()),
                    new Entry(op.remaining(), op.at() == null ? Instant.EPOCH : op.at()));
        }
    }

    /** For tests: item → operation ids remembered. */
    Map<LicenseKey, List<Long>> operationIds() {
        Map<LicenseKey, List<Long>> ids = new LinkedHashMap<>();
        entries.keySet().forEach(k -> ids.computeIfAbsent(k.item(), i -> new java.util.ArrayList<>())
                .add(k.operationId()));
        return ids;
    }
}
