package io.opentmr.tmr.license;

import java.util.Arrays;
import java.util.BitSet;

/**
 * Which backends a license may use now. A backend is used only when its copy counts (the quorum says so)
 * and it was re-synced since it (re)appeared or since it missed a write: its allocations made equal to the
 * seat table and its unit counter set to the node's. Seat writes also go to a backend whose re-sync is under
 * way, so that a seat granted or freed meanwhile is not missing there once the re-sync is done; a write that
 * fails during the re-sync spoils it. Re-syncs carry a generation, so the answer of an old one is ignored.
 *
 * <p>A plain class, owned by one license actor; tests drive it directly.
 */
public final class CopySync {

    public enum Done { SYNCED, AGAIN, STALE }

    private final long[] generation;
    private BitSet counted = new BitSet();
    private final BitSet synced = new BitSet();
    private final BitSet resyncing = new BitSet();
    private final BitSet spoiled = new BitSet();
    /** A re-sync was asked for and has not begun: asking again would only repeat the listing. */
    private final BitSet asked = new BitSet();
    /** Re-syncs of each backend that failed in a row since it was last synced. */
    private final int[] failures;

    /** The wait before the first retry of a failed re-sync; it doubles with each failure after. */
    public static final long FIRST_RETRY_MILLIS = 200;
    /** The longest wait between retries of a re-sync that keeps failing. */
    public static final long MAX_RETRY_MILLIS = 10_000;

    public CopySync(int backends) {
        this.generation = new long[backends];
        this.failures = new int[backends];
    }

    /**
     * The copies that count now. Backends that no longer count are forgotten; those that count and are neither
     * synced nor being re-synced nor already asked for are returned: ask for their re-sync.
     */
    public BitSet counted(BitSet now) {
        BitSet dropped = (BitSet) counted.clone();
        dropped.andNot(now);
        for (int b = dropped.nextSetBit(0); b >= 0; b = dropped.nextSetBit(b + 1)) {
            // A re-sync under way, or a retry waiting, is for a copy that no longer counts.
            generation[b]++;
            failures[b] = 0;
        }
        counted = (BitSet) now.clone();
        synced.and(counted);
        resyncing.and(counted);
        asked.and(counted);
        BitSet needs = (BitSet) counted.clone();
        needs.andNot(synced);
        needs.andNot(resyncing);
        needs.andNot(asked);
        asked.or(needs);
        return needs;
    }

    public BitSet counted() {
        return (BitSet) counted.clone();
    }

    /** Backends this license uses now: their copy counts and they were re-synced. */
    public BitSet usable() {
        BitSet usable = (BitSet) counted.clone();
        usable.and(synced);
        return usable;
    }

    /** Backends that get seat writes: the usable ones and those being re-synced. */
    public BitSet writeTargets() {
        BitSet targets = usable();
        targets.or(resyncing);
        targets.and(counted);
        return targets;
    }

    /** Whether a re-sync of this backend may begin now (its copy counts). */
    public boolean mayBegin(int backend) {
        return counted.get(backend);
    }

    /** A re-sync begins; returns its generation. */
    public long begin(int backend) {
        asked.clear(backend);
        synced.clear(backend);
        resyncing.set(backend);
        spoiled.clear(backend);
        return ++generation[backend];
    }

    /** A re-sync ended: synced, to be done again (it failed or a write during it failed), or stale (ignored). */
    public Done finish(int backend, long generationOf, boolean succeeded) {
        if (generationOf != generation[backend] || !resyncing.get(backend)) {
            return Done.STALE;
        }
        resyncing.clear(backend);
        if (!counted.get(backend)) {
            return Done.STALE;
        }
        if (!succeeded || spoiled.get(backend)) {
            spoiled.clear(backend);
            asked.set(backend);
            failures[backend]++;
            return Done.AGAIN;
        }
        synced.set(backend);
        failures[backend] = 0;
        return Done.SYNCED;
    }

    /** The generation of this backend's latest re-sync (a failed one's retry carries it, see {@link #retryDue}). */
    public long generation(int backend) {
        return generation[backend];
    }

    /**
     * Whether the retry scheduled after the failed re-sync of this generation is still wanted: nothing began,
     * reset or dropped this backend since, and it is still asked for and not synced.
     */
    public boolean retryDue(int backend, long generationOf) {
        return generationOf == generation[backend] && asked.get(backend) && !resyncing.get(backend)
                && !synced.get(backend) && counted.get(backend);
    }

    /** Re-syncs of this backend that failed in a row (0 once one succeeds, or after a reset). */
    public int failures(int backend) {
        return failures[backend];
    }

    /**
     * How long to wait before re-syncing this backend again after {@link Done#AGAIN}: 200 ms after the first
     * failure, doubling up to 10 s. A backend that keeps refusing a seat of the table (its copy disagrees, or a
     * seat journaled by a node that crashed before allocating it does not fit there) is not asked again and
     * again at the pace of the listing while a client's reclaim or an operator resolves it.
     */
    public long retryDelayMillis(int backend) {
        int n = Math.max(1, failures[backend]);
        return n > 16 ? MAX_RETRY_MILLIS : Math.min(MAX_RETRY_MILLIS, FIRST_RETRY_MILLIS << (n - 1));
    }

    /**
     * A write to this backend failed or was missed (refused, lost, timed out, answered after the decision with
     * something else): it no longer counts as synced. Returns true when a re-sync must be asked for now.
     */
    public boolean missed(int backend) {
        if (resyncing.get(backend)) {
            spoiled.set(backend);
            return false;
        }
        boolean wasSynced = synced.get(backend);
        synced.clear(backend);
        if (counted.get(backend) && !asked.get(backend) && wasSynced) {
            asked.set(backend);
            return true;
        }
        return false;
    }

    /**
     * Every backend is to be re-synced (the node regained the lease, or the license restarted): what other
     * nodes or lost writes did meanwhile is unknown. Returns the backends to ask re-syncs for.
     */
    public BitSet reset() {
        synced.clear();
        for (int b = 0; b < generation.length; b++) {
            // Also voids the retries waiting after failed re-syncs: every backend is asked for again now.
            generation[b]++;
        }
        resyncing.clear();
        spoiled.clear();
        asked.clear();
        Arrays.fill(failures, 0);
        BitSet needs = (BitSet) counted.clone();
        asked.or(needs);
        return needs;
    }

    /**
     * Forgets everything (the license restarted): nothing counts until the quorum tells again, and answers of
     * re-syncs begun before are stale.
     */
    public void forget() {
        for (int b = 0; b < generation.length; b++) {
            generation[b]++;
        }
        counted = new BitSet();
        synced.clear();
        resyncing.clear();
        spoiled.clear();
        asked.clear();
        Arrays.fill(failures, 0);
    }

    /** The container could not run an asked re-sync (no listing): it may be asked again. */
    public void notBegun(int backend) {
        asked.clear(backend);
    }
}
