package io.opentmr.client;

import io.opentmr.protocol.CmError;

/**
 * A refused or failed license request, carrying the CodeMeter error number.
 *
 * <p>Numbers come from two places: the server's ERROR reply (then {@link #text()} is the server's
 * explanation), or the SDK itself: {@link CmError#NETWORK_FAULT} (100) when a connection broke and
 * the request could not be retried or got no reply in time, {@link CmError#SERVER_NOT_FOUND} (101)
 * when no address answered within the timeout, {@link CmError#INVALID_HANDLE} (106) for a handle that
 * was closed or could not be resumed, and {@link CmError#REQUEST_OVERLOAD} (309) when the client's own
 * limit of requests in flight is reached.
 *
 * <p><b>Unchecked, on purpose.</b> Every SDK call can fail with a network fault, so a checked exception
 * would be declared on every method and wrapped in every lambda, and {@code LicenseHandle} could not
 * be a clean {@code try}-with-resources resource. Callers that treat a refused license as a normal
 * outcome (fall back to a reduced mode on 212) catch this type and switch on {@link #code()} or
 * {@link #error()}; each method's javadoc names the numbers it raises. This follows gRPC's
 * {@code StatusRuntimeException}, the other network client API most Java users know.
 */
public final class CmException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final int code;
    private final String text;

    /**
     * @param code the CodeMeter error number, as sent by the server or raised by the SDK
     * @param text what exactly went wrong (the server's text for a server's refusal)
     */
    public CmException(int code, String text) {
        this(code, text, null);
    }

    /**
     * @param error the error
     * @param text  what exactly went wrong
     */
    public CmException(CmError error, String text) {
        this(error.code(), text, null);
    }

    /**
     * @param code  the CodeMeter error number
     * @param text  what exactly went wrong
     * @param cause the local failure behind it, or {@code null}
     */
    public CmException(int code, String text, Throwable cause) {
        super(describe(code, text), cause);
        this.code = code;
        this.text = text;
    }

    /** The CodeMeter error number, always present, also for numbers this SDK does not know. */
    public int code() {
        return code;
    }

    /** The error for {@link #code()}, or {@code null} for a number the protocol does not define. */
    public CmError error() {
        return CmError.fromCode(code);
    }

    /** The server's text for a server's refusal, or the SDK's explanation for a local failure. */
    public String text() {
        return text;
    }

    /**
     * The same error raised again in the calling thread: the original (created on the I/O thread)
     * becomes the cause, so the stack trace shows both where the caller waited and where it failed.
     */
    CmException inCallerThread() {
        return new CmException(code, text, this);
    }

    private static String describe(int code, String text) {
        CmError error = CmError.fromCode(code);
        return "CodeMeter error " + code + (error == null ? "" : " (" + error.name() + ")") + ": " + text;
    }
}
