package io.opentmr.server;

import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;

/**
 * Told of every request a {@link FrameSession} answers: its type, the reply and how long the answer took from
 * the moment the request was read. Runs on the connection's event loop, once per request: an implementation
 * counts and returns (no lock, no I/O, nothing allocated per call), or the server slows down.
 */
@FunctionalInterface
public interface RequestObserver {

    /** Observes nothing. */
    RequestObserver NONE = (request, reply, nanos) -> { };

    /**
     * @param request the type of the request answered
     * @param reply   its answer (an {@link Message.Error} for a refusal)
     * @param nanos   from reading the request to writing the answer
     */
    void answered(MessageType request, Message reply, long nanos);
}
