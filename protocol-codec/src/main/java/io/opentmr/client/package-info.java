/**
 * The Java client SDK: opens license handles on an OpenTMR server (a backend or the active TMR node)
 * and keeps them usable across reconnects and fail-overs.
 *
 * <p>{@link io.opentmr.client.TmrClient} is the entry point; it owns one TCP connection at a time to
 * one of its configured addresses, sends keep-alives, and on connection loss reconnects (round-robin
 * over the addresses, following a standby's NOT_ACTIVE to the active node), RESUMEs every open
 * {@link io.opentmr.client.LicenseHandle} and re-sends the requests that are safe to repeat with their
 * original request id (ids are unique per process). A node's NOT_ACTIVE (not the active node, or not
 * ready yet) is never final: the client moves on and asks again; only a RESUME answered 106 loses a handle. Failures reach the caller as {@link io.opentmr.client.CmException} carrying the
 * CodeMeter error number. {@link io.opentmr.client.BorrowStore} keeps borrowed licenses, checked against
 * the issuing container's key, for offline use until they expire; {@link io.opentmr.client.AdminClient}
 * exports container contexts and imports signed license update files.
 *
 * <p>This package knows the protocol only through {@code io.opentmr.protocol} (messages and the frame
 * codec); it knows nothing about how servers keep their state.
 */
package io.opentmr.client;
