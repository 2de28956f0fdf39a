package io.opentmr.persistence.log;

import java.util.Locale;

/** When the log forces written bytes to the device, and therefore when a write is acknowledged. */
public enum FsyncPolicy {
    /** One fsync per write request: no request shares an fsync with another. Slowest, simplest to reason about. */
    ALWAYS,
    /** Concurrent requests are written together and share one fsync; each is acknowledged after that fsync. */
    BATCH,
    /** Never force; acknowledged after the write reaches the page cache. Loses acknowledged data on power loss. */
    NEVER;

    /** Parses the configuration value ({@code always | batch | never}). */
    public static FsyncPolicy parse(String value) {
        try {
            return valueOf(value.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("fsync must be one of always, batch, never; got '" + value + "'", e);
        }
    }
}
