/**
 * The domain and its actors (DESIGN §4, §5). This module will own the backend license server
 * ({@code io.opentmr.backend}), the TMR node's actors ({@code io.opentmr.tmr.*}: backend watchers,
 * quorum, virtual containers, TMR licenses, client handles), signed license files and crypto.
 *
 * <p>It speaks the wire protocol only through {@code protocol-codec} and must not know byte layouts;
 * it must not know how the journal stores records (that is {@code persistence}, wired in by
 * configuration) nor how the twin cluster is bootstrapped (that is {@code cluster-config}).
 * Its issue has not come yet: this file marks the package it will fill.
 */
package io.opentmr.tmr;
