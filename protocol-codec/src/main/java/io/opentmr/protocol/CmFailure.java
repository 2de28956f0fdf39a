package io.opentmr.protocol;

/**
 * A CodeMeter error number with its text, below the client SDK: a backend's refusal on its way to the
 * ERROR reply, or an ERROR reply (or a lost connection, 100) as the peer client hands it to a TMR node.
 * The SDK's public {@code io.opentmr.client.CmException} stays the type its users catch; this one never
 * reaches them.
 *
 * <p>{@link #getMessage()} names the number and the error ({@code CodeMeter error 212 (NO_MORE_LICENSES): …});
 * {@link #text()} is the text alone, what an ERROR reply carries.
 *
 * <p>No stack trace: it is a value that travels from where a request was decided to where it is
 * answered (often another thread), and refusals such as 212 are part of a busy server's normal load.
 */
public final class CmFailure extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final int code;
    private final String text;

    /** @param text what exactly went wrong, as an ERROR reply's text would say it */
    public CmFailure(CmError error, String text) {
        this(error.code(), text);
    }

    /** @param code a CodeMeter error number, also one this protocol does not define (a peer's ERROR reply) */
    public CmFailure(int code, String text) {
        super(describe(code, text), null, false, false);
        this.code = code;
        this.text = text;
    }

    /** The CodeMeter error number. */
    public int code() {
        return code;
    }

    /** The error for {@link #code()}, or {@code null} for a number the protocol does not define. */
    public CmError error() {
        return CmError.fromCode(code);
    }

    public String text() {
        return text;
    }

    /** The ERROR reply that says this. */
    public Message.Error toMessage() {
        return new Message.Error(code, text);
    }

    @Override
    public String toString() {
        return getMessage();
    }

    /** As the SDK's {@code CmException} says it, so logs read the same above and below the SDK. */
    private static String describe(int code, String text) {
        CmError error = CmError.fromCode(code);
        return "CodeMeter error " + code + (error == null ? "" : " (" + error.name() + ")") + ": " + text;
    }
}
