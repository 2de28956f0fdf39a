package io.opentmr.tmr.license;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Message;
import java.util.BitSet;
import org.junit.jupiter.api.Test;

/** A majority of two copies decides units and crypt; an unanswered copy is no copy's answer. */
class MajorityVoteTest {

    private static BitSet all() {
        BitSet bits = new BitSet();
        bits.set(0, 3);
        return bits;
    }

    private static BackendAnswer units(long left) {
        return new BackendAnswer.Replied(new Message.UnitsOk(left));
    }

    @Test
    void twoAlikeAnswersDecideAndTheThirdIsADissenter() {
        MajorityVote vote = new MajorityVote(all());
        assertEquals(MajorityVote.State.OPEN, vote.answer(0, units(5)));
        assertEquals(MajorityVote.State.OPEN, vote.answer(1, units(6)));
        assertEquals(MajorityVote.State.DECIDED, vote.answer(2, units(5)));
        assertEquals(new Message.UnitsOk(5), vote.decided());
        BitSet dissenting = new BitSet();
        dissenting.set(1);
        assertEquals(dissenting, vote.dissenters());
    }

    @Test
    void lostAnswersAreNotVotes() {
        MajorityVote vote = new MajorityVote(all());
        vote.answer(0, units(5));
        vote.answer(1, new BackendAnswer.Lost("closed"));
        assertEquals(MajorityVote.State.TOO_FEW, vote.answer(2, new BackendAnswer.Fenced("stale epoch")));
        assertTrue(vote.allAnswered());
        assertEquals(2, vote.lost().cardinality());
        assertEquals(1, vote.fenced().cardinality());
    }

    @Test
    void threeDifferentAnswersDisagree() {
        MajorityVote vote = new MajorityVote(all());
        vote.answer(0, units(5));
        vote.answer(1, units(6));
        assertEquals(MajorityVote.State.DISAGREE, vote.answer(2, units(7)));
    }

    @Test
    void twoRefusalsWithOneNumberAreAMajority() {
        MajorityVote vote = new MajorityVote(all());
        vote.answer(0, new BackendAnswer.Refused(CmError.UNIT_COUNTER_TOO_SMALL.code(), "a"));
        assertEquals(MajorityVote.State.DECIDED, vote.answer(2,
                new BackendAnswer.Refused(CmError.UNIT_COUNTER_TOO_SMALL.code(), "b")));
        assertFalse(vote.allAnswered());
        assertEquals(CmError.UNIT_COUNTER_TOO_SMALL.code(), ((Message.Error) vote.decided()).code());
    }
}
