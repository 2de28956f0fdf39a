package io.opentmr.tmr.license;

import com.fasterxml.jackson.databind.JsonNode;
import org.apache.pekko.serialization.jackson.JacksonMigration;

/**
 * The version of the node's journaled records (TMR license events and snapshots), written into every
 * record's manifest by Pekko's Jackson serializer ({@code pekko.serialization.jackson.migrations} in
 * reference.conf). Records without a version were written before versions were kept: version 1.
 *
 * <ul>
 *   <li>1: the first node. Seats without {@code host} and {@code requestId}; snapshots without
 *       {@code released}.</li>
 *   <li>2: seats name the ACCESS request that opened them ({@code host}, {@code requestId}); snapshots keep
 *       the handles released lately.</li>
 *   <li>3: {@code SeatBorrowed}: a seat borrowed through the node; snapshots keep the borrowed seats.
 *       {@code Checkpoint}: the whole seat table, journaled by a twin's active node.</li>
 * </ul>
 *
 * Reading version 1 needs no change: the new fields read as null or 0, which the code takes as "not known".
 * A record of a version above {@link #currentVersion()} (written by a newer node) is refused by Pekko, and
 * the license does not start: the data directory must be opened with that newer version.
 */
public final class NodeEventVersions extends JacksonMigration {

    public static final int CURRENT = 3;

    @Override
    public int currentVersion() {
        return CURRENT;
    }

    @Override
    public JsonNode transform(int fromVersion, JsonNode json) {
        return json;
    }
}
