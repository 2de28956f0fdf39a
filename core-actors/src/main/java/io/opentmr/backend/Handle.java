package io.opentmr.backend;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LicenseKey;
import java.time.Instant;

/**
 * An open handle: which product item it uses, how, and who holds it.
 *
 * @param tokenDigest SHA-256 of the resume token, hex; the token itself is never stored
 * @param station     the client station as the server saw it (the connection's peer address): what
 *                    STATIONSHARE counts, since the host name in HELLO is the client's own claim
 * @param requestId   the id of the ACCESS that opened it; null for handles opened before it was kept
 */
public record Handle(long id, LicenseKey item, AccessMode mode, long featureBits, HandleOwner owner,
                     String tokenDigest, Instant openedAt, String station, Integer requestId) {

    /** The same handle held by another session (after RESUME). */
    public Handle withSession(long sessionId) {
        return new Handle(id, item, mode, featureBits, new HandleOwner(owner.host(), owner.user(), owner.pid(),
                sessionId), tokenDigest, openedAt, station, requestId);
    }
}
