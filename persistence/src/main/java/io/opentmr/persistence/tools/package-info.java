/** Read-only journal tools (dump, verify) that the {@code tmr journal} command wraps. */
package io.opentmr.persistence.tools;
