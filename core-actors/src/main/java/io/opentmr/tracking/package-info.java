/**
 * The tracking log shared by the backend and the TMR node: one JSON object per line
 * ({@link io.opentmr.tracking.TrackingLine}), in {@code DATA_DIR/tracking.log}, rotated daily into
 * {@code tracking.yyyy-MM-dd.log.gz} ({@link io.opentmr.tracking.TrackingFiles}, which also reads them back).
 * The node writes its file itself ({@link io.opentmr.tracking.TrackingFile}); the backend's lines go through the
 * {@code opentmr.tracking} logger, which the launcher sends to the same file names. It knows no server's state.
 */
package io.opentmr.tracking;
