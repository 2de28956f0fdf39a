/** The Pekko snapshot store plugin: one checksummed file per snapshot, replaced atomically. */
package io.opentmr.persistence.snapshot;
