package io.opentmr.persistence.log;

import java.io.IOException;

/** Another process (or another open log in this JVM) holds the journal directory. */
public final class JournalLockedException extends IOException {
    private static final long serialVersionUID = 1L;

    public JournalLockedException(String message) {
        super(message);
    }
}
