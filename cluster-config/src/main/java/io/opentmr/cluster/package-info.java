/**
 * Typed settings read once from {@code reference.conf}, the twin cluster bootstrap, the active lease
 * held on the backends and used by the split-brain resolver, and the management HTTP routes (status,
 * health, metrics, operator JSON, dashboard) of DESIGN §6–§7.
 *
 * <p>It builds on {@code core-actors} and must not know wire byte layouts or journal storage.
 * Its issue has not come yet: this file marks the package it will fill.
 */
package io.opentmr.cluster;
