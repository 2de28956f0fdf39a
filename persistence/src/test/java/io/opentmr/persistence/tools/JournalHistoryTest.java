package io.opentmr.persistence.tools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Await;
import io.opentmr.persistence.Counter;
import io.opentmr.persistence.Fixtures;
import io.opentmr.persistence.Serialized;
import io.opentmr.persistence.TestConfig;
import io.opentmr.persistence.log.FsyncPolicy;
import io.opentmr.persistence.log.LogOptions;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.LogScanner;
import io.opentmr.persistence.log.SegmentedLog;
import io.opentmr.persistence.snapshot.SnapshotFiles;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link JournalHistory}: recovery offline, as Pekko's with our snapshot store would start it (the newest snapshot
 * taken by then, a damaged one skipped, the events after it), up to a point in time, before the oldest state kept, on
 * version 1 records, on directories that are not journals or are damaged, and beside a writer that rolls, deletes,
 * compacts, removes segments and replaces snapshots while it reads.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class JournalHistoryTest {

    /** Test payloads are text; the decoder hands them back as strings. */
    private static final Decoder TEXT = (serializerId, manifest, bytes) -> new String(bytes, StandardCharsets.UTF_8);

    @TempDir
    Path dir;

    private Path journal() {
        return dir.resolve("journal");
    }

    private Path snapshotDir() {
        return journal().resolve("snapshots");
    }

    /** Event {@code seq} of {@code pid}, written at {@code 1000 + seq} ms, its payload the text of its number. */
    private static LogRecord event(String pid, long seq) {
        return LogRecord.event(pid, seq, 1000 + seq, "w", 4, "m", "", List.of(),
                Long.toString(seq).getBytes(StandardCharsets.UTF_8));
    }

    private SegmentedLog open() throws IOException {
        return SegmentedLog.open(LogOptions.defaults(journal()).withSegmentSize(4096).withFsync(FsyncPolicy.NEVER));
    }

    private static void append(SegmentedLog log, String pid, long from, long to) {
        for (long s = from; s <= to; s++) {
            Await.done(log.append(List.of(log.encode(List.of(event(pid, s))))));
        }
    }

    /** A snapshot of {@code pid} at {@code seq}, taken at {@code 1000 + seq} ms: the text "snapshot@SEQ". */
    private void snapshot(SnapshotFiles files, String pid, long seq) throws IOException {
        files.save(pid, seq, 1000 + seq, new SnapshotFiles.Stored(new Serialized(4, "s",
                ("snapshot@" + seq).getBytes(StandardCharsets.UTF_8)), null));
    }

    private JournalHistory read() throws IOException {
        return JournalHistory.read(journal(), snapshotDir(), pid -> true);
    }

    private static List<Long> sequenceNrs(Recovery r) {
        return r.events().stream().map(Recovery.Event::sequenceNr).toList();
    }

    /** a: 1..10, snapshots at 4 and 8, events up to 4 deleted (as Pekko keeps two snapshots); b: 1..3. */
    private void writeTwoIds() throws IOException {
        SnapshotFiles files = new SnapshotFiles(snapshotDir());
        try (SegmentedLog log = open()) {
            append(log, "a", 1, 4);
            snapshot(files, "a", 4);
            append(log, "b", 1, 3);
            append(log, "a", 5, 8);
            snapshot(files, "a", 8);
            Await.done(log.delete("a", 4));
            append(log, "a", 9, 10);
        }
    }

    @Test
    void recoveryStartsFromTheNewestSnapshotThenTheEventsAfterIt() throws Exception {
        writeTwoIds();
        JournalHistory history = read();
        assertEquals(List.of("a", "b"), history.persistenceIds().stream().map(JournalHistory.IdSummary::persistenceId)
                .toList());
        Recovery a = history.recover("a", null, TEXT);
        assertEquals(Recovery.Start.SNAPSHOT, a.start());
        assertEquals("snapshot@8", a.snapshot().value());
        assertEquals(List.of(9L, 10L), sequenceNrs(a));
        assertEquals("10", a.events().get(1).payload());
        assertEquals(10, a.sequenceNr());
        assertEquals(1010, a.updatedAt());
        assertEquals(4, a.deletedTo());
        assertEquals(List.of(), a.notes());

        Recovery b = history.recover("b", null, TEXT);
        assertEquals(Recovery.Start.EMPTY, b.start());
        assertNull(b.snapshot());
        assertEquals(List.of(1L, 2L, 3L), sequenceNrs(b));
        assertEquals(new JournalHistory.FirstEvent("b", 1, 1001), history.firstEvent().orElseThrow(),
                "a's events 1..4 are deleted");
    }

    @Test
    void atATimeTheStateIsTheNewestSnapshotTakenByThenAndTheEventsWrittenByThen() throws Exception {
        writeTwoIds();
        JournalHistory history = read();
        Recovery a = history.recover("a", Instant.ofEpochMilli(1006), TEXT);
        assertEquals(Recovery.Start.SNAPSHOT, a.start());
        assertEquals("snapshot@4", a.snapshot().value());
        assertEquals(List.of(5L, 6L), sequenceNrs(a));
        assertEquals(6, a.sequenceNr());
        assertEquals(10, a.highestSequenceNr());

        Recovery b = history.recover("b", Instant.ofEpochMilli(1002), TEXT);
        assertEquals(List.of(1L, 2L), sequenceNrs(b));
        Recovery before = history.recover("b", Instant.ofEpochMilli(1000), TEXT);
        assertTrue(before.isEmpty(), "nothing of b was written by then");
        assertEquals(0, before.sequenceNr());
    }

    @Test
    void beforeTheOldestStateKeptTheOldestSnapshotIsShownAndTheRecoverySaysSo() throws Exception {
        writeTwoIds();
        Recovery a = read().recover("a", Instant.ofEpochMilli(1002), TEXT);
        assertEquals(Recovery.Start.OLDEST_SNAPSHOT, a.start());
        assertEquals("snapshot@4", a.snapshot().value());
        assertEquals(List.of(), sequenceNrs(a), "the events after it were written later");
        assertEquals(1, a.notes().size(), a.notes().toString());
        String note = a.notes().get(0);
        assertTrue(note.contains("before the oldest state of a kept") && note.contains("up to seqNr 4")
                && note.contains("oldest snapshot"), note);
    }

    @Test
    void aDamagedSnapshotIsSkippedAsTheSnapshotStoreSkipsIt() throws Exception {
        writeTwoIds();
        Path newest = SnapshotFiles.readOnly(snapshotDir()).list("a").get(0).file();
        try (RandomAccessFile file = new RandomAccessFile(newest.toFile(), "rw")) {
            file.seek(file.length() - 6);
            file.write(0x55);
        }
        Recovery a = read().recover("a", null, TEXT);
        assertEquals("snapshot@4", a.snapshot().value());
        assertEquals(List.of(5L, 6L, 7L, 8L, 9L, 10L), sequenceNrs(a));
        assertEquals(1, a.notes().size());
        assertTrue(a.notes().get(0).contains("cannot be read") && a.notes().get(0).contains("CRC32C"),
                a.notes().get(0));

        // Without a readable snapshot the deleted events are gone: rebuilt from the first one kept, and said so.
        Files.delete(SnapshotFiles.readOnly(snapshotDir()).list("a").get(1).file());
        Recovery rest = read().recover("a", null, TEXT);
        assertEquals(Recovery.Start.EMPTY, rest.start());
        assertEquals(List.of(5L, 6L, 7L, 8L, 9L, 10L), sequenceNrs(rest));
        assertTrue(rest.notes().stream().anyMatch(n -> n.contains("rebuilt from seqNr 5")), rest.notes().toString());
    }

    @Test
    void aSnapshotRemovedUnderTheReaderIsLookedUpAgain() throws Exception {
        writeTwoIds();
        SnapshotFiles files = new SnapshotFiles(snapshotDir());
        AtomicBoolean replaced = new AtomicBoolean();
        // The node snapshots at 10 and removes the one at 8 just as the reader gets to it.
        Decoder racing = (serializerId, manifest, bytes) -> {
            String text = new String(bytes, StandardCharsets.UTF_8);
            if (text.equals("snapshot@8") && replaced.compareAndSet(false, true)) {
                snapshot(files, "a", 10);
                files.delete(files.list("a").stream().filter(k -> k.sequenceNr() == 8).findFirst().orElseThrow());
                throw new java.nio.file.NoSuchFileException(snapshotDir() + "/snapshot-a-8-1008.snap");
            }
            return text;
        };
        Recovery a = read().recover("a", null, racing);
        assertTrue(replaced.get());
        assertEquals("snapshot@10", a.snapshot().value());
        assertEquals(List.of(), sequenceNrs(a));
        assertEquals(List.of(), a.notes(), "a snapshot replaced under the reader is no damage");
    }

    @Test
    void onlyTheSelectedIdsAreKeptAndAnUndecodableEventIsAClearError() throws Exception {
        writeTwoIds();
        JournalHistory onlyB = JournalHistory.read(journal(), snapshotDir(), "b"::equals);
        assertFalse(onlyB.persistenceId("a").orElseThrow().selected());
        assertEquals(10, onlyB.persistenceId("a").orElseThrow().highestSequenceNr());
        assertThrows(IllegalArgumentException.class, () -> onlyB.recover("a", null, TEXT));
        JournalReadException unreadable = assertThrows(JournalReadException.class, () -> onlyB.recover("b", null,
                (id, manifest, bytes) -> {
                    throw new IllegalStateException("written by a newer version");
                }));
        assertTrue(unreadable.getMessage().contains("seqNr 1 of b") && unreadable.getMessage().contains("newer"),
                unreadable.getMessage());
    }

    @Test
    void aDirectoryThatIsNoJournalIsNamedAsSuch() throws Exception {
        JournalReadException missing = assertThrows(JournalReadException.class, this::read);
        assertTrue(missing.getMessage().contains("does not exist"), missing.getMessage());

        Files.createDirectories(dir.resolve("data/journal"));
        writeTwoIds();
        Files.move(journal(), dir.resolve("data/journal"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        JournalReadException dataDir = assertThrows(JournalReadException.class,
                () -> JournalHistory.read(dir.resolve("data"), snapshotDir(), pid -> true));
        assertTrue(dataDir.getMessage().contains("not a journal") && dataDir.getMessage().contains("did you mean "
                + dir.resolve("data/journal")), dataDir.getMessage());

        Path file = Files.writeString(dir.resolve("file"), "x");
        JournalReadException notDirectory = assertThrows(JournalReadException.class,
                () -> JournalHistory.read(file, snapshotDir(), pid -> true));
        assertTrue(notDirectory.getMessage().contains("not a directory"), notDirectory.getMessage());
    }

    @Test
    void damageBeforeTheTailIsAnErrorNamingItsPlaceATornTailOnlyANote() throws Exception {
        try (SegmentedLog log = open()) {
            append(log, "a", 1, 200);
        }
        List<Path> segments = LogScanner.segmentFiles(journal());
        assertTrue(segments.size() >= 2, "small segments: " + segments);
        Path last = segments.get(segments.size() - 1);
        long size = Files.size(last);
        try (RandomAccessFile file = new RandomAccessFile(last.toFile(), "rw")) {
            file.setLength(size - 3);
        }
        JournalHistory torn = read();
        assertEquals(1, torn.tornTails().size());
        assertEquals(199, torn.recover("a", null, TEXT).sequenceNr(), "the torn event is not replayed");

        try (RandomAccessFile file = new RandomAccessFile(segments.get(0).toFile(), "rw")) {
            file.seek(40);
            file.write(file.read() ^ 0xFF);
        }
        JournalReadException damaged = assertThrows(JournalReadException.class, this::read);
        assertTrue(damaged.getMessage().contains(segments.get(0).toString())
                && damaged.getMessage().contains("at offset 0") && damaged.getMessage().contains("CRC32C")
                && damaged.getMessage().contains("tmr journal verify"), damaged.getMessage());
    }

    /**
     * The persistence module's version 1 records and snapshot files ({@code journal-v1/plugin}: counter-1 added 1..12,
     * snapshots at 5 and 10), decoded by the actor system's serializers as recovery decodes them.
     */
    @Test
    void version1RecordsAndSnapshotsRecoverWithTheActorSystemsSerializers() throws Exception {
        Path old = Fixtures.copy("journal-v1/plugin", dir.resolve("v1"));
        // No plugin is used: the actor system only lends its serializers.
        ActorTestKit kit = ActorTestKit.create("journal-history-v1", TestConfig.forDir(dir.resolve("unused")));
        try {
            Decoder decoder = Decoder.of((ExtendedActorSystem) Adapter.toClassic(kit.system()));
            JournalHistory history = JournalHistory.read(old, old.resolve("snapshots"), pid -> true);
            Recovery now = history.recover("counter-1", null, decoder);
            assertEquals(Recovery.Start.SNAPSHOT, now.start());
            assertEquals(10, now.snapshot().sequenceNr());
            assertEquals(78, total(now), "1 + ... + 12, as the counter recovers it");

            // Event 7 was written at ...239138 ms, the snapshot at 10 at ...239162: snapshot 5, then events 6 and 7.
            Recovery then = history.recover("counter-1", Instant.ofEpochMilli(1796205239138L), decoder);
            assertEquals(5, then.snapshot().sequenceNr());
            assertEquals(List.of(6L, 7L), sequenceNrs(then));
            assertEquals(28, total(then));
        } finally {
            kit.shutdownTestKit();
        }
    }

    private static long total(Recovery r) {
        long total = ((Counter.Total) r.snapshot().value()).value();
        for (Recovery.Event e : r.events()) {
            total += ((Counter.Added) e.payload()).amount();
        }
        return total;
    }

    /**
     * Read beside a live writer: while a writer appends to four ids over 4 KiB segments, snapshots every 20 events of
     * an id (keeping two, deleting the events the older covers, as Pekko's retention does), which rolls segments and
     * makes the journal compact and remove them under the reader, every reading recovers every id consistently: the
     * snapshot's sum plus exactly the events after it, none missing, none twice.
     */
    @Test
    void aReaderBesideAWriterThatRollsDeletesCompactsAndSnapshotsSeesConsistentStates() throws Exception {
        String[] pids = {"p0", "p1", "p2", "p3"};
        SnapshotFiles files = new SnapshotFiles(snapshotDir());
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<Throwable> writerFailure = new AtomicReference<>();
        AtomicLong written = new AtomicLong();
        long compactions;
        Set<String> segmentsSeen = new HashSet<>();
        int readings = 0;
        try (SegmentedLog log = open()) {
            Thread writer = new Thread(() -> {
                long[] seq = new long[pids.length];
                try {
                    while (!stop.get()) {
                        for (int i = 0; i < pids.length; i++) {
                            long s = ++seq[i];
                            Await.done(log.append(List.of(log.encode(List.of(LogRecord.event(pids[i], s, s, "w", 4,
                                    "m", "", List.of(), Long.toString(s).getBytes(StandardCharsets.UTF_8)))))));
                            if (s % 20 == 0) {
                                files.save(pids[i], s, s, new SnapshotFiles.Stored(new Serialized(4, "s",
                                        ("sum:" + s * (s + 1) / 2).getBytes(StandardCharsets.UTF_8)), null));
                                if (s >= 40) {
                                    Await.done(log.delete(pids[i], s - 20));
                                    for (SnapshotFiles.Key old : files.list(pids[i])) {
                                        if (old.sequenceNr() < s - 20) {
                                            files.delete(old);
                                        }
                                    }
                                }
                            }
                            written.incrementAndGet();
                        }
                        if (seq[0] % 50 == 0) {
                            log.compactNow();
                        }
                    }
                } catch (Throwable t) {
                    writerFailure.set(t);
                }
            }, "journal-writer");
            writer.start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(4);
            try {
                while (System.nanoTime() < deadline || readings < 20) {
                    JournalHistory history = read();
                    LogScanner.segmentFiles(journal()).forEach(p -> segmentsSeen.add(p.getFileName().toString()));
                    for (JournalHistory.IdSummary id : history.persistenceIds()) {
                        checkConsistent(history.recover(id.persistenceId(), null, TEXT));
                    }
                    readings++;
                    assertTrue(writerFailure.get() == null, () -> "writer failed: " + writerFailure.get());
                }
            } finally {
                stop.set(true);
                writer.join(10_000);
            }
            compactions = log.diskUsage().compactions();
            assertTrue(writerFailure.get() == null, () -> "writer failed: " + writerFailure.get());
            // Once quiet, the reading is the writer's state exactly.
            JournalHistory last = read();
            for (JournalHistory.IdSummary id : last.persistenceIds()) {
                Recovery r = last.recover(id.persistenceId(), null, TEXT);
                checkConsistent(r);
                assertEquals(log.highestSequenceNr(id.persistenceId()), r.sequenceNr());
            }
        }
        int segmentsLeft = LogScanner.segmentFiles(journal()).size();
        assertTrue(compactions > 0, "segments were compacted under the reader");
        assertTrue(segmentsSeen.size() > segmentsLeft + 5, "segments were rolled and removed under the reader: seen "
                + segmentsSeen.size() + ", left " + segmentsLeft);
        assertTrue(written.get() > 1000, "the writer kept writing: " + written.get());
    }

    /** The snapshot's sum, then exactly the events after it in order: the sum of 1..sequenceNr. */
    private static void checkConsistent(Recovery r) {
        long sum = 0;
        long next = 1;
        if (r.snapshot() != null) {
            sum = Long.parseLong(((String) r.snapshot().value()).substring("sum:".length()));
            next = r.snapshot().sequenceNr() + 1;
        } else {
            assertEquals(0, r.deletedTo(), () -> r.persistenceId() + ": no snapshot, but events deleted: " + r.notes());
        }
        for (Recovery.Event e : r.events()) {
            long n = next;
            assertEquals(n, e.sequenceNr(), () -> r.persistenceId() + ": event " + n + " missing or twice, got "
                    + sequenceNrs(r));
            sum += Long.parseLong((String) e.payload());
            next++;
        }
        long last = next - 1;
        assertEquals(last * (last + 1) / 2, sum, () -> r.persistenceId() + " at seqNr " + last);
        assertEquals(List.of(), r.notes(), r.persistenceId());
    }
}
