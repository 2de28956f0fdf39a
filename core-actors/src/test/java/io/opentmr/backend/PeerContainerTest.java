package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.ConfigFactory;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.Ed25519;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.LicenseUpdate;
import io.opentmr.license.VendorState;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LeaseCertificate;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.UnitsOperation;
import io.opentmr.testing.MutableClock;
import io.opentmr.tracking.TrackingLine;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
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
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.slf4j.LoggerFactory;

/**
 * The container's peer side on its journal: epochs, allocations and peer unit operations are events (CBOR
 * checked by the testkit) and come back after a restart, from the events alone or from a snapshot.
 */
@Timeout(60)
class PeerContainerTest {

    private static final long FIRM = 6_000_010;
    /** Requests whose deadline is not what a test is about. */
    private static final long NO_DEADLINE = Long.MAX_VALUE;
    private static ActorTestKit testKit;

    @TempDir
    Path dataDir;

    private final KeyPair vendor = Ed25519.generate();
    /** Another backend of the group: its key is a group key, so its grants count. */
    private final KeyPair other = Ed25519.generate();
    private final MutableClock clock = new MutableClock(Instant.parse("2026-11-23T12:00:00Z"));
    private final PeerConnection connection = new PeerConnection("node-a", "127.0.0.1:5000", () -> true);
    private ContainerIdentity identity;
    private EventSourcedBehaviorTestKit<Container.Command, ContainerEvent, ContainerState> kit;
    private LicenseKey key;
    private LicenseUpdate imported;

    @BeforeAll
    static void start() {
        testKit = ActorTestKit.create(EventSourcedBehaviorTestKit.config().withFallback(ConfigFactory.load()));
    }

    @AfterAll
    static void stop() {
        testKit.shutdownTestKit();
    }

    @BeforeEach
    void identity() throws Exception {
        identity = ContainerIdentity.loadOrCreate(dataDir, 7, new SecureRandom());
    }

    private void create(int snapshotEvery) throws Exception {
        kit = EventSourcedBehaviorTestKit.create(testKit.system(),
                Container.create(identity, List.of(vendor.getPublic()), Duration.ofSeconds(1), snapshotEvery,
                        clock),
                EventSourcedBehaviorTestKit.enabledSerializationSettings()
                        .withVerifyCommands(false).withVerifyState(false));
        List<ContainerContext> group = List.of(
                ContainerContext.of(identity.serial(), 7, Map.of(), identity.rawPublicKey()),
                ContainerContext.of(new Serial(129, 2), 7, Map.of(), Ed25519.raw(other.getPublic())),
                ContainerContext.of(new Serial(129, 3), 7, Map.of(), Ed25519.raw(Ed25519.generate().getPublic())));
        LicenseIssuer.Issued issued = new LicenseIssuer(vendor.getPrivate(), vendor.getPublic(), clock,
                new SecureRandom()).issue(VendorState.empty(), group, new LicenseIssuer.Request(FIRM, 77, 3, true, 50L,
                null, null, null, null, 0, "TMR")).files().get(0);
        ok(kit.<StatusReply<LicenseUpdate>>runCommand(r -> new Container.ImportLicense(
                Bytes.of(issued.file().toJson()), Container.ReplyTo.of(r))));
        key = new LicenseKey(FIRM, 77, issued.update().items().get(0).tmrId());
        imported = issued.update();
    }

    private <R> R ok(CommandResultWithReply<Container.Command, ContainerEvent, ContainerState, StatusReply<R>> result) {
        assertTrue(result.reply().isSuccess(), () -> "refused: " + result.reply().getError().getMessage());
        return result.reply().getValue();
    }

    private LeaseGrant acquire(long proposed) {
        return ok(kit.<StatusReply<LeaseGrant>>runCommand(r -> new Container.AcquireLease(connection,
                LeaseGrant.ACTIVE_LEASE, "node-a", proposed, 2_000, Container.ReplyTo.of(r))));
    }

    private LeaseCertificate certificate(LeaseGrant own) {
        LeaseGrant unsigned = new LeaseGrant(LeaseGrant.ACTIVE_LEASE, "node-a", own.epoch(), clock.millis(), 2_000,
                new Serial(129, 2), Bytes.EMPTY);
        return new LeaseCertificate(List.of(own, unsigned.withSignature(Bytes.of(Ed25519.sign(other.getPrivate(),
                unsigned.signedPayload())))));
    }

    private static Allocation allocation(long handleId, LicenseKey key, long epoch) {
        return new Allocation(handleId, key, AccessMode.USERLIMIT, 0, new HandleOwner("ws-1", "anna", 1, 1),
                Bytes.of(new byte[32]), epoch);
    }

    @ParameterizedTest(name = "snapshot every {0} events")
    @ValueSource(ints = {1000, 2})
    void epochsAllocationsAndUnitsSurviveARestart(int snapshotEvery) throws Exception {
        create(snapshotEvery);
        LeaseGrant grant = acquire(0);
        assertEquals(1, grant.epoch());
        var raised = kit.<StatusReply<LeaseGrant>>runCommand(r -> new Container.AcquireLease(connection,
                LeaseGrant.ACTIVE_LEASE, "node-a", 0, 2_000, Container.ReplyTo.of(r)));
        assertTrue(raised.events().isEmpty(), "the holder's own epoch again: nothing new to persist");
        LeaseCertificate cert = certificate(grant);
        var allocated = kit.<StatusReply<Done>>runCommand(r -> new Container.Allocate(connection, cert,
                allocation(10, key, 1), NO_DEADLINE, Container.ReplyTo.of(r)));
        ok(allocated);
        assertTrue(allocated.events().stream().anyMatch(e -> e instanceof ContainerEvent.AllocationAdded));
        ok(kit.<StatusReply<Done>>runCommand(r -> new Container.Allocate(connection, cert, allocation(11, key, 1),
                NO_DEADLINE, Container.ReplyTo.of(r))));
        ok(kit.<StatusReply<Done>>runCommand(r -> new Container.Free(connection, cert, 11, key, NO_DEADLINE,
                Container.ReplyTo.of(r))));
        assertEquals(45L, (long) ok(kit.<StatusReply<Long>>runCommand(r -> new Container.PeerUnits(connection, cert,
                key, 5, UnitsOperation.DECREMENT, 5, Container.ReplyTo.of(r)))));
        // A valid certificate from two other backends at a higher epoch raises this one's epoch.
        LeaseGrant unsignedOwn = new LeaseGrant(LeaseGrant.ACTIVE_LEASE, "node-a", 7, clock.millis(), 2_000,
                identity.serial(), Bytes.EMPTY);
        LeaseCertificate seven = certificate(unsignedOwn.withSignature(Bytes.of(Ed25519.sign(
                identity.keys().getPrivate(), unsignedOwn.signedPayload()))));
        var seen = kit.<StatusReply<Long>>runCommand(r -> new Container.PeerUnits(connection, seven, key, 6,
                UnitsOperation.READ, 0, Container.ReplyTo.of(r)));
        assertEquals(45L, (long) ok(seen));
        assertEquals(List.of(7L), seen.events().stream().map(e -> ((ContainerEvent.LeaseEpochRaised) e).epoch())
                .toList(), "persisted with the request that showed it");

        kit.restart();

        assertEquals(7, kit.getState().highestEpoch(LeaseGrant.ACTIVE_LEASE));
        ContainerInfo info = ok(kit.<StatusReply<ContainerInfo>>runCommand(r -> new Container.Describe(Container.ReplyTo.of(r))));
        assertEquals(1, info.products().get(0).inUse(), "allocation 10 holds its seat after the restart");
        assertEquals(45, info.products().get(0).units());
        assertEquals(List.of(10L), kit.getState().allocations(0, 10).allocations().stream()
                .map(TmrAllocation::tmrHandleId).toList());
        assertEquals("node-a", kit.getState().highestHolder(LeaseGrant.ACTIVE_LEASE), "the holder is journaled");
        LeaseGrant after = acquire(0);
        assertEquals(7, after.epoch(), "the holder of the highest epoch before the restart keeps it");
        LeaseCertificate again = certificate(after);
        assertEquals(45L, (long) ok(kit.<StatusReply<Long>>runCommand(r -> new Container.PeerUnits(connection, again,
                key, 5, UnitsOperation.DECREMENT, 5, Container.ReplyTo.of(r)))), "the operation id is remembered across the restart");
        var stale = kit.<StatusReply<Done>>runCommand(r -> new Container.Allocate(connection, cert,
                allocation(12, key, 1), NO_DEADLINE, Container.ReplyTo.of(r)));
        assertEquals(CmError.TMR_LEASE_REFUSED, ((CmFailure) stale.reply().getError()).error(), "epoch 1 is stale");

        clock.advance(Duration.ofSeconds(3));
        PeerConnection nodeB = new PeerConnection("node-b", "127.0.0.1:5001", () -> true);
        LeaseGrant other = ok(kit.<StatusReply<LeaseGrant>>runCommand(r -> new Container.AcquireLease(nodeB,
                LeaseGrant.ACTIVE_LEASE, "node-b", 0, 2_000, Container.ReplyTo.of(r))));
        assertEquals(8, other.epoch(), "another holder: strictly above every epoch granted or seen");
    }

    @Test
    void theTrackingLinesOfAnAllocationAndItsFreeNameTheLeaseEpochOfTheWriteNotOfTheHandle() throws Exception {
        create(1000);
        ListAppender<ILoggingEvent> lines = new ListAppender<>();
        lines.start();
        Logger tracking = (Logger) LoggerFactory.getLogger(TrackingLog.LOGGER);
        tracking.addAppender(lines);
        try {
            LeaseGrant grant = acquire(0);
            assertEquals(1, grant.epoch());
            // A take-over re-allocates a handle of an older epoch under its own lease: here epoch 7 of node-a
            // writes handle 20, opened in epoch 1; then frees it.
            LeaseGrant unsignedOwn = new LeaseGrant(LeaseGrant.ACTIVE_LEASE, "node-a", 7, clock.millis(), 2_000,
                    identity.serial(), Bytes.EMPTY);
            LeaseCertificate seven = certificate(unsignedOwn.withSignature(Bytes.of(Ed25519.sign(
                    identity.keys().getPrivate(), unsignedOwn.signedPayload()))));
            ok(kit.<StatusReply<Done>>runCommand(r -> new Container.Allocate(connection, seven,
                    allocation(20, key, 1), NO_DEADLINE, Container.ReplyTo.of(r))));
            ok(kit.<StatusReply<Done>>runCommand(r -> new Container.Free(connection, seven, 20, key, NO_DEADLINE,
                    Container.ReplyTo.of(r))));
        } finally {
            tracking.detachAppender(lines);
        }
        List<JsonNode> written = new java.util.ArrayList<>();
        for (ILoggingEvent event : List.copyOf(lines.list)) {
            for (String line : event.getFormattedMessage().split("\n")) {
                written.add(TrackingLine.json().readTree(line));
            }
        }
        JsonNode allocate = written.stream().filter(l -> l.path("event").asText().equals("allocate")).findFirst()
                .orElseThrow(() -> new AssertionError("no allocate line in " + written));
        assertEquals("20", allocate.path("tmrHandle").asText());
        assertEquals("node-a", allocate.path("node").asText());
        assertEquals(1, allocate.path("epoch").asLong(), "the handle's epoch, as the node sent it");
        assertEquals(7, allocate.path("leaseEpoch").asLong(), "the epoch of the certificate checked for the write");
        JsonNode free = written.stream().filter(l -> l.path("event").asText().equals("free")).findFirst()
                .orElseThrow(() -> new AssertionError("no free line in " + written));
        assertEquals("node-a", free.path("node").asText());
        assertEquals(7, free.path("leaseEpoch").asLong());
    }

    @Test
    void eventsAndSnapshotsOfTheOlderFormatStillOpen() throws Exception {
        var serialization = org.apache.pekko.serialization.SerializationExtension.get(testKit.system());
        com.fasterxml.jackson.databind.ObjectMapper cbor = new com.fasterxml.jackson.databind.ObjectMapper(
                new com.fasterxml.jackson.dataformat.cbor.CBORFactory());

        ContainerEvent.LeaseEpochRaised current = new ContainerEvent.LeaseEpochRaised(LeaseGrant.ACTIVE_LEASE, 4,
                "node-a", clock.instant());
        var older = (com.fasterxml.jackson.databind.node.ObjectNode) cbor.readTree(serialization.serialize(current)
                .get());
        assertEquals("node-a", older.remove("holder").asText(), "the field as written today");
        ContainerEvent.LeaseEpochRaised read = (ContainerEvent.LeaseEpochRaised) deserialize(serialization,
                cbor.writeValueAsBytes(older), current);
        assertEquals(new ContainerEvent.LeaseEpochRaised(LeaseGrant.ACTIVE_LEASE, 4, null, clock.instant()), read);
        int serializerId = serialization.findSerializerFor(current).identifier();
        byte[] bytes = serialization.serialize(current).get();
        assertTrue(serialization.deserialize(bytes, serializerId, current.getClass().getName() + "#"
                + (ContainerEventVersions.CURRENT + 1)).isFailure(), "a record written by a newer backend is refused");

        // Version 2 and older: a handle without the request id that opened it.
        ContainerEvent.HandleOpened opened = new ContainerEvent.HandleOpened(5, key, AccessMode.USERLIMIT, 0,
                new HandleOwner("ws", "u", 1, 1), "digest", clock.instant(), "10.0.0.1", 77);
        var olderOpened = (com.fasterxml.jackson.databind.node.ObjectNode) cbor.readTree(serialization
                .serialize(opened).get());
        assertEquals(77, olderOpened.remove("requestId").asInt());
        assertEquals(new ContainerEvent.HandleOpened(5, key, AccessMode.USERLIMIT, 0, new HandleOwner("ws", "u", 1, 1),
                "digest", clock.instant(), "10.0.0.1", null), deserialize(serialization,
                cbor.writeValueAsBytes(olderOpened), opened), "found by no re-sent ACCESS");

        create(1000);
        ContainerEvent.PeerUnitsChanged units = new ContainerEvent.PeerUnitsChanged(key, 9, UnitsOperation.SET, 40,
                clock.instant());
        var olderUnits = (com.fasterxml.jackson.databind.node.ObjectNode) cbor.readTree(serialization
                .serialize(units).get());
        olderUnits.remove("operation");
        assertEquals(new ContainerEvent.PeerUnitsChanged(key, 9, null, 40, clock.instant()),
                deserialize(serialization, cbor.writeValueAsBytes(olderUnits), units), "read as a DECREMENT");

        LeaseCertificate cert = certificate(acquire(0));
        ok(kit.<StatusReply<Long>>runCommand(r -> new Container.PeerUnits(connection, cert, key, 3,
                UnitsOperation.DECREMENT, 5, Container.ReplyTo.of(r))));
        ContainerSnapshot snapshot = kit.getState().toSnapshot();
        var oldSnapshot = (com.fasterxml.jackson.databind.node.ObjectNode) cbor.readTree(serialization
                .serialize(snapshot).get());
        oldSnapshot.remove("leaseHolders");
        for (var operation : oldSnapshot.withArray("peerOperations")) {
            ((com.fasterxml.jackson.databind.node.ObjectNode) operation).remove("at");
        }
        // Version 4 and older: license updates and items without the vendor's group key statement.
        for (var item : oldSnapshot.withArray("items")) {
            ((com.fasterxml.jackson.databind.node.ObjectNode) item).remove("tmrGroupStatement");
        }
        ContainerEvent.LicenseUpdated update = new ContainerEvent.LicenseUpdated(imported, clock.instant());
        var olderUpdate = (com.fasterxml.jackson.databind.node.ObjectNode) cbor.readTree(serialization
                .serialize(update).get());
        assertTrue(((com.fasterxml.jackson.databind.node.ObjectNode) olderUpdate.get("update")).remove("tmrGroupStatement").isTextual(), "the field as written today");
        ContainerEvent.LicenseUpdated readUpdate = (ContainerEvent.LicenseUpdated) deserialize(serialization,
                cbor.writeValueAsBytes(olderUpdate), update);
        assertEquals(null, readUpdate.update().tmrGroupStatement());
        assertEquals(imported.tmrGroupKeys(), readUpdate.update().tmrGroupKeys());
        assertEquals(imported.groupStatement(), ContainerState.fromSnapshot(snapshot).tmrGroupStatement(key),
                "today's snapshot keeps the statement");
        ContainerSnapshot back = (ContainerSnapshot) deserialize(serialization, cbor.writeValueAsBytes(oldSnapshot),
                snapshot);
        assertEquals(null, ContainerState.fromSnapshot(back).tmrGroupStatement(key), "an older copy has none");
        assertEquals(null, back.leaseHolders());
        assertEquals(List.of(new ContainerSnapshot.PeerOperation(key, 3, 45, null)), back.peerOperations());
        ContainerState state = ContainerState.fromSnapshot(back).apply(read);
        assertEquals(4, state.highestEpoch(LeaseGrant.ACTIVE_LEASE));
        assertEquals(null, state.highestHolder(LeaseGrant.ACTIVE_LEASE), "unknown: the next holder counts as another");
    }

    /** Reads {@code bytes} as a record of version 1 (a manifest without version), of {@code like}'s class. */
    private static Object deserialize(org.apache.pekko.serialization.Serialization serialization, byte[] bytes,
                                      Object like) {
        var serializer = serialization.findSerializerFor(like);
        assertEquals(like.getClass().getName() + "#" + ContainerEventVersions.CURRENT,
                org.apache.pekko.serialization.Serializers.manifestFor(serializer, like), "written as the current version");
        return serialization.deserialize(bytes, serializer.identifier(), like.getClass().getName()).get();
    }

    @Test
    void aSteadyCertificateIsVerifiedOnce() throws Exception {
        create(1000);
        LeaseCertificate cert = certificate(acquire(0));
        for (int i = 0; i < 20; i++) {
            long operation = i;
            ok(kit.<StatusReply<Long>>runCommand(r -> new Container.PeerUnits(connection, cert, key, operation,
                    UnitsOperation.READ, 0, Container.ReplyTo.of(r))));
        }
        // The own grant verifies under the first group key (1), the other's under the second (after 1 miss).
        assertEquals(3, connection.verifications(), "each grant's signature verified once, not per request");
    }
}
