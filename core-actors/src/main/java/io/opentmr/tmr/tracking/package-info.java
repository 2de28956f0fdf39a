/**
 * The TMR node's tracking log ({@link io.opentmr.tmr.tracking.NodeTrackingLog}): what the node's licenses,
 * virtual container and sessions decided, one JSON line each, in the node's data directory, and the lines of
 * journaled events written again after a restart when the file lacks them. It knows the shared line shape of
 * {@code io.opentmr.tracking}, not the seat rules.
 */
package io.opentmr.tmr.tracking;
