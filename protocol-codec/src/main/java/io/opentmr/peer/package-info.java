/**
 * The TMR node's client of one backend: {@link io.opentmr.peer.PeerConnection} opens a TCP connection,
 * passes the mutual HMAC challenge on the cluster secret ({@link io.opentmr.protocol.PeerAuth}), and then
 * carries peer requests (INVENTORY, ALLOCATE, LEASE_*, …) matched to their replies by request id, each
 * with a timeout and under a bound of requests in flight. Every call is asynchronous: the node's actors
 * pipe the returned futures to themselves.
 *
 * <p>It owns one connection and nothing beyond it: no reconnect, no heartbeat, no backoff (the node's
 * BackendWatcher decides when to try again and what a lost connection means), and not the event loops,
 * which belong to whoever passes them in. It knows the wire only through {@code io.opentmr.protocol}
 * (messages and the frame codec) and must know nothing of actors, Pekko, quorum, leases or seats: a
 * reply is handed back as the message it is, and what it means is the caller's business.
 */
package io.opentmr.peer;
