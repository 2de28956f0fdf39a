/** The Pekko Persistence Query read journal over the log; offsets are global positions. */
package io.opentmr.persistence.query;
