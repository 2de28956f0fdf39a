package io.opentmr.tmr.license;

import io.opentmr.protocol.AccessMode;

/**
 * One handle's use of a TMR license, as the seat table keeps it.
 *
 * @param station     the client's address: what STATIONSHARE counts (and the allocation's owner host)
 * @param tokenDigest SHA-256 of the handle's resume token, base64
 */
public record Seat(long handleId, AccessMode mode, long featureBits, String station, String user, long pid,
                   long sessionId, String tokenDigest, long epoch) {
}
