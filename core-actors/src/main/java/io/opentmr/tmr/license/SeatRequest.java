package io.opentmr.tmr.license;

import io.opentmr.protocol.CmError;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One access whose allocations are under way: which backends were asked, what each answered, and what
 * that decides. A seat is granted once two backends acknowledged it; it is refused once fewer than two can
 * still acknowledge. The decision does not wait for the slowest backend, so what a backend says after it
 * (or what it refused before a grant) is where copies drift apart: {@link #missingAfterGrant} and
 * {@link #heldAfterRefusal} say which backends must be re-synced and which must free the seat again.
 *
 * <p>A plain class: the license actor feeds it answers; tests drive it directly.
 */
public final class SeatRequest {

    public enum Outcome { UNDECIDED, GRANTED, REFUSED }

    private final Seat seat;
    private final BitSet asked;
    private final BitSet acked = new BitSet();
    private final BitSet answered = new BitSet();
    private final Map<Integer, BackendAnswer> answers = new HashMap<>();
    private Outcome outcome = Outcome.UNDECIDED;

    public SeatRequest(Seat seat, BitSet asked) {
        this.seat = seat;
        this.asked = (BitSet) asked.clone();
    }

    public Seat seat() {
        return seat;
    }

    /** The backends asked to allocate the seat. */
    public BitSet asked() {
        return (BitSet) asked.clone();
    }

    public Outcome outcome() {
        return outcome;
    }

    public boolean allAnswered() {
        return answered.equals(asked);
    }

    /**
     * Records a backend's answer to ALLOCATE (an acknowledgement is a {@link BackendAnswer.Replied}).
     *
     * @return the outcome if this answer decided the request, else {@link Outcome#UNDECIDED} (also for every
     *         answer after the decision)
     */
    public Outcome answer(int backend, BackendAnswer answer) {
        if (!asked.get(backend) || answered.get(backend)) {
            return Outcome.UNDECIDED;
        }
        answered.set(backend);
        answers.put(backend, answer);
        if (answer instanceof BackendAnswer.Replied) {
            acked.set(backend);
        }
        if (outcome != Outcome.UNDECIDED) {
            return Outcome.UNDECIDED;
        }
        int outstanding = asked.cardinality() - answered.cardinality();
        if (acked.cardinality() >= 2) {
            outcome = Outcome.GRANTED;
            return outcome;
        }
        if (acked.cardinality() + outstanding < 2) {
            outcome = Outcome.REFUSED;
            return outcome;
        }
        return Outcome.UNDECIDED;
    }

    /**
     * After a grant: every backend that answered anything but an acknowledgement lacks the seat (it refused,
     * timed out, lost its connection, or dropped the request past its deadline) and must be re-synced.
     */
    public BitSet missingAfterGrant() {
        BitSet missing = (BitSet) answered.clone();
        missing.andNot(acked);
        return missing;
    }

    /** After a refusal: every backend that acknowledged holds an allocation nobody was granted; free it. */
    public BitSet heldAfterRefusal() {
        return (BitSet) acked.clone();
    }

    /** The refusal to give the client: two copies that refused alike decide it, otherwise the quorum is missing. */
    public BackendAnswer.Refused refusal(String name) {
        Map<Integer, Integer> byCode = new HashMap<>();
        List<BackendAnswer.Refused> refusals = new ArrayList<>();
        for (BackendAnswer answer : answers.values()) {
            if (answer instanceof BackendAnswer.Refused refused) {
                refusals.add(refused);
                if (byCode.merge(refused.code(), 1, Integer::sum) >= 2) {
                    return refused;
                }
            }
        }
        return (BackendAnswer.Refused) BackendAnswer.refused(CmError.REDUNDANCY_SERVER_MISSING, name + ": fewer than 2 of "
                + asked.cardinality() + " backends acknowledged the seat"
                + (refusals.isEmpty() ? "" : " (" + refusals.get(0).text() + ")"));
    }

    /** Whether the copies refused differently (an integrity problem worth a log line). */
    public boolean refusalsDisagree() {
        return answers.values().stream().filter(a -> a instanceof BackendAnswer.Refused)
                .map(a -> ((BackendAnswer.Refused) a).code()).distinct().count() > 1;
    }

    public Map<Integer, BackendAnswer> answers() {
        return Map.copyOf(answers);
    }
}
