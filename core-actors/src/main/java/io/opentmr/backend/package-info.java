/**
 * The backend license server (DESIGN §4). {@link io.opentmr.backend.ContainerState} holds a
 * container's business rules — seats by access mode, feature bits, expiration and activation, usage
 * periods, unit counters, borrowing, license updates — as decisions and events, testable without an
 * actor; every refusal carries its CodeMeter number.
 *
 * <p>It knows the protocol's value types but not their bytes, and nothing of how events are stored.
 */
package io.opentmr.backend;
