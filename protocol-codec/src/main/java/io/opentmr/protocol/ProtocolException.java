package io.opentmr.protocol;

/**
 * Input that breaks the protocol: the decoder answers it with one ERROR frame carrying
 * {@link #error()} and this message, then closes the connection.
 */
public final class ProtocolException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final CmError error;

    public ProtocolException(CmError error, String message) {
        super(message, null, false, false);
        this.error = error;
    }

    public CmError error() {
        return error;
    }
}
