package io.opentmr.persistence.log;

import static io.opentmr.persistence.log.Records.event;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Await;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link SegmentedLog#truncateFrom}: what stays is exactly the records below the position, the index is the one an
 * open would build (a truncated tombstone brings its events back), writing goes on at the cut, and a crash at any step
 * of the truncation leaves a log that opens and holds a prefix at least as long as the target.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TruncationTest {

    private static final long SEGMENT = 4096;

    @TempDir
    Path dir;
    @TempDir
    Path scratch;

    private static LogOptions options(Path d) {
        // Nothing counts as replicated: compaction keeps every record, so the test sees exactly what truncation did.
        return Records.options(d).withSegmentSize(SEGMENT).withFsync(FsyncPolicy.NEVER).withReplicatedTo(() -> 0L);
    }

    private static void write(SegmentedLog log, String pid, long from, long to) {
        for (long s = from; s <= to; s++) {
            Await.done(log.append(List.of(log.encode(List.of(event(pid, s))))));
        }
    }

    private static List<Long> seqs(SegmentedLog log, String pid) {
        List<Long> out = new ArrayList<>();
        log.replay(pid, 1, Long.MAX_VALUE, Long.MAX_VALUE, r -> out.add(r.sequenceNr()));
        return out;
    }

    @Test
    void keepsExactlyTheRecordsBelowThePositionAndWritesOnFromThere() throws Exception {
        List<String> all;
        try (SegmentedLog log = SegmentedLog.open(options(dir))) {
            write(log, "a", 1, 200);              // positions 0..199, several segments
            Await.done(log.delete("a", 150));     // position 200
            write(log, "a", 201, 202);            // 201, 202
            all = LogCopies.records(log);
            assertTrue(log.diskUsage().segments() > 3);
            assertEquals(52, seqs(log, "a").size());

            assertEquals(200, Await.done(log.truncateFrom(200)));
            assertEquals(all.subList(0, 200), LogCopies.records(log));
            // The tombstone is gone: its events are back, as an open of this log would show.
            assertEquals(200, seqs(log, "a").size());
            assertEquals(200, log.highestSequenceNr("a"));
            assertEquals(0, log.deletedTo("a"));

            assertEquals(25, Await.done(log.truncateFrom(25)));
            assertEquals(all.subList(0, 25), LogCopies.records(log));
            write(log, "b", 1, 2);
            assertEquals(27, log.nextPosition());
            assertEquals(25, log.read(25).position());
        }
        try (SegmentedLog log = SegmentedLog.open(options(dir))) {
            List<String> now = LogCopies.records(log);
            assertEquals(all.subList(0, 25), now.subList(0, 25));
            assertEquals(27, now.size());
            assertEquals(0, Await.done(log.truncateFrom(0)));
            assertEquals(List.of(), LogCopies.records(log));
            write(log, "c", 1, 1);
            assertEquals(1, log.nextPosition());
        }
    }

    @Test
    void aCutInsideAnAtomicWriteTakesTheWholeWrite() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(options(dir))) {
            write(log, "a", 1, 3);
            Await.done(log.append(List.of(log.encode(List.of(event("b", 1), event("b", 2), event("b", 3))))));
            assertEquals(3, Await.done(log.truncateFrom(5)));
            assertEquals(List.of(), seqs(log, "b"));
        }
    }

    @Test
    void aCrashAtAnyStepLeavesALogThatOpensWithALongerPrefix() throws Exception {
        List<String> all;
        try (SegmentedLog log = SegmentedLog.open(options(dir))) {
            write(log, "a", 1, 250);
            all = LogCopies.records(log);
            assertTrue(log.diskUsage().segments() >= 4);
        }
        long target = 70;
        List<String> steps = new ArrayList<>();
        Truncation.truncateFrom(copyOf(dir, "steps"), target, true, steps::add);
        assertTrue(steps.size() >= 3, "removals and a cut: " + steps);
        for (int crashAt = 0; crashAt <= steps.size(); crashAt++) {
            Path d = copyOf(dir, "crash-" + crashAt);
            AtomicInteger step = new AtomicInteger();
            int stop = crashAt;
            if (crashAt < steps.size()) {
                assertThrows(IOException.class, () -> Truncation.truncateFrom(d, target, true, s -> {
                    if (step.getAndIncrement() == stop) {
                        throw new IOException("crash before " + s);
                    }
                }));
            } else {
                Truncation.truncateFrom(d, target, true, Truncation.NO_CRASH);
            }
            try (SegmentedLog log = SegmentedLog.open(options(d))) {
                List<String> left = LogCopies.records(log);
                assertTrue(left.size() >= target, "crash at step " + crashAt + " kept " + left.size());
                assertEquals(all.subList(0, left.size()), left, "a prefix of the old log");
                assertEquals(target, Await.done(log.truncateFrom(target)));
                assertEquals(all.subList(0, (int) target), LogCopies.records(log));
            }
        }
    }

    private Path copyOf(Path from, String name) throws IOException {
        Path to = scratch.resolve(name);
        Files.createDirectories(to);
        try (Stream<Path> files = Files.list(from)) {
            for (Path f : files.filter(p -> p.getFileName().toString().endsWith(".seg")).toList()) {
                Files.copy(f, to.resolve(f.getFileName()));
            }
        }
        return to;
    }
}
