package io.opentmr.tmr.replay;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.cbor.CBORFactory;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.persistence.Serialized;
import io.opentmr.persistence.log.LogOptions;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.SegmentedLog;
import io.opentmr.persistence.snapshot.SnapshotFiles;
import io.opentmr.persistence.tools.Decoder;
import io.opentmr.persistence.tools.JournalHistory;
import io.opentmr.persistence.tools.JournalReadException;
import io.opentmr.persistence.tools.Recovery;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.NodeStatus;
import io.opentmr.tmr.VirtualContainer;
import io.opentmr.tmr.backend.PeerGroup;
import io.opentmr.tmr.license.NodeEventVersions;
import io.opentmr.tmr.license.Seat;
import io.opentmr.tmr.license.TmrLicense;
import io.opentmr.tmr.license.TmrLicenseEvent;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link NodeReplay} rebuilds what the node's actors recover, from journals of every version: the first node's data
 * directory (persistence records of version 1, node events of version 1, {@code tmr-handle|} journals the node no
 * longer reads), and a journal mixing node events and snapshots of version 1 and 2 with container events. Each replay
 * is checked against the license and container actors recovering the same journal through the journal plugin. A
 * record of a newer version is refused with a message that names it.
 */
@Timeout(60)
class NodeReplayTest {

    private static final Duration REPLY = Duration.ofSeconds(20);
    private static final ObjectMapper CBOR = new ObjectMapper(new CBORFactory());

    @TempDir
    Path dir;

    private ActorTestKit kit;

    @AfterEach
    void stop() {
        if (kit != null) {
            kit.shutdownTestKit();
        }
    }

    private Path journal() {
        return dir.resolve("journal");
    }

    /** An actor system on our journal plugin in {@link #journal()}: its actors recover, its serializers decode. */
    private ActorTestKit kit() {
        if (kit == null) {
            Config config = ConfigFactory.parseMap(Map.of(
                    "pekko.persistence.journal.plugin", "opentmr.persistence.journal",
                    "pekko.persistence.snapshot-store.plugin", "opentmr.persistence.snapshot-store",
                    "opentmr.persistence.dir", journal().toString())).withFallback(ConfigFactory.load()).resolve();
            kit = ActorTestKit.create("node-replay", config);
        }
        return kit;
    }

    private Decoder decoder() {
        return Decoder.of((ExtendedActorSystem) Adapter.toClassic(kit().system()));
    }

    /** What {@code tmr journal replay} does: every id the node reads, recovered up to {@code at}, replayed. */
    private NodeReplay replay(Instant at) throws IOException {
        JournalHistory history = JournalHistory.read(journal(), journal().resolve("snapshots"), NodeReplay::reads);
        NodeReplay replay = new NodeReplay(true);
        for (JournalHistory.IdSummary id : history.persistenceIds()) {
            if (id.selected()) {
                replay.add(recovered(history.recover(id.persistenceId(), at, decoder())));
            }
        }
        return replay;
    }

    private static NodeReplay.Recovered recovered(Recovery r) {
        return new NodeReplay.Recovered(r.persistenceId(), r.snapshot() == null ? null : r.snapshot().value(),
                r.events().stream().map(Recovery.Event::payload).toList(), new JournalView(r.persistenceId(),
                r.sequenceNr(), r.highestSequenceNr(), r.start().name(), null, r.events().size(), r.deletedTo(),
                null));
    }

    private static Set<String> ids(NodeReplay replay) {
        return replay.handles().stream().map(HandleView::id).collect(Collectors.toSet());
    }

    private static LicenseView license(NodeReplay replay, LicenseKey key) {
        return replay.licenses().stream().filter(l -> l.license().equals(key.toString())).findFirst()
                .orElseThrow(() -> new AssertionError("no license " + key + " in " + replay.licenses()));
    }

    // --- recovering the same journal through the node's actors ------------------------------------------------

    /** The license actor recovered from the journal: its seat of each handle, as a view. */
    private Optional<HandleView> seatOf(ActorRef<TmrLicense.Command> license, LicenseKey key, long handleId) {
        TestProbe<Optional<Seat>> probe = kit().createTestProbe();
        license.tell(new TmrLicense.SeatOf(handleId, probe.getRef()));
        return probe.receiveMessage(REPLY).map(seat -> NodeReplay.view(key, seat));
    }

    private ActorRef<TmrLicense.Command> recoveredLicense(LicenseKey key) {
        PeerGroup peers = new PeerGroup(3, Clock.systemUTC(), Duration.ofSeconds(1));
        return kit().spawn(TmrLicense.create(key, peers, new QuietParent(), Clock.systemUTC(), new Random(1),
                id -> new byte[16], new TmrLicense.Settings(Duration.ofMinutes(2), 1000)));
    }

    /** Every handle of the replay is the actor's seat, field for field; {@code gone} are not the actor's either. */
    private void sameAsTheActor(NodeReplay replay, LicenseKey key, List<Long> gone) {
        ActorRef<TmrLicense.Command> license = recoveredLicense(key);
        List<HandleView> replayed = replay.handles().stream().filter(h -> h.license().equals(key.toString())).toList();
        for (HandleView handle : replayed) {
            assertEquals(Optional.of(handle), seatOf(license, key, Long.parseUnsignedLong(handle.id())));
        }
        for (long id : gone) {
            assertEquals(Optional.empty(), seatOf(license, key, id), "handle " + id);
        }
    }

    static final class QuietParent implements TmrLicense.Parent {
        @Override
        public void seatsChanged(LicenseKey key, long inUse, int handles, long units, int usable, long round) {
        }

        @Override
        public void opened(LicenseKey key, Seat seat) {
        }

        @Override
        public void closed(LicenseKey key, long handleId) {
        }

        @Override
        public void needsResync(LicenseKey key, int backend) {
        }

        @Override
        public void recovered(LicenseKey key, ActorRef<TmrLicense.Command> license) {
        }
    }

    // --- the first node's data ------------------------------------------------------------------------------------

    private void copyFixture() throws IOException, URISyntaxException {
        Path fixture = Path.of(getClass().getResource("/compat/node-data-v0/journal").toURI());
        Files.createDirectories(journal());
        try (Stream<Path> files = Files.list(fixture)) {
            for (Path file : files.toList()) {
                Files.copy(file, journal().resolve(file.getFileName()), StandardCopyOption.REPLACE_EXISTING);
            }
        }
    }

    /** compat/node-data-v0: see its README. Persistence records of version 1, node events of version 1. */
    @Test
    void theFirstNodesDataReplaysToTheSeatsTheLicenseActorRecovers() throws Exception {
        copyFixture();
        LicenseKey seats = new LicenseKey(6_000_010, 101, 1);
        LicenseKey units = new LicenseKey(6_000_010, 102, 2);
        NodeReplay replay = replay(null);

        assertEquals(List.of(), replay.containers(), "that node journaled no virtual container");
        assertTrue(replay.notices().get(0).contains("no virtual container"), replay.notices().toString());
        assertEquals(Set.of("1378970895111354285", "2058560906133485271"), ids(replay));
        LicenseView seatsLicense = license(replay, seats);
        assertEquals(new LicenseView.Seats(2L, null), seatsLicense.seats());
        assertEquals(2, seatsLicense.handles());
        assertNull(seatsLicense.container());
        assertEquals(new LicenseView.Seats(0L, null), license(replay, units).seats());
        HandleView first = replay.handles().get(0);
        assertEquals(new HandleView("1378970895111354285", "6000010:101#1", "USERLIMIT", 0,
                new HandleView.Owner(null, "127.0.0.1", "root", 9137), "-4096530756625798982", 1,
                "2026-12-02T06:05:39.686Z", null, null), first, "a version 1 seat names no host and no request");

        // What was held before the third holder released its seat (released at ...550136 ms).
        NodeReplay before = replay(Instant.ofEpochMilli(1796191550000L));
        assertEquals(Set.of("1378970895111354285", "2058560906133485271", "6829697663109341054"), ids(before));

        sameAsTheActor(replay, seats, List.of(6829697663109341054L));
        sameAsTheActor(replay, units, List.of(8841581681675497678L));
    }

    // --- records of every version, written as each version wrote them -----------------------------------------

    private Serialization serialization() {
        return SerializationExtension.get(kit().system());
    }

    /** {@code value} as the running code serializes it (the current version). */
    private Serialized current(Object value) {
        Serializer serializer = serialization().findSerializerFor(value);
        return new Serialized(serializer.identifier(), Serializers.manifestFor(serializer, value),
                serialization().serialize(value).get());
    }

    /**
     * {@code value} as version 1 wrote it: the current form without the fields version 2 added, and a manifest
     * without a version.
     */
    private Serialized version1(Object value, String... fieldPaths) throws IOException {
        Serialized now = current(value);
        assertEquals(value.getClass().getName() + "#" + NodeEventVersions.CURRENT, now.manifest());
        ObjectNode tree = (ObjectNode) CBOR.readTree(now.bytes());
        for (String path : fieldPaths) {
            // "a.b": field b of object a, or of each element of array a.
            String[] parts = path.split("\\.");
            JsonNode node = tree;
            for (int i = 0; i < parts.length - 1; i++) {
                node = node.get(parts[i]);
            }
            String field = parts[parts.length - 1];
            if (node.isArray()) {
                node.forEach(element -> assertTrue(((ObjectNode) element).remove(field) != null, path));
            } else {
                assertTrue(((ObjectNode) node).remove(field) != null, path);
            }
        }
        return new Serialized(now.serializerId(), value.getClass().getName(), CBOR.writeValueAsBytes(tree));
    }

    private static Serialized versioned(Serialized s, int version) {
        String name = s.manifest().contains("#") ? s.manifest().substring(0, s.manifest().indexOf('#')) : s.manifest();
        return new Serialized(s.serializerId(), name + "#" + version, s.bytes());
    }

    private static LogRecord record(String pid, long seq, long at, Serialized payload) {
        return LogRecord.event(pid, seq, at, "writer", payload.serializerId(), payload.manifest(), "", List.of(),
                payload.bytes());
    }

    private static Seat seat(long id, String user, long pid, long grantedAt, String host, long requestId) {
        return new Seat(id, AccessMode.USERLIMIT, 0, "10.0.0." + id, user, pid, 900 + id,
                Seat.digestOf(new byte[16]), 1, grantedAt, host, requestId);
    }

    @Test
    void eventsAndSnapshotsOfVersion1And2ReplayAsTheActorsRecoverThem() throws Exception {
        Serial serial = Serial.parse("131-12345678");
        LicenseKey key = new LicenseKey(6_000_010, 77, 9);
        String container = VirtualContainer.persistenceId(serial).id();
        String license = TmrLicense.persistenceId(key).id();
        // Version 1 seats name no host and no request; the snapshot of version 1 remembers no release.
        Seat a = seat(1, "ann", 11, 1000, null, 0);
        Seat b = seat(2, "bob", 12, 1500, null, 0);
        Seat c = seat(3, "cy", 13, 3000, "ws-cy", 77);
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(journal()))) {
            List<LogRecord> records = List.of(
                    record(container, 1, 900, current(new VirtualContainer.CmActIdLearned(7, 900))),
                    record(container, 2, 901, current(new VirtualContainer.LicenseSeen(key, 901))),
                    record(license, 1, 1000, version1(new TmrLicenseEvent.SeatGranted(a, 1000), "seat.host",
                            "seat.requestId")),
                    record(license, 2, 1500, version1(new TmrLicenseEvent.SeatGranted(b, 1500), "seat.host",
                            "seat.requestId")),
                    record(license, 3, 2500, version1(new TmrLicenseEvent.SeatReleased(2, "released", 2500))),
                    record(license, 4, 3000, current(new TmrLicenseEvent.SeatGranted(c, 3000))),
                    record(license, 5, 4000, current(new TmrLicenseEvent.SeatReleased(1, "reclaimed", 4000))));
            for (LogRecord r : records) {
                log.append(List.of(log.encode(List.of(r)))).get(10, TimeUnit.SECONDS);
            }
            // The snapshot at 2 (version 1), then the event it covers deleted, as retention does.
            new SnapshotFiles(journal().resolve("snapshots")).save(license, 2, 2000, new SnapshotFiles.Stored(
                    version1(new TmrLicenseEvent.Snapshot(List.of(a, b), List.of()), "released", "seats.host",
                            "seats.requestId"), null));
            log.delete(license, 1).get(10, TimeUnit.SECONDS);
        }

        NodeReplay now = replay(null);
        assertEquals(List.of(new ContainerView(serial.toString(), 7, List.of(key.toString()), now.containers().get(0)
                .journal())), now.containers());
        assertEquals(Set.of("3"), ids(now));
        HandleView cy = now.handles().get(0);
        assertEquals(new HandleView.Owner("ws-cy", "10.0.0.3", "cy", 13), cy.owner());
        assertEquals(77L, cy.requestId());
        assertEquals(serial.toString(), license(now, key).container());
        assertEquals(List.of(), now.notices());

        NodeReplay then = replay(Instant.ofEpochMilli(3500));
        assertEquals(Set.of("1", "3"), ids(then));
        HandleView ann = then.handles().get(0);
        assertEquals(new HandleView.Owner(null, "10.0.0.1", "ann", 11), ann.owner(), "a version 1 seat");
        assertNull(ann.requestId());

        sameAsTheActor(now, key, List.of(1L, 2L));
        // The container actor knows the license the replay shows it with.
        PeerGroup peers = new PeerGroup(3, Clock.systemUTC(), Duration.ofSeconds(1));
        ActorRef<VirtualContainer.Command> actor = kit().spawn(VirtualContainer.create(serial, peers,
                new NodeStatus(peers), Clock.systemUTC(), Duration.ofMillis(250), Duration.ofSeconds(10),
                (k, parent) -> TmrLicense.create(k, peers, parent, Clock.systemUTC(), new Random(1),
                        id -> new byte[16], new TmrLicense.Settings(Duration.ofMinutes(2), 1000))));
        TestProbe<VirtualContainer.Licenses> known = kit().createTestProbe();
        actor.tell(new VirtualContainer.GetLicenses(known.getRef()));
        assertEquals(Set.of(key), known.receiveMessage(REPLY).known());
    }

    @Test
    void aRecordOfANewerVersionIsRefusedByName() throws Exception {
        LicenseKey key = new LicenseKey(6_000_010, 78, 10);
        String license = TmrLicense.persistenceId(key).id();
        Serialized newer = versioned(current(new TmrLicenseEvent.SeatGranted(seat(4, "dee", 14, 10, "ws", 1), 10)),
                NodeEventVersions.CURRENT + 1);
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(journal()))) {
            log.append(List.of(log.encode(List.of(record(license, 1, 10, newer))))).get(10, TimeUnit.SECONDS);
        }
        JournalReadException refused = assertThrows(JournalReadException.class, () -> replay(null));
        assertTrue(refused.getMessage().contains("seqNr 1 of " + license)
                && refused.getMessage().contains("#" + (NodeEventVersions.CURRENT + 1)), refused.getMessage());
    }

    @Test
    void persistenceIdsRoundTripAndOthersAreNotRead() {
        Serial serial = Serial.parse("131-97870398");
        LicenseKey key = new LicenseKey(6_000_010, 101, 1);
        assertEquals(Optional.of(serial), VirtualContainer.serialOf(VirtualContainer.persistenceId(serial).id()));
        assertEquals(Optional.of(key), TmrLicense.keyOf(TmrLicense.persistenceId(key).id()));
        for (String other : List.of("tmr-handle|1378970895111354285", "container|129-1", "tmr-license|1-2",
                "tmr-license|a-b-c", "tmr-license|01-2-3", "tmr-container|x", "counter-1")) {
            assertTrue(!NodeReplay.reads(other) && NodeReplay.notRead(other).isPresent(), other);
        }
        assertTrue(NodeReplay.notRead("tmr-handle|1").orElseThrow().contains("first node"));
        assertThrows(IllegalArgumentException.class, () -> new NodeReplay(true).add(new NodeReplay.Recovered(
                "tmr-license|1-2-3", null, List.of("not an event"), JournalView.none("tmr-license|1-2-3"))));
    }
}
