package io.opentmr.persistence.log;

import java.io.IOException;
import java.nio.file.Path;

/** Damage before the tail of the log: refusing to start is safer than silently losing acknowledged records. */
public final class JournalCorruptedException extends IOException {
    private static final long serialVersionUID = 1L;

    private final transient Path file;
    private final long offset;

    public JournalCorruptedException(Path file, long offset, String reason) {
        super("journal damaged in " + file + " at offset " + offset + ": " + reason
                + "; refusing to start (set opentmr.persistence.repair = on to truncate the log there,"
                + " losing every record from that offset on)");
        this.file = file;
        this.offset = offset;
    }

    public Path file() {
        return file;
    }

    public long offset() {
        return offset;
    }
}
