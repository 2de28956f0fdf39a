package io.opentmr.peer;

import io.opentmr.protocol.CodecLimits;
import java.time.Duration;

/**
 * How one {@link PeerConnection} behaves.
 *
 * @param connectTimeout the whole of {@link PeerConnection#connect}: TCP connect and the challenge
 * @param requestTimeout how long a request waits for its reply before it fails with a
 *                       {@link java.util.concurrent.TimeoutException}
 * @param maxInFlight    requests outstanding at once; one more fails at once with 309
 * @param limits         what the connection accepts from the backend; a frame beyond them closes it
 */
public record PeerOptions(Duration connectTimeout, Duration requestTimeout, int maxInFlight, CodecLimits limits) {

    public PeerOptions {
        positive(connectTimeout, "connectTimeout");
        positive(requestTimeout, "requestTimeout");
        if (maxInFlight < 1) {
            throw new IllegalArgumentException("maxInFlight must be at least 1: " + maxInFlight);
        }
        if (limits == null) {
            throw new IllegalArgumentException("limits must not be null");
        }
    }

    /**
     * 2 s to connect and authenticate, 2 s per request, 1024 in flight, the protocol's default limits.
     * A backend on the same site answers in milliseconds; a node that waits longer only learns later
     * that the copy is gone.
     */
    public static PeerOptions defaults() {
        return new PeerOptions(Duration.ofSeconds(2), Duration.ofSeconds(2), 1024, CodecLimits.DEFAULT);
    }

    private static void positive(Duration duration, String name) {
        if (duration == null || duration.isNegative() || duration.isZero()) {
            throw new IllegalArgumentException(name + " must be positive: " + duration);
        }
    }
}
