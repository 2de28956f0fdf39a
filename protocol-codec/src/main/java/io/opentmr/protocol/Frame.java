package io.opentmr.protocol;

/**
 * One unit on the wire: a message and the request id that pairs a reply with its request.
 * The requester chooses the id (any 32-bit value); the reply carries the same id, which also
 * makes a retried request recognisable.
 */
public record Frame(int requestId, Message message) {

    /** The protocol version this code speaks and sends in every frame. */
    public static final int PROTOCOL_VERSION = 1;

    public Frame {
        Check.notNull(message, "message");
    }

    @Override
    public String toString() {
        return "Frame[" + Integer.toUnsignedString(requestId) + " " + message + "]";
    }
}
