package io.opentmr.tmr.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.LeaseCertificate;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.Serial;
import io.opentmr.testing.MutableClock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/** The node's side of the lease: which grants make up its certificate, and for how long. */
class PeerGroupTest {

    /** The node's wall clock: the grants are timed on it too, and the deadlines of its writes. */
    private final MutableClock clock = new MutableClock(Instant.parse("2026-11-23T12:00:00Z"));
    /** The node's monotonic clock, which the grants are timed on too (only its differences count). */
    private final MutableClock monotonic = new MutableClock(Instant.ofEpochMilli(5_000));

    private PeerGroup group(Duration timeout, boolean leaseWanted) {
        return new PeerGroup(3, clock, monotonic::millis, timeout, leaseWanted);
    }

    /** Backends 0 and 1 grant epoch 4 for 2 s, asked for now. */
    private void grantTwo(PeerGroup group) {
        group.granted(0, grant(0, 4, 2_000), group.now());
        group.granted(1, grant(1, 4, 2_000), group.now());
    }

    /** A link to a backend that answers each request as {@code answers} says. */
    private static PeerLink link(Function<Message, CompletionStage<Message>> answers) {
        return new PeerLink() {
            @Override
            public CompletionStage<Message> request(Message request) {
                return answers.apply(request);
            }

            @Override
            public CompletionStage<Void> closed() {
                return new CompletableFuture<>();
            }

            @Override
            public String backendName() {
                return "backend";
            }

            @Override
            public void close() {
            }
        };
    }

    /** Time passes: both clocks move. */
    private void pass(Duration time) {
        clock.advance(time);
        monotonic.advance(time);
    }

    private LeaseGrant grant(int backend, long epoch, long ttlMillis) {
        // The backend's issue time is deliberately far off: the node times grants by its own clocks only.
        return new LeaseGrant(LeaseGrant.ACTIVE_LEASE, "node-a", epoch, 1, ttlMillis, new Serial(129, backend + 1),
                Bytes.of(new byte[64]));
    }

    @Test
    void reSyncSlotsAreSharedByEveryLicenseAndCountedPerBackend() {
        PeerGroup group = group(Duration.ofSeconds(1), true);
        assertEquals(300, group.takeResyncSlots(0, 300));
        assertEquals(PeerGroup.RESYNC_SLOTS - 300, group.takeResyncSlots(0, 300), "what is left");
        assertEquals(0, group.takeResyncSlots(0, 1), "every slot in use");
        assertEquals(PeerGroup.RESYNC_SLOTS, group.takeResyncSlots(1, 10_000), "another backend's own slots");
        group.releaseResyncSlots(0, 100);
        assertEquals(100, group.takeResyncSlots(0, 150));
        assertEquals(0, group.takeResyncSlots(2, 0));
        assertEquals(0, group.takeResyncSlots(2, -5));
    }

    @Test
    void aGrantCountsForTheTtlTheBackendGrantedNotTheTtlTheNodeAskedFor() {
        PeerGroup group = group(Duration.ofSeconds(1), true);
        // The node asks for its configured 2 s; backend 0 capped its grant at 500 ms, backend 1 granted 2 s.
        assertEquals(-1, group.granted(0, grant(0, 4, 500), group.now()));
        assertEquals(-1, group.granted(1, grant(1, 4, 2_000), group.now()));
        assertTrue(group.holdsLease());
        assertEquals(2, group.certificate().grants().size());

        pass(Duration.ofMillis(499));
        assertTrue(group.holdsLease(), "both grants run");
        pass(Duration.ofMillis(1));
        assertFalse(group.holdsLease(), "backend 0's grant ran out after the 500 ms it granted");
        assertTrue(group.certificate().grants().isEmpty());

        group.granted(2, grant(2, 4, 2_000), group.now());
        assertEquals(2, group.certificate().grants().size(), "backends 1 and 2 still carry it");
        pass(Duration.ofMillis(1_500));
        assertFalse(group.holdsLease(), "backend 1's 2 s from its grant are over");
    }

    @Test
    void aGrantRunsFromWhenItsRequestWasSentNotFromWhenTheAnswerArrived() {
        PeerGroup group = group(Duration.ofSeconds(1), true);
        PeerGroup.Moment sent = group.now();
        // The answers take 300 ms: the backends started their 1 s when they got the requests, in between.
        pass(Duration.ofMillis(300));
        group.granted(0, grant(0, 4, 1_000), sent);
        group.granted(1, grant(1, 4, 1_000), sent);
        assertTrue(group.holdsLease());
        pass(Duration.ofMillis(699));
        assertTrue(group.holdsLease(), "1 s after sending, less a millisecond");
        pass(Duration.ofMillis(1));
        assertFalse(group.holdsLease(), "the backends may have let the grants go 1 s after the requests were sent");
    }

    @Test
    void aWriteIsSentWithTheDeadlineWhenTheNodeStopsWaiting() {
        PeerGroup group = new PeerGroup(3, clock, Duration.ofMillis(800));
        assertEquals(clock.millis() + 800, group.deadline());
        clock.advance(Duration.ofSeconds(3));
        assertEquals(clock.millis() + 800, group.deadline(), "taken when the request is made, not before");
    }

    @Test
    void aStepBackOfTheWallClockDoesNotLengthenAGrant() {
        PeerGroup group = group(Duration.ofSeconds(1), true);
        grantTwo(group);
        clock.advance(Duration.ofMinutes(-10));
        monotonic.advance(Duration.ofMillis(1_999));
        assertTrue(group.holdsLease());
        monotonic.advance(Duration.ofMillis(1));
        // Cut off from the backends: no renewal came, and theirs may have run out. On the wall clock the node held
        // them ten minutes longer.
        assertFalse(group.holdsLease(), "the grants end 2 s after they were asked for, whatever the wall clock did");
        assertEquals(0, group.grantsHeld());
        assertEquals(-1, group.grantEpoch(0));
    }

    @Test
    void aGrantAlsoEndsWhenTheWallClockSaysItsTtlHasPassedAsAfterASuspend() {
        PeerGroup group = group(Duration.ofSeconds(1), true);
        grantTwo(group);
        // A suspended host: its monotonic clock did not count the minute it was away; the backends did.
        clock.advance(Duration.ofMinutes(1));
        assertFalse(group.holdsLease(), "the wall clock says the grants ran out");
        assertEquals(0, group.grantsHeld());
        // Its renewals bring them back.
        grantTwo(group);
        assertTrue(group.holdsLease());
    }

    @Test
    void aGrantRunsFromItsSendingOnTheMonotonicClockThoughTheWallClockSteppedBackMeanwhile() {
        PeerGroup group = group(Duration.ofSeconds(1), true);
        PeerGroup.Moment sent = group.now();
        clock.advance(Duration.ofMinutes(-10));
        monotonic.advance(Duration.ofMillis(300));
        group.granted(0, grant(0, 4, 1_000), sent);
        group.granted(1, grant(1, 4, 1_000), sent);
        monotonic.advance(Duration.ofMillis(699));
        assertTrue(group.holdsLease());
        monotonic.advance(Duration.ofMillis(1));
        assertFalse(group.holdsLease(), "1 s after the requests were sent by the monotonic clock");
    }

    @Test
    void renewalsAfterAStepBackOfTheWallClockKeepTheLease() {
        PeerGroup group = group(Duration.ofSeconds(1), true);
        grantTwo(group);
        clock.advance(Duration.ofMinutes(-10));
        // The grants shown are replaced once less than half their lifetime is left, on the clock that ends them
        // first; measured on the wall clock alone, after the step, they would be kept until they run out.
        for (int renewal = 0; renewal < 10; renewal++) {
            pass(Duration.ofMillis(500));
            grantTwo(group);
            assertTrue(group.holdsLease(), "after renewal " + renewal);
        }
    }

    @Test
    void aCertificateEndsOnceFewerThanTwoOfItsGrantsAreCurrentWhateverOrderTheClocksEndThemIn() {
        PeerGroup group = group(Duration.ofSeconds(1), true);
        group.granted(0, grant(0, 4, 2_000), group.now());
        pass(Duration.ofMillis(800));
        group.granted(2, grant(2, 4, 2_000), group.now());
        clock.advance(Duration.ofMillis(-3_600));
        pass(Duration.ofMillis(1_000));
        group.granted(1, grant(1, 4, 2_000), group.now());
        // A suspend: the wall clock moves on, the monotonic one does not.
        clock.advance(Duration.ofMillis(1_800));
        pass(Duration.ofMillis(200));
        // Backend 0's grant ended on the monotonic clock, backend 1's on the wall clock: only backend 2's is left.
        assertEquals(1, group.grantsHeld());
        assertFalse(group.holdsLease(), "one grant is no certificate");
        assertTrue(group.certificate().grants().isEmpty());
    }

    @Test
    void aCertificateABackendRefusedAsExpiredShowsTheNewestGrantsFromThen() throws Exception {
        PeerGroup group = group(Duration.ofSeconds(1), true);
        grantTwo(group);
        LeaseCertificate first = group.certificate();
        pass(Duration.ofMillis(500));
        LeaseGrant renewal0 = grant(0, 4, 1_999);
        LeaseGrant renewal1 = grant(1, 4, 1_999);
        group.granted(0, renewal0, group.now());
        group.granted(1, renewal1, group.now());
        assertSame(first, group.certificate(), "renewals while more than half the lifetime is left keep it");
        List<CompletableFuture<Message>> answers = new ArrayList<>();
        group.linkUp(0, link(request -> {
            CompletableFuture<Message> answer = new CompletableFuture<>();
            answers.add(answer);
            return answer;
        }));
        CompletableFuture<Message> late = group.call(0, certificate -> new Message.Inventory()).toCompletableFuture();
        CompletableFuture<LeaseCertificate> seenByTheCaller = new CompletableFuture<>();
        CompletableFuture<Message> refused = group.call(0, certificate -> new Message.Inventory()).toCompletableFuture();
        refused.whenComplete((reply, failure) -> seenByTheCaller.complete(group.certificate()));

        // Another backend's refusal does not help with newer grants of the same epoch.
        CmFailure stale = new CmFailure(CmError.TMR_LEASE_REFUSED, "lease certificate refused, stale epoch: …");
        CompletableFuture<Message> rival = group.call(0, certificate -> new Message.Inventory()).toCompletableFuture();
        answers.get(2).completeExceptionally(stale);
        assertSame(stale, assertThrows(ExecutionException.class, () -> rival.get(5, TimeUnit.SECONDS)).getCause());
        assertSame(first, group.certificate(), "a rival's epoch is no matter for newer grants");

        // A backend whose clock stepped forward counts the shown grants as run out, from their issue time. Its answer
        // comes on another thread, as a connection's does.
        CmFailure expired = new CmFailure(CmError.TMR_LEASE_REFUSED, LeaseCertificate.REFUSED_AS_EXPIRED + ": …");
        Thread io = new Thread(() -> answers.get(1).completeExceptionally(expired));
        io.start();
        io.join(5_000);
        assertSame(expired, assertThrows(ExecutionException.class, () -> refused.get(5, TimeUnit.SECONDS)).getCause(),
                "the caller sees the answer's own failure");
        LeaseCertificate second = seenByTheCaller.get(5, TimeUnit.SECONDS);
        assertNotSame(first, second, "the caller, hearing of the refusal, already writes with another certificate");
        assertSame(renewal0, second.grants().get(0));
        assertSame(renewal1, second.grants().get(1));

        // The write that carried the first certificate is refused late, after newer renewals: that certificate is
        // shown no more, and the one shown now stays.
        pass(Duration.ofMillis(100));
        grantTwo(group);
        answers.get(0).complete(new Message.Error(CmError.TMR_LEASE_REFUSED.code(),
                LeaseCertificate.REFUSED_AS_EXPIRED + ": …"));
        assertTrue(late.isDone());
        assertSame(second, group.certificate());
    }

    @Test
    void notWantingTheLeaseDropsTheCertificateAndIgnoresLateGrants() throws Exception {
        PeerGroup group = group(Duration.ofSeconds(1), true);
        int[] told = new int[1];
        group.addWishListener(() -> told[0]++);
        grantTwo(group);
        assertTrue(group.activeLease().held());
        assertEquals(4, group.activeLease().epoch());

        group.activeLease().want(false);
        assertEquals(1, told[0], "the watchers are told");
        assertFalse(group.activeLease().held(), "no writes with the certificate once it is not wanted");
        assertEquals(0, group.activeLease().epoch());
        group.granted(2, grant(2, 4, 2_000), group.now());
        assertEquals(0, group.grantsHeld(), "a grant answered after the wish changed counts for nothing");
        group.activeLease().want(false);
        assertEquals(1, told[0], "no change, nobody told");

        CompletableFuture<Void> held = group.activeLease().whenHeld().toCompletableFuture();
        group.activeLease().want(true);
        assertEquals(2, told[0]);
        assertFalse(held.isDone());
        group.granted(0, grant(0, 4, 2_000), group.now());
        group.granted(2, grant(2, 4, 2_000), group.now());
        held.get(5, TimeUnit.SECONDS);
    }

    @Test
    void releasedOnceEveryBackendGaveItsGrantBackOrLostItsConnection() throws Exception {
        PeerGroup group = group(Duration.ofSeconds(1), false);
        PeerLink link = link(request -> new CompletableFuture<>());
        group.linkUp(2, link);
        // Nothing asked for yet: released (completed on another thread, hence the bounded wait).
        group.activeLease().whenReleased().toCompletableFuture().get(5, TimeUnit.SECONDS);
        group.activeLease().want(true);
        group.asking(0);
        group.asking(1);
        group.asking(2);
        group.granted(0, grant(0, 4, 2_000), group.now());
        CompletableFuture<Void> released = group.activeLease().whenReleased().toCompletableFuture();
        group.activeLease().want(false);
        group.givenBack(0);
        group.givenBack(1);
        assertFalse(released.isDone(), "backend 2 may still hold a grant");
        group.linkDown(2, link);
        released.get(5, TimeUnit.SECONDS);
    }
}
