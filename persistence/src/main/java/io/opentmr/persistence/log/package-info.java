/**
 * The segmented append-only log under the journal: record format, group commit with an fsync policy, the in-memory
 * index, tombstones and segment removal, crash recovery and the directory lock. Knows nothing of Pekko, so the
 * journal tools and, later, twin replication can use it directly.
 */
package io.opentmr.persistence.log;
