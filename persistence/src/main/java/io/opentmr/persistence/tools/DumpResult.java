package io.opentmr.persistence.tools;

import io.opentmr.persistence.log.LogScanner;
import java.util.List;

/**
 * What {@link JournalTools#dump} did: records printed, records read, and the damage it read around (dump prints
 * what is readable; {@link JournalTools#verify} judges it).
 */
public record DumpResult(long printed, long scanned, List<LogScanner.Damage> damages) {

    public DumpResult {
        damages = List.copyOf(damages);
    }
}
