/**
 * The TMR node (DESIGN §5): its actors ({@code io.opentmr.tmr.*}: backend watchers, quorum, virtual
 * containers, TMR licenses, client handles) and its client listener.
 *
 * <p>It speaks the wire protocol only through {@code protocol-codec}: the peer client
 * ({@code io.opentmr.peer}) towards the backends, the listener and session plumbing
 * ({@code io.opentmr.server}) towards clients. It uses nothing of the backend license server's package
 * {@code io.opentmr.backend} ({@code PackageDependencyTest} checks the compiled classes), must not know
 * byte layouts, how the journal stores records (that is {@code persistence}, wired in by configuration)
 * nor how the twin cluster is bootstrapped (that is {@code cluster-config}).
 */
package io.opentmr.tmr;
