package io.opentmr.backend;

import io.opentmr.protocol.CmError;

/** A refused command, as the error of a {@code StatusReply}: carries the CodeMeter number to the client. */
public final class CmRefusal extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final transient CmError error;

    public CmRefusal(CmError error, String text) {
        super(text, null, false, false);
        this.error = error;
    }

    public CmError error() {
        return error;
    }
}
