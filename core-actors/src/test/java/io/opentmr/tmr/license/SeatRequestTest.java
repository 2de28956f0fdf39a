package io.opentmr.tmr.license;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Message;
import io.opentmr.tmr.license.SeatRequest.Outcome;
import java.util.BitSet;
import org.junit.jupiter.api.Test;

/** The decision of one access from the backends' answers, in every order that matters. */
class SeatRequestTest {

    private static final BackendAnswer ACK = new BackendAnswer.Replied(new Message.Ok());
    private static final BackendAnswer FULL = new BackendAnswer.Refused(CmError.NO_MORE_LICENSES.code(), "full");
    private static final BackendAnswer LOST = new BackendAnswer.Lost("timeout");

    private static SeatRequest request(int... asked) {
        BitSet targets = new BitSet();
        for (int b : asked) {
            targets.set(b);
        }
        Seat seat = new Seat(7, AccessMode.USERLIMIT, 1, "10.0.0.1", "user", 1, 1, Seat.digestOf(new byte[16]), 1, 0,
                "host", 1);
        return new SeatRequest(seat, targets);
    }

    private static BitSet set(int... backends) {
        BitSet bits = new BitSet();
        for (int b : backends) {
            bits.set(b);
        }
        return bits;
    }

    @Test
    void twoAcknowledgementsGrantWithoutWaitingForTheThird() {
        SeatRequest request = request(0, 1, 2);
        assertEquals(Outcome.UNDECIDED, request.answer(0, ACK));
        assertEquals(Outcome.GRANTED, request.answer(2, ACK));
        assertFalse(request.allAnswered());
        // The slow one's answer decides nothing any more.
        assertEquals(Outcome.UNDECIDED, request.answer(1, ACK));
        assertTrue(request.allAnswered());
        assertTrue(request.missingAfterGrant().isEmpty());
    }

    @Test
    void oneAcknowledgementNeverGrants() {
        SeatRequest request = request(0, 1, 2);
        assertEquals(Outcome.UNDECIDED, request.answer(1, ACK));
        assertEquals(Outcome.UNDECIDED, request.answer(1, ACK), "a repeated answer of the same backend counts once");
        assertEquals(Outcome.UNDECIDED, request.answer(0, LOST));
        assertEquals(Outcome.REFUSED, request.answer(2, FULL));
        assertEquals(set(1), request.heldAfterRefusal(), "the one acknowledgement is freed again");
    }

    @Test
    void aRefusalBeforeTheGrantLeavesThatBackendToBeResynced() {
        SeatRequest request = request(0, 1, 2);
        request.answer(2, FULL);
        request.answer(0, ACK);
        assertEquals(Outcome.GRANTED, request.answer(1, ACK));
        assertEquals(set(2), request.missingAfterGrant());
    }

    @Test
    void aFailureAfterTheGrantLeavesThatBackendToBeResynced() {
        SeatRequest request = request(0, 1, 2);
        request.answer(0, ACK);
        assertEquals(Outcome.GRANTED, request.answer(1, ACK));
        request.answer(2, LOST);
        assertEquals(set(2), request.missingAfterGrant());
    }

    @Test
    void twoAlikeRefusalsAreTheAnswerOtherwiseTheQuorumIsMissing() {
        SeatRequest full = request(0, 1, 2);
        full.answer(0, FULL);
        assertEquals(Outcome.REFUSED, full.answer(1, FULL));
        assertEquals(CmError.NO_MORE_LICENSES.code(), full.refusal("x").code());

        SeatRequest mixed = request(0, 1, 2);
        mixed.answer(0, FULL);
        assertEquals(Outcome.REFUSED, mixed.answer(1, LOST));
        assertEquals(CmError.REDUNDANCY_SERVER_MISSING.code(), mixed.refusal("x").code());
    }

    @Test
    void withTwoTargetsBothMustAcknowledge() {
        SeatRequest request = request(0, 2);
        assertEquals(Outcome.UNDECIDED, request.answer(0, ACK));
        assertEquals(Outcome.REFUSED, request.answer(2, LOST));
        assertEquals(set(0), request.heldAfterRefusal());
    }

    @Test
    void answersOfBackendsNotAskedAreIgnored() {
        SeatRequest request = request(0, 1);
        assertEquals(Outcome.UNDECIDED, request.answer(2, ACK));
        assertEquals(Outcome.UNDECIDED, request.answer(0, ACK));
        assertEquals(Outcome.GRANTED, request.answer(1, ACK));
    }
}
