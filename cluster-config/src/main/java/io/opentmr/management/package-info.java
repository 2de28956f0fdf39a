/**
 * Management HTTP of every backend and TMR node (DESIGN §7, {@code docs/management-http.md}): pekko-management in the
 * component's own actor system with its health routes (readiness: the node serves; the backend's container answers),
 * OpenTMR's JSON routes under {@code /tmr} and {@code /metrics}. {@link io.opentmr.management.Management} starts it
 * for a {@code TmrNode} or a {@code Backend}; {@link io.opentmr.management.ManagementSettings} reads
 * {@code opentmr.management.*} and renders the {@code pekko.management.*} the component's actor system is created with.
 *
 * <p>It reads the components through their public views (their actors' overview commands, status and metrics); it
 * knows no wire byte layouts and no journal storage.
 */
package io.opentmr.management;
