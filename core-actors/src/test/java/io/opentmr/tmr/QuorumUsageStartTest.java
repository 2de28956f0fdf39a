package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.ProductInfo;
import java.util.BitSet;
import org.junit.jupiter.api.Test;

/** The usage period's start that two counted copies agree on, and the copies to tell it. */
class QuorumUsageStartTest {

    private static final LicenseKey KEY = new LicenseKey(6_000_010, 52, 1);

    private static ProductInfo copy(long usageStartedAt) {
        return new ProductInfo(KEY.firmCode(), KEY.productCode(), 0, "emergency", 5, 0, KEY.tmrId(), false, 0, 0, 0,
                3600, usageStartedAt, 0);
    }

    private static BitSet bits(int... backends) {
        BitSet set = new BitSet();
        for (int b : backends) {
            set.set(b);
        }
        return set;
    }

    @Test
    void theSecondEarliestStartOfTheCountedCopiesIsAgreedAndLaterOrMissingStartsAreBehind() {
        Quorum quorum = new Quorum(KEY, 3);
        quorum.update(0, copy(1_000));
        quorum.update(1, copy(0));
        quorum.update(2, copy(0));
        assertEquals(0, quorum.agreedUsageStart(), "one copy alone started it: no agreement yet");
        assertEquals(new BitSet(), quorum.usageBehind());
        quorum.update(1, copy(2_000));
        assertEquals(2_000, quorum.agreedUsageStart());
        assertEquals(bits(2), quorum.usageBehind(), "the copy that has not started is told; the earlier one keeps its own");
        quorum.update(2, copy(9_000));
        assertEquals(2_000, quorum.agreedUsageStart());
        assertEquals(bits(2), quorum.usageBehind());
        quorum.update(2, copy(2_000));
        assertEquals(new BitSet(), quorum.usageBehind());
        quorum.update(0, null);
        assertEquals(2_000, quorum.agreedUsageStart(), "the two copies left agree");
    }

    @Test
    void aCopyThatDiffersInItsItemDoesNotVote() {
        Quorum quorum = new Quorum(KEY, 3);
        quorum.update(0, copy(5_000));
        quorum.update(1, copy(6_000));
        quorum.update(2, new ProductInfo(KEY.firmCode(), KEY.productCode(), 0, "emergency", 99, 0, KEY.tmrId(), false,
                0, 0, 0, 3600, 1, 0));
        assertEquals(6_000, quorum.agreedUsageStart(), "the differing copy's early start is not counted");
    }
}
