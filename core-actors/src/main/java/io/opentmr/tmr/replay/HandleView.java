package io.opentmr.tmr.replay;

/**
 * One handle of a TMR license as the node shows it (the {@code handles} of {@code tmr journal replay --json}; the
 * node's management route for handles shows the same fields). Ids are decimal strings: a JavaScript number cannot hold
 * every 64-bit id.
 *
 * @param license    the license it holds, {@code FIRM:PRODUCT#TMRID}
 * @param mode       USERLIMIT, NOUSERLIMIT, EXCLUSIVE or STATIONSHARE
 * @param session    the node session that opened it (a restarted node has new sessions: the client RESUMEs)
 * @param epoch      the lease epoch it was granted under
 * @param grantedAt  when the node decided on the access (ISO-8601)
 * @param requestId  the id of the ACCESS that opened it, or null in seats journaled before it was kept
 * @param backends   the backends (1..3) holding its allocation, or null where not known (a replay)
 */
public record HandleView(String id, String license, String mode, long featureBits, Owner owner, String session,
                         long epoch, String grantedAt, Long requestId, java.util.List<Integer> backends) {

    /**
     * Who holds it: the host name the client gave in HELLO (null in seats journaled before it was kept), its address
     * (what STATIONSHARE counts, and what the backends' allocations name as the owner's host), user and process.
     */
    public record Owner(String host, String station, String user, long pid) {
    }
}
