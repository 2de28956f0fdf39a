package io.opentmr.tmr.license;

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
}
