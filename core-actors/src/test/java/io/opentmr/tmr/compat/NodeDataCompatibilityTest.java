package io.opentmr.tmr.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.NodeStatus;
import io.opentmr.tmr.Quorums;
import io.opentmr.tmr.VirtualContainer;
import io.opentmr.tmr.backend.PeerGroup;
import io.opentmr.tmr.license.Seat;
import io.opentmr.tmr.license.TmrLicense;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Clock;
import java.time.Duration;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A node's data directory written by the first node (version 1 records, {@code compat/node-data-v0}, see its
 * README) opens with this code through the real journal plugin: every license recovers the seats it held at
 * the crash, releases included, and a new record can be written after the old ones. That node journaled no
 * virtual container: the container starts empty, learns its licenses from the inventories, and from then on
 * recovers them itself.
 */
@Timeout(60)
class NodeDataCompatibilityTest {

    private static final Duration REPLY = Duration.ofSeconds(20);

    @TempDir
    Path dir;

    private Path copyOfFixture() throws IOException, URISyntaxException {
        Path fixture = Path.of(getClass().getResource("/compat/node-data-v0/journal").toURI());
        Path journal = dir.resolve("journal");
        Files.createDirectories(journal);
        try (Stream<Path> files = Files.list(fixture)) {
            for (Path file : files.toList()) {
                Files.copy(file, journal.resolve(file.getFileName()), StandardCopyOption.REPLACE_EXISTING);
            }
        }
        return journal;
    }

    /** The parent's part: which handles each license said it has. */
    static final class Opened implements TmrLicense.Parent {
        final Map<LicenseKey, java.util.Set<Long>> handles = new ConcurrentHashMap<>();
        volatile boolean recovered;

        @Override
        public void seatsChanged(LicenseKey key, long inUse, int count, long units, int usable, long round) {
        }

        @Override
        public void opened(LicenseKey key, Seat seat) {
            long handleId = seat.handleId();
            handles.computeIfAbsent(key, k -> ConcurrentHashMap.newKeySet()).add(handleId);
        }

        @Override
        public void closed(LicenseKey key, long handleId) {
        }

        @Override
        public void needsResync(LicenseKey key, int backend) {
        }

        @Override
        public void recovered(LicenseKey key, ActorRef<TmrLicense.Command> license) {
            recovered = true;
        }
    }

    private Config journalConfig() throws IOException, URISyntaxException {
        Path journal = copyOfFixture();
        return ConfigFactory.parseMap(Map.of(
                "pekko.persistence.journal.plugin", "opentmr.persistence.journal",
                "pekko.persistence.snapshot-store.plugin", "opentmr.persistence.snapshot-store",
                "opentmr.persistence.dir", journal.toString())).withFallback(ConfigFactory.load()).resolve();
    }

    @Test
    void theFirstNodesDataOpensWithItsSeats() throws Exception {
        Config config = journalConfig();
        ActorTestKit kit = ActorTestKit.create("node-data-v0", config);
        try {
            PeerGroup peers = new PeerGroup(3, Clock.systemUTC(), Duration.ofSeconds(1));
            LicenseKey seats = new LicenseKey(6_000_010, 101, 1);
            Opened parent = new Opened();
            ActorRef<TmrLicense.Command> license = kit.spawn(TmrLicense.create(seats, peers, parent, Clock.systemUTC(),
                    new Random(1), id -> new byte[16], new TmrLicense.Settings(Duration.ofMinutes(2), 1000)));
            TestProbe<Optional<Seat>> seatOf = kit.createTestProbe();
            for (long held : List.of(1378970895111354285L, 2058560906133485271L)) {
                license.tell(new TmrLicense.SeatOf(held, seatOf.getRef()));
                Seat seat = seatOf.receiveMessage(REPLY).orElseThrow(() -> new AssertionError("seat " + held
                        + " held at the crash is gone"));
                assertEquals(held, seat.handleId());
                assertEquals(null, seat.host(), "a version 1 seat does not name its request");
            }
            license.tell(new TmrLicense.SeatOf(6829697663109341054L, seatOf.getRef()));
            assertTrue(seatOf.receiveMessage(REPLY).isEmpty(), "the released seat stays released");
            assertTrue(parent.recovered);
            assertEquals(java.util.Set.of(1378970895111354285L, 2058560906133485271L), parent.handles.get(seats));

            LicenseKey units = new LicenseKey(6_000_010, 102, 2);
            Opened unitsParent = new Opened();
            ActorRef<TmrLicense.Command> unitsLicense = kit.spawn(TmrLicense.create(units, peers, unitsParent,
                    Clock.systemUTC(), new Random(1), id -> new byte[16],
                    new TmrLicense.Settings(Duration.ofMinutes(2), 1000)));
            unitsLicense.tell(new TmrLicense.SeatOf(8841581681675497678L, seatOf.getRef()));
            assertTrue(seatOf.receiveMessage(REPLY).isEmpty(), "the units license held no seat at the crash");
        } finally {
            kit.shutdownTestKit();
        }
    }

    @Test
    void theVirtualContainerStartsEmptyOnTheFirstNodesDataThenRecoversTheLicensesItLearned() throws Exception {
        ActorTestKit kit = ActorTestKit.create("node-data-v0-container", journalConfig());
        try {
            Serial serial = Serial.parse("131-97870398");
            PeerGroup peers = new PeerGroup(3, Clock.systemUTC(), Duration.ofSeconds(1));
            LicenseKey seats = new LicenseKey(6_000_010, 101, 1);
            VirtualContainer.LicenseFactory licenses = (key, parent) -> TmrLicense.create(key, peers, parent,
                    Clock.systemUTC(), new Random(1), id -> new byte[16],
                    new TmrLicense.Settings(Duration.ofMinutes(2), 1000));
            ActorRef<VirtualContainer.Command> container = kit.spawn(VirtualContainer.create(serial, peers,
                    new NodeStatus(peers), Clock.systemUTC(), Duration.ofMillis(250), Duration.ofSeconds(10), licenses));
            TestProbe<VirtualContainer.Licenses> known = kit.createTestProbe();
            container.tell(new VirtualContainer.GetLicenses(known.getRef()));
            assertEquals(new VirtualContainer.Licenses(java.util.Set.of(), java.util.Set.of()),
                    known.receiveMessage(REPLY), "no container events: it knows no license yet");
            TestProbe<VirtualContainer.Listed> listed = kit.createTestProbe();
            container.tell(new VirtualContainer.ListContainers(listed.getRef()));
            assertEquals(0, listed.receiveMessage(REPLY).container().cmActId());

            // The inventories show the license: journaled after the old records, and its seats recovered.
            BitSet one = new BitSet();
            one.set(0);
            container.tell(new VirtualContainer.Counted(new Quorums.View(7, one, Map.of(seats,
                    new Quorums.Verdict(seats, one, null, true, -1)))));
            awaitRecovered(kit, container, seats);
            kit.stop(container, REPLY);

            // Started again with no backend heard of: the license is known and recovers its seats.
            ActorRef<VirtualContainer.Command> again = kit.spawn(VirtualContainer.create(serial, peers,
                    new NodeStatus(peers), Clock.systemUTC(), Duration.ofMillis(250), Duration.ofSeconds(10), licenses));
            awaitRecovered(kit, again, seats);
            // Its handles are routed to it, though no backend lists the license (as a RESUME or RELEASE would be).
            TestProbe<Optional<Seat>> seatOf = kit.createTestProbe();
            TestProbe<TmrLicense.Reply> refused = kit.createTestProbe();
            long held = 1378970895111354285L;
            again.tell(new VirtualContainer.ToHandle(held, new TmrLicense.SeatOf(held, seatOf.getRef()),
                    refused.getRef()));
            assertEquals(held, seatOf.receiveMessage(REPLY).orElseThrow().handleId());
            refused.expectNoMessage(Duration.ofMillis(100));
            again.tell(new VirtualContainer.ListContainers(listed.getRef()));
            assertEquals(7, listed.receiveMessage(REPLY).container().cmActId(), "the CmActId is journaled");
        } finally {
            kit.shutdownTestKit();
        }
    }

    private static void awaitRecovered(ActorTestKit kit, ActorRef<VirtualContainer.Command> container,
                                       LicenseKey key) {
        TestProbe<VirtualContainer.Licenses> known = kit.createTestProbe();
        known.awaitAssert(REPLY, () -> {
            container.tell(new VirtualContainer.GetLicenses(known.getRef()));
            VirtualContainer.Licenses licenses = known.receiveMessage(Duration.ofSeconds(1));
            assertEquals(java.util.Set.of(key), licenses.known());
            assertEquals(java.util.Set.of(key), licenses.recovered());
            return null;
        });
    }
}
