/**
 * The {@code tmr} launcher (picocli): {@code backend}, {@code node}, {@code demo}, {@code client},
 * {@code license}, {@code journal}, {@code bench}; the Logback configuration, the fat jar, the Debian
 * package with its systemd units and keepalived templates (DESIGN §7).
 *
 * <p>It wires the other modules together and holds no business rules of its own.
 */
package io.opentmr.launcher;
