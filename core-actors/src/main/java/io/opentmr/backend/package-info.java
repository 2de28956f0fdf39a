/**
 * The backend license server (DESIGN §4). {@link io.opentmr.backend.ContainerState} holds a
 * container's business rules — seats by access mode, feature bits, expiration and activation, usage
 * periods, unit counters, borrowing, license updates — as decisions and events, testable without an
 * actor; every refusal carries its CodeMeter number.
 *
 * <p>It knows the protocol's value types but not their bytes, and nothing of how events are stored.
 * Its listener and the plumbing its sessions share with the TMR node's are {@code protocol-codec}'s
 * {@code io.opentmr.server}; it knows nothing of the TMR node ({@code io.opentmr.tmr}).
 */
package io.opentmr.backend;
