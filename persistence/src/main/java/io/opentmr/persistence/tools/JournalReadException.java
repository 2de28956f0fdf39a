package io.opentmr.persistence.tools;

import java.io.IOException;

/**
 * A journal the tools cannot read as asked: a directory that is not a journal, damage before its tail, a record that
 * cannot be decoded. The message says what and where, for people.
 */
public final class JournalReadException extends IOException {

    private static final long serialVersionUID = 1L;

    public JournalReadException(String message) {
        super(message);
    }

    public JournalReadException(String message, Throwable cause) {
        super(message, cause);
    }
}
