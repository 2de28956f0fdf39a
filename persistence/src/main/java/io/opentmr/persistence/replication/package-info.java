/**
 * Log replication between the twin's active node (leader, the writer) and its standby (follower): handshake on
 * positions and epochs, truncation of a dead epoch's suffix, one round trip per group commit, bounded in-flight
 * window, degraded mode. Design in the module README ("Replication"). Knows the log, not the journal plugin.
 */
package io.opentmr.persistence.replication;
