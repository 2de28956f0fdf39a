package io.opentmr.tmr.license;

import io.opentmr.protocol.AccessMode;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Base64;

/**
 * One handle's use of a TMR license, as the seat table keeps it (journaled with the grant).
 *
 * @param station     the client's address: what STATIONSHARE counts (and the allocation's owner host)
 * @param sessionId   the session that opened the handle (a restarted node has new sessions: RESUME rebinds)
 * @param tokenDigest SHA-256 of the handle's resume token, base64
 * @param grantedAtMillis when the node decided on the access: the handle's first sign of life
 * @param host        the host name the client gave in HELLO; null in seats journaled before it was kept
 * @param requestId   the request id of the ACCESS that opened it: with station, host, user and pid it names
 *                    the request, so a re-sent ACCESS gets this handle again (0 in older seats: not indexed)
 */
public record Seat(long handleId, AccessMode mode, long featureBits, String station, String user, long pid,
                   long sessionId, String tokenDigest, long epoch, long grantedAtMillis, String host,
                   long requestId) {

    /** The ACCESS that opened a seat, as a client re-sends it: its address, host, user, process and request id. */
    public record RequestKey(String station, String host, String user, long pid, long requestId) {
    }

    /** The request this seat answered, or null for a seat journaled before requests were kept. */
    public RequestKey requestKey() {
        return host == null ? null : new RequestKey(station, host, user, pid, requestId);
    }

    /** What a seat keeps of a resume token: its SHA-256, base64. */
    public static String digestOf(byte[] token) {
        try {
            return Base64.getEncoder().encodeToString(MessageDigest.getInstance("SHA-256").digest(token));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every JDK", e);
        }
    }

    /** Whether {@code token} is this seat's resume token (compared in constant time). */
    public boolean tokenMatches(byte[] token) {
        return MessageDigest.isEqual(Base64.getDecoder().decode(digestOf(token)),
                Base64.getDecoder().decode(tokenDigest));
    }
}
