package io.opentmr.tmr.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Serial;
import io.opentmr.testing.MutableClock;
import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;

/** The node's side of the lease: which grants make up its certificate, and for how long. */
class PeerGroupTest {

    private final MutableClock clock = new MutableClock(Instant.parse("2026-11-23T12:00:00Z"));

    private LeaseGrant grant(int backend, long epoch, long ttlMillis) {
        // The backend's issue time is deliberately far off: the node times grants by its own clock only.
        return new LeaseGrant(LeaseGrant.ACTIVE_LEASE, "node-a", epoch, 1, ttlMillis, new Serial(129, backend + 1),
                Bytes.of(new byte[64]));
    }

    @Test
    void aGrantCountsForTheTtlTheBackendGrantedNotTheTtlTheNodeAskedFor() {
        PeerGroup group = new PeerGroup(3, clock, Duration.ofSeconds(1));
        // The node asks for its configured 2 s; backend 0 capped its grant at 500 ms, backend 1 granted 2 s.
        assertEquals(-1, group.granted(0, grant(0, 4, 500), clock.millis()));
        assertEquals(-1, group.granted(1, grant(1, 4, 2_000), clock.millis()));
        assertTrue(group.holdsLease());
        assertEquals(2, group.certificate().grants().size());

        clock.advance(Duration.ofMillis(499));
        assertTrue(group.holdsLease(), "both grants run");
        clock.advance(Duration.ofMillis(1));
        assertFalse(group.holdsLease(), "backend 0's grant ran out after the 500 ms it granted");
        assertTrue(group.certificate().grants().isEmpty());

        group.granted(2, grant(2, 4, 2_000), clock.millis());
        assertEquals(2, group.certificate().grants().size(), "backends 1 and 2 still carry it");
        clock.advance(Duration.ofMillis(1_500));
        assertFalse(group.holdsLease(), "backend 1's 2 s from its grant are over");
    }

    @Test
    void aGrantRunsFromWhenItsRequestWasSentNotFromWhenTheAnswerArrived() {
        PeerGroup group = new PeerGroup(3, clock, Duration.ofSeconds(1));
        long sent = clock.millis();
        // The answers take 300 ms: the backends started their 1 s when they got the requests, in between.
        clock.advance(Duration.ofMillis(300));
        group.granted(0, grant(0, 4, 1_000), sent);
        group.granted(1, grant(1, 4, 1_000), sent);
        assertTrue(group.holdsLease());
        clock.advance(Duration.ofMillis(699));
        assertTrue(group.holdsLease(), "1 s after sending, less a millisecond");
        clock.advance(Duration.ofMillis(1));
        assertFalse(group.holdsLease(), "the backends may have let the grants go 1 s after the requests were sent");
    }

    @Test
    void aWriteIsSentWithTheDeadlineWhenTheNodeStopsWaiting() {
        PeerGroup group = new PeerGroup(3, clock, Duration.ofMillis(800));
        assertEquals(clock.millis() + 800, group.deadline());
        clock.advance(Duration.ofSeconds(3));
        assertEquals(clock.millis() + 800, group.deadline(), "taken when the request is made, not before");
    }
}
