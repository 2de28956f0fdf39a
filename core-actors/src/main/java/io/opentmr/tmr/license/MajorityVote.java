package io.opentmr.tmr.license;

import io.opentmr.protocol.Message;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * A question put to every usable copy (units, crypt) and decided by two copies that answer alike. A copy
 * that gives no answer (lost, timed out) is not counted; two refusals with the same error number are a
 * majority too (the copies agree that the request is refused).
 *
 * <p>A plain class: the license actor feeds it answers; tests drive it directly.
 */
public final class MajorityVote {

    public enum State { OPEN, DECIDED, DISAGREE, TOO_FEW }

    private final BitSet asked;
    private final Map<Integer, Message> answers = new LinkedHashMap<>();
    private final BitSet lost = new BitSet();
    private final BitSet fenced = new BitSet();
    private State state = State.OPEN;
    private Message decided;

    public MajorityVote(BitSet asked) {
        this.asked = (BitSet) asked.clone();
    }

    public BitSet asked() {
        return (BitSet) asked.clone();
    }

    /**
     * Records one backend's answer.
     *
     * @return the new state if this answer ended the vote (decided, disagreeing or too few answers), else
     *         {@link State#OPEN} (also for every answer after the end)
     */
    public State answer(int backend, BackendAnswer answer) {
        if (!asked.get(backend) || answers.containsKey(backend) || lost.get(backend)) {
            return State.OPEN;
        }
        Message vote = answer.asVote();
        if (vote == null) {
            lost.set(backend);
            if (answer instanceof BackendAnswer.Fenced) {
                fenced.set(backend);
            }
        } else {
            answers.put(backend, vote);
        }
        if (state != State.OPEN) {
            return State.OPEN;
        }
        Optional<Message> majority = majority();
        if (majority.isPresent()) {
            decided = majority.get();
            state = State.DECIDED;
        } else if (allAnswered()) {
            state = answers.size() >= 2 ? State.DISAGREE : State.TOO_FEW;
        }
        return state;
    }

    public State state() {
        return state;
    }

    /** The answer two copies gave; only when {@link State#DECIDED}. */
    public Message decided() {
        return decided;
    }

    public boolean allAnswered() {
        return answers.size() + lost.cardinality() == asked.cardinality();
    }

    /** Backends that gave no answer: what they did is unknown. */
    public BitSet lost() {
        return (BitSet) lost.clone();
    }

    /** Backends among the lost ones that refused the node's lease certificate. */
    public BitSet fenced() {
        return (BitSet) fenced.clone();
    }

    public Map<Integer, Message> answers() {
        return Map.copyOf(answers);
    }

    /** Backends whose answer differs from the decided one (empty while undecided). */
    public BitSet dissenters() {
        BitSet dissenting = new BitSet();
        if (decided != null) {
            answers.forEach((backend, given) -> {
                if (!same(given, decided)) {
                    dissenting.set(backend);
                }
            });
        }
        return dissenting;
    }

    private Optional<Message> majority() {
        List<Message> given = new ArrayList<>(answers.values());
        for (int i = 0; i < given.size(); i++) {
            for (int j = i + 1; j < given.size(); j++) {
                if (same(given.get(i), given.get(j))) {
                    return Optional.of(given.get(i));
                }
            }
        }
        return Optional.empty();
    }

    static boolean same(Message a, Message b) {
        if (a instanceof Message.Error ea && b instanceof Message.Error eb) {
            return ea.code() == eb.code();
        }
        return Objects.equals(a, b);
    }
}
