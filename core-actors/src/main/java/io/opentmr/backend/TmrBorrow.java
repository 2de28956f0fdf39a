package io.opentmr.backend;

import java.time.Instant;

/**
 * A TMR node's allocation turned into a borrow (PEER_BORROW): the seat stays taken until {@code expiresAt} or
 * the node's FREE (an early return), also while no node is connected; past {@code expiresAt} the backend frees
 * it by itself.
 *
 * @param tmrHandleId the node's handle whose allocation holds the seat
 * @param ticketId    the node's ticket id
 * @param clientId    the client the ticket is for
 * @param expiresAt   end of the borrow
 */
public record TmrBorrow(long tmrHandleId, long ticketId, String clientId, Instant expiresAt) {
}
