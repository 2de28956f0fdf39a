package io.opentmr.backend;

import com.fasterxml.jackson.databind.JsonNode;
import org.apache.pekko.serialization.jackson.JacksonMigration;

/**
 * The version of the backend container's journaled records whose shape changed, written into the record's
 * manifest by Pekko's Jackson serializer ({@code pekko.serialization.jackson.migrations} in reference.conf).
 * Records without a version were written before versions were kept: version 1.
 *
 * <ul>
 *   <li>1: {@code LeaseEpochRaised} without {@code holder}; {@code PeerUnitsChanged} without
 *       {@code operation}; snapshots without {@code leaseHolders} and with peer operations without
 *       {@code at}.</li>
 *   <li>2: the holder of the highest epoch is kept (the same holder keeps its epoch, any other gets a higher
 *       one); a peer unit operation says whether it was a SET (which forgets the item's earlier ids) and
 *       when it was remembered (the retry window).</li>
 *   <li>3: {@code HandleOpened} and the snapshot's handles carry the {@code requestId} of the ACCESS that opened
 *       the handle, so a re-sent ACCESS finds its handle also after a restart (earlier handles: null, found by
 *       no re-sent ACCESS).</li>
 *   <li>4: {@code AllocationBorrowed} and the snapshot's {@code tmrBorrows}: TMR allocations borrowed through a
 *       node (earlier snapshots: null, no TMR borrow).</li>
 *   <li>5: {@code LicenseUpdated}'s update and the snapshot's items carry {@code tmrGroupStatement}, the vendor's
 *       signed statement of a TMR copy's group keys (earlier records: null, a copy borrowed through no node).</li>
 * </ul>
 *
 * Reading version 1 needs no change: the new fields read as null, which the code takes as "not known" (an
 * unknown holder is another holder; an unknown operation a DECREMENT; an unknown time outside the retry
 * window; an unknown request id no request). Reading versions 2 to 4 needs none either. A record of a version above {@link #currentVersion()} (written by a newer backend) is refused,
 * and the container does not start: open the data directory with that newer version.
 */
public final class ContainerEventVersions extends JacksonMigration {

    public static final int CURRENT = 5;

    @Override
    public int currentVersion() {
        return CURRENT;
    }

    @Override
    public JsonNode transform(int fromVersion, JsonNode json) {
        return json;
    }
}
