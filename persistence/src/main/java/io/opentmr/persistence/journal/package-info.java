/** The Pekko journal plugin over the log, and the mapping between Pekko's persistent representation and records. */
package io.opentmr.persistence.journal;
