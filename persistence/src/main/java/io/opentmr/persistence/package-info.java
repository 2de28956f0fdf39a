/**
 * The durable Pekko journal and snapshot store on a local segmented append-only log, its read journal
 * and the journal tools (DESIGN §6). Depends only on Pekko; wired into the other modules by
 * configuration, so it must not know any domain type.
 */
package io.opentmr.persistence;
