package io.opentmr.persistence.journal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.persistence.TestConfig;
import io.opentmr.persistence.TestEvent;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.ActorRef;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.persistence.AtomicWrite;
import org.apache.pekko.persistence.DeleteMessagesFailure;
import org.apache.pekko.persistence.DeleteMessagesSuccess;
import org.apache.pekko.persistence.DeleteSnapshotSuccess;
import org.apache.pekko.persistence.DeleteSnapshotsSuccess;
import org.apache.pekko.persistence.JournalProtocol;
import org.apache.pekko.persistence.Persistence;
import org.apache.pekko.persistence.PersistentEnvelope;
import org.apache.pekko.persistence.PersistentRepr;
import org.apache.pekko.persistence.SaveSnapshotSuccess;
import org.apache.pekko.persistence.SelectedSnapshot;
import org.apache.pekko.persistence.SnapshotMetadata;
import org.apache.pekko.persistence.SnapshotProtocol;
import org.apache.pekko.persistence.SnapshotSelectionCriteria;
import org.apache.pekko.persistence.journal.Tagged;
import org.apache.pekko.testkit.javadsl.TestKit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The journal and snapshot store driven through Pekko's plugin protocol, as Pekko's TCK specs drive a plugin
 * (the TCK itself needs a Scala test framework): write, replay with bounds, atomic writes, rejection, deletion, reopen.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class JournalPluginTest {

    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final String WRITER = "writer-uuid-1";

    @TempDir
    Path dir;

    private ActorSystem system;
    private ActorRef journal;
    private ActorRef snapshots;
    private TestKit probe;

    /** Not bound to any serializer; with Java serialization off it cannot be stored. */
    record NotSerializable(String value) {
    }

    @BeforeEach
    void start() {
        startSystem();
    }

    @AfterEach
    void stop() {
        TestKit.shutdownActorSystem(system, scala.concurrent.duration.Duration.create(20, TimeUnit.SECONDS), true);
    }

    private void startSystem() {
        startSystem(TestConfig.forDir(dir));
    }

    private void startSystem(Config config) {
        system = ActorSystem.create("journal-test", config);
        journal = Persistence.get(system).journalFor("opentmr.persistence.journal", ConfigFactory.empty());
        snapshots = Persistence.get(system).snapshotStoreFor("opentmr.persistence.snapshot-store",
                ConfigFactory.empty());
        probe = new TestKit(system);
    }

    private void restartSystem() {
        stop();
        startSystem();
    }

    private static PersistentRepr repr(String pid, long seq, Object payload) {
        return PersistentRepr.apply(payload, seq, pid, "", false, ActorRef.noSender(), WRITER);
    }

    private static AtomicWrite atomic(PersistentRepr... reprs) {
        return AtomicWrite.apply(CollectionConverters.asScala(List.of(reprs)).toList());
    }

    /** Sends one WriteMessages and returns the per-message replies (success or rejection). */
    private List<Object> write(AtomicWrite... writes) {
        List<PersistentEnvelope> envelopes = List.of(writes);
        journal.tell(new JournalProtocol.WriteMessages(CollectionConverters.asScala(envelopes).toList(),
                probe.getRef(), 1), probe.getRef());
        probe.expectMsgEquals(WAIT, JournalProtocol.WriteMessagesSuccessful$.MODULE$);
        int messages = 0;
        for (AtomicWrite w : writes) {
            messages += w.size();
        }
        List<Object> replies = new ArrayList<>();
        for (int i = 0; i < messages; i++) {
            replies.add(probe.expectMsgAnyClassOf(WAIT, JournalProtocol.WriteMessageSuccess.class,
                    JournalProtocol.WriteMessageRejected.class));
        }
        return replies;
    }

    private void writeEvents(String pid, long from, long to) {
        for (long s = from; s <= to; s++) {
            write(atomic(repr(pid, s, new TestEvent(pid + "-" + s))));
        }
    }

    /** Replays and returns the sequence numbers; checks the highest sequence number reported at the end. */
    private List<Long> replay(String pid, long from, long to, long max, long expectedHighest) {
        journal.tell(new JournalProtocol.ReplayMessages(from, to, max, pid, probe.getRef()), probe.getRef());
        List<Long> seqs = new ArrayList<>();
        while (true) {
            Object msg = probe.expectMsgAnyClassOf(WAIT, JournalProtocol.ReplayedMessage.class,
                    JournalProtocol.RecoverySuccess.class);
            if (msg instanceof JournalProtocol.ReplayedMessage r) {
                PersistentRepr p = r.persistent();
                assertEquals(pid, p.persistenceId());
                assertEquals(WRITER, p.writerUuid());
                assertEquals(new TestEvent(pid + "-" + p.sequenceNr()), p.payload());
                seqs.add(p.sequenceNr());
            } else {
                assertEquals(expectedHighest, ((JournalProtocol.RecoverySuccess) msg).highestSequenceNr());
                return seqs;
            }
        }
    }

    @Test
    void replaysWithFromToAndMaxBounds() {
        writeEvents("a", 1, 5);
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L), replay("a", 1, Long.MAX_VALUE, Long.MAX_VALUE, 5));
        assertEquals(List.of(2L, 3L, 4L), replay("a", 2, 4, Long.MAX_VALUE, 5));
        assertEquals(List.of(2L, 3L), replay("a", 2, 5, 2, 5));
        assertEquals(List.of(), replay("a", 1, 5, 0, 5));
        assertEquals(List.of(5L), replay("a", 5, 5, 10, 5));
        assertEquals(List.of(), replay("a", 4, 3, 10, 5));
        assertEquals(List.of(), replay("a", 6, Long.MAX_VALUE, 10, 5));
        assertEquals(List.of(), replay("unknown", 1, Long.MAX_VALUE, Long.MAX_VALUE, 0));
    }

    @Test
    void deletesKeepTheHighestSequenceNumberAlsoAfterReopen() {
        writeEvents("a", 1, 5);
        journal.tell(new JournalProtocol.DeleteMessagesTo("a", 3, probe.getRef()), probe.getRef());
        assertEquals(3, probe.expectMsgClass(WAIT, DeleteMessagesSuccess.class).toSequenceNr());
        assertEquals(List.of(4L, 5L), replay("a", 1, Long.MAX_VALUE, Long.MAX_VALUE, 5));
        journal.tell(new JournalProtocol.DeleteMessagesTo("a", Long.MAX_VALUE, probe.getRef()), probe.getRef());
        probe.expectMsgClass(WAIT, DeleteMessagesSuccess.class);
        assertEquals(List.of(), replay("a", 1, Long.MAX_VALUE, Long.MAX_VALUE, 5));
        restartSystem();
        assertEquals(List.of(), replay("a", 1, Long.MAX_VALUE, Long.MAX_VALUE, 5));
    }

    @Test
    void anAtomicWriteIsAllOrNothingAndARejectedOneDoesNotStopTheOthers() {
        List<Object> replies = write(
                atomic(repr("a", 1, new TestEvent("a-1")), repr("a", 2, new TestEvent("a-2"))),
                atomic(repr("b", 1, new TestEvent("b-1")), repr("b", 2, new NotSerializable("nope"))),
                atomic(repr("c", 1, new TestEvent("c-1"))));
        assertTrue(replies.get(0) instanceof JournalProtocol.WriteMessageSuccess);
        assertTrue(replies.get(1) instanceof JournalProtocol.WriteMessageSuccess);
        assertTrue(replies.get(2) instanceof JournalProtocol.WriteMessageRejected, replies.get(2).toString());
        assertTrue(replies.get(3) instanceof JournalProtocol.WriteMessageRejected, replies.get(3).toString());
        assertTrue(replies.get(4) instanceof JournalProtocol.WriteMessageSuccess);
        assertEquals(List.of(1L, 2L), replay("a", 1, Long.MAX_VALUE, Long.MAX_VALUE, 2));
        assertEquals(List.of(), replay("b", 1, Long.MAX_VALUE, Long.MAX_VALUE, 0));
        assertEquals(List.of(1L), replay("c", 1, Long.MAX_VALUE, Long.MAX_VALUE, 1));
    }

    @Test
    void eventMetadataIsStoredAndReplayedAlsoAfterReopen() {
        write(atomic(repr("m", 1, new TestEvent("m-1")).withMetadata(new TestEvent("meta-1")),
                        repr("m", 2, new TestEvent("m-2"))),
                atomic(repr("m", 3, new Tagged(new TestEvent("m-3"), Set.of("x"))).withMetadata(
                        new TestEvent("meta-3"))));
        List<Object> expected = List.of(new TestEvent("meta-1"), "none", new TestEvent("meta-3"));
        assertEquals(expected, replayedMetadata("m"));
        restartSystem();
        assertEquals(expected, replayedMetadata("m"));
    }

    @Test
    void metadataThatCannotBeSerializedRejectsItsAtomicWriteAlone() {
        List<Object> replies = write(
                atomic(repr("a", 1, new TestEvent("a-1")).withMetadata(new NotSerializable("nope"))),
                atomic(repr("c", 1, new TestEvent("c-1"))));
        JournalProtocol.WriteMessageRejected rejected = (JournalProtocol.WriteMessageRejected) replies.get(0);
        assertTrue(rejected.cause().getMessage().contains("metadata"), rejected.cause().getMessage());
        assertTrue(replies.get(1) instanceof JournalProtocol.WriteMessageSuccess, replies.get(1).toString());
    }

    /** The metadata of each replayed event of {@code pid}, "none" where it has none. */
    private List<Object> replayedMetadata(String pid) {
        journal.tell(new JournalProtocol.ReplayMessages(1, Long.MAX_VALUE, Long.MAX_VALUE, pid, probe.getRef()),
                probe.getRef());
        List<Object> out = new ArrayList<>();
        while (true) {
            Object msg = probe.expectMsgAnyClassOf(WAIT, JournalProtocol.ReplayedMessage.class,
                    JournalProtocol.RecoverySuccess.class);
            if (!(msg instanceof JournalProtocol.ReplayedMessage r)) {
                return out;
            }
            assertEquals(new TestEvent(pid + "-" + r.persistent().sequenceNr()), r.persistent().payload());
            out.add(r.persistent().metadata().isDefined() ? r.persistent().metadata().get() : "none");
        }
    }

    @Test
    void aPersistenceIdTooLongForTheFormatFailsThatWriteOnlyAndTheWriterGoesOn() {
        String tooLong = "p".repeat(70_000);
        writeEvents("a", 1, 1);
        List<Object> replies = write(atomic(repr(tooLong, 1, new TestEvent("x"))),
                atomic(repr("a", 2, new TestEvent("a-2"))));
        JournalProtocol.WriteMessageRejected rejected = (JournalProtocol.WriteMessageRejected) replies.get(0);
        assertTrue(rejected.cause().getMessage().contains("persistence id longer than 65535"),
                rejected.cause().getMessage());
        assertTrue(replies.get(1) instanceof JournalProtocol.WriteMessageSuccess, replies.get(1).toString());

        journal.tell(new JournalProtocol.DeleteMessagesTo(tooLong, 1, probe.getRef()), probe.getRef());
        DeleteMessagesFailure failed = probe.expectMsgClass(WAIT, DeleteMessagesFailure.class);
        assertTrue(failed.cause().getMessage().contains("persistence id longer than 65535"),
                failed.cause().getMessage());

        writeEvents("a", 3, 4);
        assertEquals(List.of(1L, 2L, 3L, 4L), replay("a", 1, Long.MAX_VALUE, Long.MAX_VALUE, 4));
        assertEquals(List.of(), replay(tooLong, 1, Long.MAX_VALUE, Long.MAX_VALUE, 0));
    }

    @Test
    void snapshotsOfPersistenceIdsTooLongForAFileNameAndTheirNeighboursAreKeptApart() {
        String longId = "q".repeat(1_000);
        String longer = longId + "q";
        snapshots.tell(new SnapshotProtocol.SaveSnapshot(SnapshotMetadata.apply(longId, 7, 0),
                new TestEvent("long")), probe.getRef());
        probe.expectMsgClass(WAIT, SaveSnapshotSuccess.class);
        snapshots.tell(new SnapshotProtocol.SaveSnapshot(SnapshotMetadata.apply(longer, 8, 0),
                new TestEvent("longer")), probe.getRef());
        probe.expectMsgClass(WAIT, SaveSnapshotSuccess.class);
        // "a" and "a-1": one name is a prefix of the other's files.
        save("a", 5, 0);
        save("a-1", 6, 0);
        restartSystem();
        assertEquals(new TestEvent("long"), load(longId, SnapshotSelectionCriteria.latest()).snapshot());
        assertEquals(new TestEvent("longer"), load(longer, SnapshotSelectionCriteria.latest()).snapshot());
        assertEquals(5, load("a", SnapshotSelectionCriteria.latest()).metadata().sequenceNr());
        assertEquals(6, load("a-1", SnapshotSelectionCriteria.latest()).metadata().sequenceNr());
    }

    @Test
    void snapshotMetadataIsStoredAndLoaded() {
        SnapshotMetadata md = SnapshotMetadata.apply("s", 3, 0).withMetadata(new TestEvent("snap-meta"));
        snapshots.tell(new SnapshotProtocol.SaveSnapshot(md, new TestEvent("snap-3")), probe.getRef());
        probe.expectMsgClass(WAIT, SaveSnapshotSuccess.class);
        restartSystem();
        SelectedSnapshot loaded = load("s", SnapshotSelectionCriteria.latest());
        assertEquals(new TestEvent("snap-3"), loaded.snapshot());
        assertEquals(new TestEvent("snap-meta"), loaded.metadata().metadata().get());
    }

    @Test
    void taggedEventsAreStoredWithoutTheirWrapper() {
        write(atomic(repr("t", 1, new Tagged(new TestEvent("t-1"), Set.of("x")))));
        assertEquals(List.of(1L), replay("t", 1, Long.MAX_VALUE, Long.MAX_VALUE, 1));
    }

    @Test
    void manyPersistenceIdsWriteConcurrentlyAndReplayInOrderAfterReopen() throws Exception {
        int ids = 20;
        int each = 30;
        List<TestKit> probes = new ArrayList<>();
        for (int i = 0; i < ids; i++) {
            probes.add(new TestKit(system));
        }
        for (long s = 1; s <= each; s++) {
            for (int i = 0; i < ids; i++) {
                String pid = "p" + i;
                List<PersistentEnvelope> one = List.of(atomic(repr(pid, s, new TestEvent(pid + "-" + s))));
                journal.tell(new JournalProtocol.WriteMessages(CollectionConverters.asScala(one).toList(),
                        probes.get(i).getRef(), 1), probes.get(i).getRef());
            }
        }
        for (TestKit p : probes) {
            for (int s = 0; s < each; s++) {
                p.expectMsgEquals(WAIT, JournalProtocol.WriteMessagesSuccessful$.MODULE$);
                p.expectMsgClass(WAIT, JournalProtocol.WriteMessageSuccess.class);
            }
        }
        restartSystem();
        List<Long> expected = new ArrayList<>();
        for (long s = 1; s <= each; s++) {
            expected.add(s);
        }
        for (int i = 0; i < ids; i++) {
            assertEquals(expected, replay("p" + i, 1, Long.MAX_VALUE, Long.MAX_VALUE, each));
        }
    }

    private SelectedSnapshot load(String pid, SnapshotSelectionCriteria criteria) {
        snapshots.tell(new SnapshotProtocol.LoadSnapshot(pid, criteria, Long.MAX_VALUE), probe.getRef());
        SnapshotProtocol.LoadSnapshotResult r = probe.expectMsgClass(WAIT, SnapshotProtocol.LoadSnapshotResult.class);
        return r.snapshot().isDefined() ? r.snapshot().get() : null;
    }

    /** Saves and returns the timestamp the store recorded (Pekko stamps the save time, not the caller's). */
    private long save(String pid, long seq, long timestamp) {
        SnapshotMetadata md = SnapshotMetadata.apply(pid, seq, timestamp);
        snapshots.tell(new SnapshotProtocol.SaveSnapshot(md, new TestEvent("snap-" + seq)), probe.getRef());
        return probe.expectMsgClass(WAIT, SaveSnapshotSuccess.class).metadata().timestamp();
    }

    @Test
    void snapshotsSaveLoadByCriteriaAndDelete() {
        long firstSaved = save("s", 10, 1000);
        save("s", 20, 2000);
        save("s", 30, 3000);
        SelectedSnapshot latest = load("s", SnapshotSelectionCriteria.latest());
        assertEquals(30, latest.metadata().sequenceNr());
        assertEquals(new TestEvent("snap-30"), latest.snapshot());
        assertEquals(20, load("s", SnapshotSelectionCriteria.create(25, Long.MAX_VALUE)).metadata().sequenceNr());
        assertEquals(null, load("s", SnapshotSelectionCriteria.create(Long.MAX_VALUE, firstSaved - 1)));
        assertTrue(load("s", SnapshotSelectionCriteria.create(Long.MAX_VALUE, firstSaved)).metadata().timestamp()
                <= firstSaved);
        assertEquals(null, load("s", SnapshotSelectionCriteria.create(5, Long.MAX_VALUE)));
        assertEquals(null, load("other", SnapshotSelectionCriteria.latest()));

        snapshots.tell(new SnapshotProtocol.DeleteSnapshot(SnapshotMetadata.apply("s", 30, 0)), probe.getRef());
        probe.expectMsgClass(WAIT, DeleteSnapshotSuccess.class);
        assertEquals(20, load("s", SnapshotSelectionCriteria.latest()).metadata().sequenceNr());

        restartSystem();
        assertEquals(20, load("s", SnapshotSelectionCriteria.latest()).metadata().sequenceNr());
        snapshots.tell(new SnapshotProtocol.DeleteSnapshots("s", SnapshotSelectionCriteria.create(20, Long.MAX_VALUE)),
                probe.getRef());
        probe.expectMsgClass(WAIT, DeleteSnapshotsSuccess.class);
        assertFalse(load("s", SnapshotSelectionCriteria.latest()) != null);
    }

    @Test
    void anAtomicWriteLargerThanASegmentIsRejectedAloneWithAClearError() {
        stop();
        startSystem(ConfigFactory.parseString("opentmr.persistence.segment-size = 4 KiB")
                .withFallback(TestConfig.forDir(dir)));
        String kb = "x".repeat(1500);
        List<Object> replies = write(
                atomic(repr("a", 1, new TestEvent("a-1"))),
                atomic(repr("b", 1, new TestEvent(kb)), repr("b", 2, new TestEvent(kb)),
                        repr("b", 3, new TestEvent(kb))),
                atomic(repr("a", 2, new TestEvent("a-2"))));
        assertTrue(replies.get(0) instanceof JournalProtocol.WriteMessageSuccess, replies.get(0).toString());
        for (int i = 1; i <= 3; i++) {
            JournalProtocol.WriteMessageRejected rejected = (JournalProtocol.WriteMessageRejected) replies.get(i);
            assertTrue(rejected.cause().getMessage().contains("segment-size"), rejected.cause().getMessage());
        }
        assertTrue(replies.get(4) instanceof JournalProtocol.WriteMessageSuccess, replies.get(4).toString());
        assertEquals(List.of(1L, 2L), replay("a", 1, Long.MAX_VALUE, Long.MAX_VALUE, 2));
        assertEquals(List.of(), replay("b", 1, Long.MAX_VALUE, Long.MAX_VALUE, 0));
    }
}
