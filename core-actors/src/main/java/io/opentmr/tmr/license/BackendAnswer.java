package io.opentmr.tmr.license;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Message;

/**
 * What one backend said to one request, as the rules of this package see it: a reply, a refusal with its
 * CodeMeter number (the copy's answer), or no answer at all (connection lost, timeout, dropped past its
 * deadline), which is never a copy's answer and never counts in a vote.
 */
public sealed interface BackendAnswer {

    record Replied(Message reply) implements BackendAnswer {
    }

    record Refused(int code, String text) implements BackendAnswer {
    }

    record Lost(String why) implements BackendAnswer {
    }

    /**
     * The backend refused the node's lease certificate (134): not a copy's answer but the node's own standing,
     * which changes while the grants converge on one epoch or when another node holds the lease.
     */
    record Fenced(String text) implements BackendAnswer {
    }

    static BackendAnswer refused(CmError error, String text) {
        return new Refused(error.code(), text);
    }

    /** A copy's answer in a vote: the reply itself, or the refusal as an ERROR message; null when lost. */
    default Message asVote() {
        if (this instanceof Replied replied) {
            return replied.reply();
        }
        if (this instanceof Refused refused) {
            return new Message.Error(refused.code(), refused.text());
        }
        return null;
    }

    default String describe() {
        if (this instanceof Replied replied) {
            return replied.reply().type().name();
        }
        if (this instanceof Refused refused) {
            return "error " + refused.code() + ": " + refused.text();
        }
        if (this instanceof Fenced fenced) {
            return "certificate refused: " + fenced.text();
        }
        return "no answer: " + ((Lost) this).why();
    }
}
