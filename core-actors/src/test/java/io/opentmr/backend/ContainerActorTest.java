package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.CryptTransform;
import io.opentmr.license.Ed25519;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.LicenseUpdate;
import io.opentmr.license.VendorState;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.Serial;
import io.opentmr.testing.MutableClock;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import org.apache.pekko.Done;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.persistence.testkit.javadsl.EventSourcedBehaviorTestKit;
import org.apache.pekko.persistence.testkit.javadsl.EventSourcedBehaviorTestKit.CommandResultWithReply;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(60)
class ContainerActorTest {

    private static final long FIRM = 6_000_010;
    private static ActorTestKit testKit;

    @TempDir
    Path dataDir;

    private final KeyPair vendor = Ed25519.generate();
    private final MutableClock clock = new MutableClock(Instant.parse("2026-11-23T12:00:00Z"));
    private ContainerIdentity identity;
    private int nextRequestId = 1;
    private EventSourcedBehaviorTestKit<Container.Command, ContainerEvent, ContainerState> kit;

    @BeforeAll
    static void start() {
        testKit = ActorTestKit.create(EventSourcedBehaviorTestKit.config().withFallback(ConfigFactory.load()));
    }

    @AfterAll
    static void stop() {
        testKit.shutdownTestKit();
    }

    @BeforeEach
    void createContainer() throws Exception {
        identity = ContainerIdentity.loadOrCreate(dataDir, 7, new SecureRandom());
        kit = EventSourcedBehaviorTestKit.create(testKit.system(),
                Container.create(identity, List.of(vendor.getPublic()), Duration.ofSeconds(1), clock),
                EventSourcedBehaviorTestKit.enabledSerializationSettings()
                        .withVerifyCommands(false).withVerifyState(false));
    }

    private byte[] issue(long product, long quantity, Long units, Duration borrowMax, long counterBefore)
            throws Exception {
        ContainerContext context = ContainerContext.of(identity.serial(), identity.cmActId(),
                counterBefore == 0 ? java.util.Map.of() : java.util.Map.of(FIRM, counterBefore), identity.rawPublicKey());
        LicenseIssuer issuer = new LicenseIssuer(vendor.getPrivate(), vendor.getPublic(), clock, new SecureRandom());
        return issuer.issue(VendorState.empty(), List.of(context), new LicenseIssuer.Request(FIRM, product, quantity,
                false, units, null, null, null, borrowMax, 0, "test item")).files().get(0).file().toJson();
    }

    private void importLicense(byte[] file) {
        ok(kit.<StatusReply<LicenseUpdate>>runCommand(r -> new Container.ImportLicense(Bytes.of(file), Container.ReplyTo.of(r))));
    }

    private <R> R ok(CommandResultWithReply<Container.Command, ContainerEvent, ContainerState, StatusReply<R>> result) {
        assertTrue(result.reply().isSuccess(), () -> "refused: " + result.reply().getError().getMessage());
        return result.reply().getValue();
    }

    private static int refusal(StatusReply<?> reply) {
        assertTrue(reply.isError(), "expected a refusal, got " + reply);
        return ((CmFailure) reply.getError()).error().code();
    }

    private Container.Granted access(long product, String host, long session) {
        int requestId = nextRequestId++;
        return ok(kit.<StatusReply<Container.Granted>>runCommand(replyTo -> new Container.Access(FIRM, product, 0,
                AccessMode.USERLIMIT, new HandleOwner(host, "anna", 42, session), "127.0.0.1", requestId, false, Container.ReplyTo.of(replyTo))));
    }

    @Test
    void importsALicenseOnceAndRefusesReplaysAndStrangers() throws Exception {
        byte[] file = issue(42, 2, null, null, 0);
        var first = kit.<StatusReply<LicenseUpdate>>runCommand(r -> new Container.ImportLicense(Bytes.of(file), Container.ReplyTo.of(r)));
        assertEquals(1, ok(first).firmUpdateCounter());
        assertInstanceOf(ContainerEvent.LicenseUpdated.class, first.event());

        var replay = kit.<StatusReply<LicenseUpdate>>runCommand(r -> new Container.ImportLicense(Bytes.of(file), Container.ReplyTo.of(r)));
        assertEquals(CmError.ACCESS_DENIED.code(), refusal(replay.reply()));
        assertTrue(replay.events().isEmpty(), "a refused file changes nothing");

        KeyPair stranger = Ed25519.generate();
        byte[] strangers = new LicenseIssuer(stranger.getPrivate(), stranger.getPublic(), clock, new SecureRandom())
                .issue(VendorState.empty(), List.of(ContainerContext.of(identity.serial(), 7,
                        java.util.Map.of(FIRM, 1L), identity.rawPublicKey())), new LicenseIssuer.Request(FIRM, 43, 1,
                        false, null, null, null, null, null, 0, "")).files().get(0).file().toJson();
        var refused = kit.<StatusReply<LicenseUpdate>>runCommand(r ->
                new Container.ImportLicense(Bytes.of(strangers), Container.ReplyTo.of(r)));
        assertEquals(CmError.ACCESS_DENIED.code(), refusal(refused.reply()));

        ContainerContext context = ok(kit.<StatusReply<ContainerContext>>runCommand(r -> new Container.GetContext(Container.ReplyTo.of(r))));
        assertEquals(1L, context.counter(FIRM));
        assertArrayEquals(identity.rawPublicKey(), context.rawPublicKey());
    }

    @Test
    void handlesAndUnitsSurviveARestartAndResumeNeedsTheToken() throws Exception {
        importLicense(issue(42, 2, 100L, null, 0));
        Container.Granted granted = access(42, "ws-1", 1);
        assertEquals(58L, (long) ok(kit.<StatusReply<Long>>runCommand(r ->
                new Container.DecrementUnits(granted.handle().id(), 1, 9, 42, Container.ReplyTo.of(r)))));

        kit.restart();

        ContainerInfo info = ok(kit.<StatusReply<ContainerInfo>>runCommand(r -> new Container.Describe(Container.ReplyTo.of(r))));
        assertEquals(1, info.products().get(0).inUse());
        assertEquals(58, info.products().get(0).units());
        assertEquals(CmError.INVALID_HANDLE.code(), refusal(kit.<StatusReply<Handle>>runCommand(r ->
                new Container.Resume(granted.handle().id(), Bytes.of(new byte[32]), 2, Container.ReplyTo.of(r))).reply()));
        Handle resumed = ok(kit.<StatusReply<Handle>>runCommand(r ->
                new Container.Resume(granted.handle().id(), granted.token(), 2, Container.ReplyTo.of(r))));
        assertEquals(2, resumed.owner().sessionId());
        assertEquals(58L, (long) ok(kit.<StatusReply<Long>>runCommand(r ->
                new Container.DecrementUnits(granted.handle().id(), 2, 9, 42, Container.ReplyTo.of(r)))), "a retried operation counts once");
        ok(kit.<StatusReply<Done>>runCommand(r -> new Container.Release(granted.handle().id(), 2, Container.ReplyTo.of(r))));
    }

    @Test
    void cryptIsTheDocumentedTransformWithTheItemSecret() throws Exception {
        importLicense(issue(42, 2, null, null, 0));
        Container.Granted granted = access(42, "ws-1", 1);
        byte[] secret = kit.getState().spec(granted.handle().item()).secretBytes();
        Bytes encrypted = ok(kit.<StatusReply<Bytes>>runCommand(r -> new Container.Crypt(granted.handle().id(), 1,
                CryptDirection.ENCRYPT, 77, Bytes.of("challenge".getBytes()), Container.ReplyTo.of(r))));
        assertArrayEquals(CryptTransform.encrypt(secret, 77, "challenge".getBytes()), encrypted.toArray());
        Bytes decrypted = ok(kit.<StatusReply<Bytes>>runCommand(r -> new Container.Crypt(granted.handle().id(), 1,
                CryptDirection.DECRYPT, 77, encrypted, Container.ReplyTo.of(r))));
        assertArrayEquals("challenge".getBytes(), decrypted.toArray());
        assertEquals(CmError.INVALID_PARAMETER.code(), refusal(kit.<StatusReply<Bytes>>runCommand(r ->
                new Container.Crypt(granted.handle().id(), 1, CryptDirection.DECRYPT, 77, Bytes.of(new byte[5]), Container.ReplyTo.of(r)))
                .reply()));
    }

    @Test
    void aBorrowTicketIsSignedByTheContainerKey() throws Exception {
        importLicense(issue(42, 1, null, Duration.ofDays(7), 0));
        Container.Granted granted = access(42, "ws-1", 1);
        BorrowTicket ticket = ok(kit.<StatusReply<BorrowTicket>>runCommand(r -> new Container.BorrowSeat(
                granted.handle().id(), 1, Duration.ofDays(2), "ws-1/anna", Container.ReplyTo.of(r))));
        assertEquals(identity.serial(), ticket.issuer());
        assertTrue(Ed25519.verify(identity.keys().getPublic(), ticket.signedPayload(), ticket.signature().toArray()));
        assertEquals(clock.instant().plus(Duration.ofDays(2)).toEpochMilli(), ticket.expiresAtMillis());
        assertEquals(CmError.NO_MORE_LICENSES.code(), refusal(kit.<StatusReply<Container.Granted>>runCommand(r ->
                new Container.Access(FIRM, 42, 0, AccessMode.USERLIMIT, new HandleOwner("ws-2", "bo", 1, 2), "127.0.0.1", 900, false,
                        Container.ReplyTo.of(r)))
                .reply()));
        ok(kit.<StatusReply<Done>>runCommand(r -> new Container.ReturnBorrow(ticket.ticketId(), "ws-1/anna", Container.ReplyTo.of(r))));
        access(42, "ws-2", 2);
    }

    @Test
    void aSilentSessionsHandlesAreReclaimedAfterTheCleanupTimeout() throws Exception {
        importLicense(issue(42, 2, null, null, 0));
        Container.Granted silent = access(42, "ws-1", 1);
        Container.Granted busy = access(42, "ws-2", 2);

        clock.advance(Duration.ofMillis(800));
        kit.runCommand(new Container.SessionActive(2));
        clock.advance(Duration.ofMillis(400));

        testKit.createTestProbe().awaitAssert(Duration.ofSeconds(10), () -> {
            assertEquals(List.of(busy.handle().id()),
                    kit.getState().handles().stream().map(Handle::id).toList());
            return null;
        });
        assertEquals(CmError.INVALID_HANDLE.code(), refusal(kit.<StatusReply<Done>>runCommand(r ->
                new Container.Release(silent.handle().id(), 1, Container.ReplyTo.of(r))).reply()));

        // The busy session, silent from now on, is reclaimed in its turn: forgetting the silent session's
        // last sign of life must not make its other handles look fresh.
        clock.advance(Duration.ofSeconds(2));
        testKit.createTestProbe().awaitAssert(Duration.ofSeconds(10), () -> {
            assertTrue(kit.getState().handles().isEmpty());
            return null;
        });
    }

    @Test
    void aBatchIsDecidedInOrderPersistedInOneWriteAndAnsweredAfterIt() throws Exception {
        importLicense(issue(42, 1, null, null, 0));
        var first = testKit.<StatusReply<Container.Granted>>createTestProbe();
        var second = testKit.<StatusReply<Container.Granted>>createTestProbe();
        RequestInbox inbox = new RequestInbox(10, 10);
        inbox.submit(new Container.Access(FIRM, 42, 0, AccessMode.USERLIMIT, new HandleOwner("a", "u", 1, 1),
                "127.0.0.1", 1, false, Container.ReplyTo.of(first.ref())));
        inbox.submit(new Container.Access(FIRM, 42, 0, AccessMode.USERLIMIT, new HandleOwner("b", "u", 2, 2),
                "127.0.0.1", 1, false, Container.ReplyTo.of(second.ref())));
        var result = kit.runCommand(new Container.Drain(inbox));
        assertEquals(1, result.events().size(), "one grant, one refusal: " + result.events());
        assertTrue(first.receiveMessage(Duration.ofSeconds(5)).isSuccess());
        assertEquals(CmError.NO_MORE_LICENSES.code(), refusal(second.receiveMessage(Duration.ofSeconds(5))),
                "the second request saw the first one's seat although neither was persisted yet");
        assertEquals(0, inbox.waiting(), "both taken in one batch");

        kit.restart();
        assertEquals(1, ok(kit.<StatusReply<ContainerInfo>>runCommand(r -> new Container.Describe(Container.ReplyTo.of(r)))).products().get(0)
                .inUse(), "the batch's event is in the journal");
    }

    @Test
    void aReSentAccessGetsTheSameHandleOnTheNewSessionNotASecondSeat() throws Exception {
        importLicense(issue(42, 2, null, null, 0));
        Container.Granted first = ok(kit.<StatusReply<Container.Granted>>runCommand(r -> new Container.Access(FIRM, 42,
                0, AccessMode.USERLIMIT, new HandleOwner("ws-1", "anna", 42, 1), "127.0.0.1", 77, false, Container.ReplyTo.of(r))));
        Container.Granted again = ok(kit.<StatusReply<Container.Granted>>runCommand(r -> new Container.Access(FIRM, 42,
                0, AccessMode.USERLIMIT, new HandleOwner("ws-1", "anna", 42, 2), "127.0.0.1", 77, false, Container.ReplyTo.of(r))));
        assertEquals(first.handle().id(), again.handle().id());
        assertEquals(first.token(), again.token());
        assertEquals(2, again.handle().owner().sessionId(), "moved to the session that re-sent it");
        assertEquals(1, ok(kit.<StatusReply<ContainerInfo>>runCommand(r -> new Container.Describe(Container.ReplyTo.of(r)))).products().get(0)
                .inUse(), "one seat, not two");
        Container.Granted other = ok(kit.<StatusReply<Container.Granted>>runCommand(r -> new Container.Access(FIRM,
                42, 0, AccessMode.USERLIMIT, new HandleOwner("ws-1", "anna", 43, 3), "127.0.0.1", 77, false, Container.ReplyTo.of(r))));
        assertTrue(other.handle().id() != first.handle().id(), "another process's request 77 is another request");
        importLicense(issue(43, 2, null, null, 1));
        Container.Granted otherProduct = ok(kit.<StatusReply<Container.Granted>>runCommand(r -> new Container.Access(
                FIRM, 43, 0, AccessMode.USERLIMIT, new HandleOwner("ws-1", "anna", 42, 4), "127.0.0.1", 77, false, Container.ReplyTo.of(r))));
        assertTrue(otherProduct.handle().id() != first.handle().id(), "the same request id for another product");
        assertEquals(43, otherProduct.handle().item().productCode());
    }

    @Test
    void recoveryStartsFromSnapshotsAndTheSnapshotSurvivesCbor() throws Exception {
        var snapshotting = EventSourcedBehaviorTestKit.<Container.Command, ContainerEvent, ContainerState>create(
                testKit.system(), Container.create(identity, List.of(vendor.getPublic()), Duration.ofMinutes(2), 3,
                        clock),
                EventSourcedBehaviorTestKit.enabledSerializationSettings().withVerifyCommands(false)
                        .withVerifyState(false));
        kit = snapshotting;
        importLicense(issue(42, 5, 100L, null, 0));
        List<Container.Granted> granted = new java.util.ArrayList<>();
        for (int i = 0; i < 4; i++) {
            granted.add(access(42, "ws-" + i, i));
        }
        ok(kit.<StatusReply<Long>>runCommand(r -> new Container.DecrementUnits(granted.get(0).handle().id(), 0, 1, 30,
                Container.ReplyTo.of(r))));
        ok(kit.<StatusReply<Done>>runCommand(r -> new Container.Release(granted.get(3).handle().id(), 3, Container.ReplyTo.of(r))));

        kit.restart();
        ContainerInfo info = ok(kit.<StatusReply<ContainerInfo>>runCommand(r -> new Container.Describe(Container.ReplyTo.of(r))));
        assertEquals(3, info.products().get(0).inUse());
        assertEquals(70, info.products().get(0).units());
        ok(kit.<StatusReply<Handle>>runCommand(r -> new Container.Resume(granted.get(1).handle().id(),
                granted.get(1).token(), 9, Container.ReplyTo.of(r))));

        ContainerSnapshot snapshot = kit.getState().toSnapshot();
        var serialization = org.apache.pekko.serialization.SerializationExtension.get(testKit.system());
        byte[] bytes = serialization.serialize(snapshot).get();
        var serializer = serialization.findSerializerFor(snapshot);
        Object back = serialization.deserialize(bytes, serializer.identifier(),
                org.apache.pekko.serialization.Serializers.manifestFor(serializer, snapshot)).get();
        assertEquals(snapshot, back, "the snapshot round-trips through Jackson CBOR");
        assertEquals("JacksonCborSerializer", serializer.getClass().getSimpleName(), "bound to Jackson CBOR");
    }

    @Test
    void aRequestPastItsDeadlineIsNotCarriedOut() throws Exception {
        importLicense(issue(42, 2, null, null, 0));
        var late = kit.<StatusReply<Container.Granted>>runCommand(r -> new Container.Access(FIRM, 42, 0,
                AccessMode.USERLIMIT, new HandleOwner("ws-1", "anna", 42, 1), "127.0.0.1", 5, false,
                clock.instant().minusMillis(1), Container.ReplyTo.of(r)));
        assertEquals(CmError.NETWORK_FAULT.code(), refusal(late.reply()));
        assertTrue(late.events().isEmpty(), "no seat taken for a client that was already told it failed");
    }

    @Test
    void aGrantThatBecomesDurableAfterItsDeadlineIsReleased() throws Exception {
        SteppingClock stepping = new SteppingClock(clock.instant(), Duration.ofSeconds(1));
        kit = EventSourcedBehaviorTestKit.create(testKit.system(), Container.create(identity,
                        List.of(vendor.getPublic()), Duration.ofMinutes(2), stepping),
                EventSourcedBehaviorTestKit.enabledSerializationSettings().withVerifyCommands(false)
                        .withVerifyState(false));
        importLicense(issue(42, 2, null, null, 0));
        // The decision reads the clock once (in time), the check after the write reads it again (too late).
        Instant deadline = stepping.peek().plusMillis(500);
        Container.Granted granted = ok(kit.<StatusReply<Container.Granted>>runCommand(r -> new Container.Access(FIRM,
                42, 0, AccessMode.USERLIMIT, new HandleOwner("ws-1", "anna", 42, 1), "127.0.0.1", 6, false, deadline, Container.ReplyTo.of(r))));
        testKit.createTestProbe().awaitAssert(Duration.ofSeconds(10), () -> {
            assertTrue(kit.getState().handles().isEmpty(), "the abandoned grant was taken back");
            return null;
        });
        assertEquals(CmError.INVALID_HANDLE.code(), refusal(kit.<StatusReply<Done>>runCommand(r ->
                new Container.Release(granted.handle().id(), 1, Container.ReplyTo.of(r))).reply()));
    }

    /** A clock that moves on by {@code step} every time it is read. */
    private static final class SteppingClock extends java.time.Clock {
        private Instant next;
        private final Duration step;

        SteppingClock(Instant start, Duration step) {
            this.next = start;
            this.step = step;
        }

        synchronized Instant peek() {
            return next;
        }

        @Override
        public synchronized Instant instant() {
            Instant now = next;
            next = next.plus(step);
            return now;
        }

        @Override
        public java.time.ZoneId getZone() {
            return java.time.ZoneOffset.UTC;
        }

        @Override
        public java.time.Clock withZone(java.time.ZoneId zone) {
            return this;
        }
    }

    @Test
    void aFailedJournalWriteLeavesNoTraceAndANewContainerGoesOnFromItsJournal() throws Exception {
        RequestInbox inbox = new RequestInbox(100, 10);
        testKit.spawn(ContainerGateway.create(Container.create(identity, List.of(vendor.getPublic()),
                Duration.ofMinutes(2), 2, clock), inbox));
        var replies = testKit.<StatusReply<Object>>createTestProbe();
        byte[] license = issue(42, 5, 10L, null, 0);
        inbox.submit(new Container.ImportLicense(Bytes.of(license),
                Container.ReplyTo.of(unchecked(replies.ref()))));
        assertTrue(replies.receiveMessage(Duration.ofSeconds(5)).isSuccess());
        for (int i = 1; i <= 3; i++) {
            inbox.submit(access(i, replies));
            assertTrue(replies.receiveMessage(Duration.ofSeconds(5)).isSuccess(), "grant " + i);
        }

        kit.persistenceTestKit().failNextPersisted();
        inbox.submit(access(4, replies));
        replies.expectNoMessage(Duration.ofMillis(500));

        // A new container from snapshot and journal: three holders, not four, and it serves again.
        testKit.createTestProbe().awaitAssert(Duration.ofSeconds(15), () -> {
            var described = testKit.<StatusReply<ContainerInfo>>createTestProbe();
            inbox.submit(new Container.Describe(Container.ReplyTo.of(described.ref())));
            assertEquals(3, described.receiveMessage(Duration.ofSeconds(2)).getValue().products().get(0).inUse());
            return null;
        });
        inbox.submit(access(5, replies));
        assertTrue(replies.receiveMessage(Duration.ofSeconds(5)).isSuccess());
    }

    private static Container.Access access(int i, org.apache.pekko.actor.testkit.typed.javadsl.TestProbe<
            StatusReply<Object>> replies) {
        return new Container.Access(FIRM, 42, 0, AccessMode.USERLIMIT, new HandleOwner("ws-" + i, "u", i, i), "127.0.0.1", i, false,
                Container.ReplyTo.of(unchecked(replies.ref())));
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static <T> org.apache.pekko.actor.typed.ActorRef<StatusReply<T>> unchecked(
            org.apache.pekko.actor.typed.ActorRef<StatusReply<Object>> ref) {
        return (org.apache.pekko.actor.typed.ActorRef) ref;
    }

    @Test
    void aFreshContainerIsASoftwareContainerWithTheConfiguredCmActIdAndKeepsItsIdentity() throws Exception {
        assertEquals(Serial.MASK_SOFTWARE, identity.serial().mask());
        ContainerIdentity again = ContainerIdentity.loadOrCreate(dataDir, 7, new SecureRandom());
        assertEquals(identity.serial(), again.serial());
        assertArrayEquals(identity.rawPublicKey(), again.rawPublicKey());
        var mismatch = org.junit.jupiter.api.Assertions.assertThrows(com.typesafe.config.ConfigException.class,
                () -> ContainerIdentity.loadOrCreate(dataDir, 8, new SecureRandom()));
        assertTrue(mismatch.getMessage().contains("opentmr.backend.cm-act-id"), mismatch.getMessage());
    }
}
