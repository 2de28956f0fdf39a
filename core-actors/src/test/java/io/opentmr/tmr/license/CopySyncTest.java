package io.opentmr.tmr.license;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.BitSet;
import org.junit.jupiter.api.Test;

/** Which backends a license uses: counted and re-synced, never from an old re-sync's answer. */
class CopySyncTest {

    private static BitSet set(int... backends) {
        BitSet bits = new BitSet();
        for (int b : backends) {
            bits.set(b);
        }
        return bits;
    }

    private static CopySync synced(int... backends) {
        CopySync sync = new CopySync(3);
        sync.counted(set(backends));
        for (int b : backends) {
            assertEquals(CopySync.Done.SYNCED, sync.finish(b, sync.begin(b), true));
        }
        return sync;
    }

    @Test
    void aCopyThatStartsToCountIsAskedForOnce() {
        CopySync sync = new CopySync(3);
        assertEquals(set(0, 1), sync.counted(set(0, 1)));
        assertEquals(set(), sync.counted(set(0, 1)), "asked already");
        assertTrue(sync.usable().isEmpty(), "nothing is used before its re-sync");
    }

    @Test
    void aReSyncCountsOnlyWhenItsGenerationIsTheLatest() {
        CopySync sync = new CopySync(3);
        sync.counted(set(0, 1, 2));
        long first = sync.begin(0);
        long second = sync.begin(0);
        assertEquals(CopySync.Done.STALE, sync.finish(0, first, true));
        assertEquals(CopySync.Done.SYNCED, sync.finish(0, second, true));
        assertEquals(set(0), sync.usable());
    }

    @Test
    void aMissedWriteTakesTheBackendOutUntilItIsReSynced() {
        CopySync sync = synced(0, 1, 2);
        assertTrue(sync.missed(1));
        assertFalse(sync.missed(1), "asked once");
        assertEquals(set(0, 2), sync.usable());
        assertEquals(CopySync.Done.SYNCED, sync.finish(1, sync.begin(1), true));
        assertEquals(set(0, 1, 2), sync.usable());
    }

    @Test
    void aWriteFailingDuringTheReSyncSpoilsIt() {
        CopySync sync = synced(0, 1);
        sync.counted(set(0, 1, 2));
        long generation = sync.begin(2);
        assertTrue(sync.writeTargets().get(2), "seat writes also go to the backend being re-synced");
        assertFalse(sync.missed(2));
        assertEquals(CopySync.Done.AGAIN, sync.finish(2, generation, true));
        assertFalse(sync.usable().get(2));
    }

    @Test
    void resetReSyncsEveryCountedBackendAndVoidsReSyncsUnderWay() {
        CopySync sync = synced(0, 1);
        sync.counted(set(0, 1, 2));
        long generation = sync.begin(2);
        assertEquals(set(0, 1, 2), sync.reset());
        assertTrue(sync.usable().isEmpty());
        assertEquals(CopySync.Done.STALE, sync.finish(2, generation, true));
    }

    @Test
    void aBackendThatNoLongerCountsIsForgotten() {
        CopySync sync = synced(0, 1, 2);
        sync.counted(set(0, 2));
        assertEquals(set(0, 2), sync.usable());
        assertFalse(sync.writeTargets().get(1));
    }

    @Test
    void aReSyncThatKeepsFailingWaitsLongerEachTimeUpToTenSecondsAndSuccessStartsOver() {
        CopySync sync = new CopySync(3);
        sync.counted(set(0, 1, 2));
        long[] waits = new long[8];
        for (int i = 0; i < waits.length; i++) {
            assertEquals(CopySync.Done.AGAIN, sync.finish(1, sync.begin(1), false));
            waits[i] = sync.retryDelayMillis(1);
        }
        assertArrayEquals(new long[] {200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000}, waits);
        assertEquals(8, sync.failures(1));
        assertEquals(0, sync.failures(0), "per backend");
        assertEquals(CopySync.Done.SYNCED, sync.finish(1, sync.begin(1), true));
        assertEquals(0, sync.failures(1));
        assertEquals(CopySync.Done.AGAIN, sync.finish(1, sync.begin(1), false));
        assertEquals(200, sync.retryDelayMillis(1), "a new streak starts at the first wait");
        for (int i = 0; i < 40; i++) {
            sync.finish(1, sync.begin(1), false);
        }
        assertEquals(10_000, sync.retryDelayMillis(1), "no overflow after many failures");
    }

    @Test
    void aRetryWaitingAfterAFailedReSyncIsVoidOnceAnythingElseReSyncedOrDroppedTheBackend() {
        CopySync sync = new CopySync(3);
        sync.counted(set(0, 1, 2));
        assertEquals(CopySync.Done.AGAIN, sync.finish(1, sync.begin(1), false));
        long failed = sync.generation(1);
        assertTrue(sync.retryDue(1, failed), "nothing happened since: the retry is wanted");

        // Every backend re-synced anew (the lease came back): the old retry is not.
        sync.reset();
        assertFalse(sync.retryDue(1, failed));
        assertEquals(CopySync.Done.SYNCED, sync.finish(1, sync.begin(1), true));
        assertFalse(sync.retryDue(1, sync.generation(1)), "synced");

        // Dropped from the quorum and back: asked for at once, the old retry is void and the streak starts over.
        assertEquals(CopySync.Done.AGAIN, sync.finish(2, sync.begin(2), false));
        assertEquals(CopySync.Done.AGAIN, sync.finish(2, sync.begin(2), false));
        long again = sync.generation(2);
        sync.counted(set(0, 1));
        assertEquals(set(2), sync.counted(set(0, 1, 2)));
        assertFalse(sync.retryDue(2, again));
        assertEquals(0, sync.failures(2));

        // A re-sync begun meanwhile (asked for by a missed write) voids it too.
        assertEquals(CopySync.Done.AGAIN, sync.finish(0, sync.begin(0), false));
        long third = sync.generation(0);
        sync.begin(0);
        assertFalse(sync.retryDue(0, third));
    }
}
