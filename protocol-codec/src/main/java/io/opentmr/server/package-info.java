/**
 * The server end of the protocol, shared by the backend and the TMR node: {@link io.opentmr.server.FrameServer}
 * listens (frame codec per connection, a bound on connections) and {@link io.opentmr.server.FrameSession} is
 * the plumbing every session shares (hello deadline, back-pressure, I/O errors, the bound on requests in
 * flight, replies written with their request id).
 *
 * <p>It knows the wire only through {@code io.opentmr.protocol} and nothing of what a session serves: no
 * actors, no Pekko, no containers, seats or leases. A session's answers arrive as {@code CompletionStage}s, or
 * are handed in from any thread through a {@link io.opentmr.server.FrameSession.Pending} (no future per request).
 */
package io.opentmr.server;
