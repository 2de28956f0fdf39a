package io.opentmr.tmr.license;

import io.opentmr.protocol.AccessMode;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Base64;

/**
 * One handle's use of a TMR license, as the seat table keeps it.
 *
 * @param station     the client's address: what STATIONSHARE counts (and the allocation's owner host)
 * @param tokenDigest SHA-256 of the handle's resume token, base64
 * @param grantedAtMillis when the node decided on the access: the handle's first sign of life
 */
public record Seat(long handleId, AccessMode mode, long featureBits, String station, String user, long pid,
                   long sessionId, String tokenDigest, long epoch, long grantedAtMillis) {

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
