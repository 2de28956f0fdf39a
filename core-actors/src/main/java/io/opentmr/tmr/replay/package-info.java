/**
 * The node's state as {@code tmr journal replay} rebuilds it from a journal ({@link io.opentmr.tmr.replay.NodeReplay}),
 * with the node's own event handlers, and the views it is shown in ({@link io.opentmr.tmr.replay.LicenseView},
 * {@link io.opentmr.tmr.replay.HandleView}, {@link io.opentmr.tmr.replay.ContainerView}): the shapes of the JSON
 * documented in {@code docs/journal-replay.md}, the same a running node's management routes show. Nothing here reads
 * files: what a journal holds comes decoded, from whoever read it ({@code persistence}, wired in by the launcher).
 */
package io.opentmr.tmr.replay;
