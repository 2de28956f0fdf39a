package io.opentmr.protocol;

/**
 * Input that breaks the protocol: the decoder answers it with one ERROR frame carrying
 * {@link #error()} and this message, then closes the connection.
 */
public final class ProtocolException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final CmError error;
    private final int requestId;

    public ProtocolException(CmError error, String message, int requestId) {
        super(message, null, false, false);
        this.error = error;
        this.requestId = requestId;
    }

    public CmError error() {
        return error;
    }

    /** The offending frame's request id, so the ERROR answers it; 0 when the header was unreadable. */
    public int requestId() {
        return requestId;
    }
}
