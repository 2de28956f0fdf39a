package io.opentmr.persistence.log;

import static io.opentmr.persistence.log.Records.event;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Await;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The follower's side of the log: records read from one log as stored and appended to another keep their positions,
 * epochs and bytes, across segments, atomic writes, tombstones and compaction gaps; the copy's index works and it
 * reopens the same; a chunk that does not continue the log is refused. And the leader's side: the commit gate holds
 * acknowledgements, and the epoch queries the handshake uses.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ReplicatedAppendTest {

    private static final long SEGMENT = 8 * 1024;

    @TempDir
    Path leaderDir;
    @TempDir
    Path followerDir;

    private final AtomicLong epoch = new AtomicLong(3);

    private LogOptions options(Path dir) {
        return Records.options(dir).withSegmentSize(SEGMENT).withFsync(FsyncPolicy.NEVER).withEpoch(epoch::get);
    }

    private static void write(SegmentedLog log, String pid, long from, long to) {
        for (long s = from; s <= to; s++) {
            Await.done(log.append(List.of(log.encode(List.of(event(pid, s, "tag-" + (s % 3)))))));
        }
    }

    private List<Long> seqs(SegmentedLog log, String pid) {
        List<Long> out = new ArrayList<>();
        log.replay(pid, 1, Long.MAX_VALUE, Long.MAX_VALUE, r -> out.add(r.sequenceNr()));
        return out;
    }

    @Test
    void aCopyHasTheSameRecordsAndAWorkingIndexAndReopensTheSame() throws Exception {
        List<String> expected;
        try (SegmentedLog leader = SegmentedLog.open(options(leaderDir));
                SegmentedLog follower = SegmentedLog.open(options(followerDir).withSegmentSize(16 * 1024))) {
            write(leader, "a", 1, 200);
            epoch.set(4);
            // An atomic write of three events, and a tombstone.
            Await.done(leader.append(List.of(leader.encode(List.of(event("b", 1), event("b", 2), event("b", 3))))));
            Await.done(leader.delete("a", 40));
            write(leader, "a", 201, 250);
            assertTrue(leader.diskUsage().segments() > 2);

            LogCopies.copy(leader, follower, 1000);
            expected = LogCopies.records(leader);
            assertEquals(expected, LogCopies.records(follower));
            assertEquals(leader.nextPosition(), follower.nextPosition());
            assertEquals(seqs(leader, "a"), seqs(follower, "a"));
            assertEquals(List.of(1L, 2L, 3L), seqs(follower, "b"));
            assertEquals(250, follower.highestSequenceNr("a"));
            assertEquals(40, follower.deletedTo("a"));
            assertEquals(leader.eventsByTag("tag-1", -1, 1000).records().size(),
                    follower.eventsByTag("tag-1", -1, 1000).records().size());
            assertEquals(4, follower.lastEpoch());
            assertEquals(3, follower.epochAt(0));
        }
        try (SegmentedLog follower = SegmentedLog.open(options(followerDir))) {
            assertEquals(expected, LogCopies.records(follower));
            write(follower, "c", 1, 1);
        }
    }

    @Test
    void aChunkThatDoesNotContinueTheLogIsRefusedAndLeavesNoHole() throws Exception {
        try (SegmentedLog leader = SegmentedLog.open(options(leaderDir));
                SegmentedLog follower = SegmentedLog.open(options(followerDir))) {
            write(leader, "a", 1, 20);
            SegmentedLog.Chunk c = leader.readChunk(5, 300);
            assertFalse(c.isEmpty());
            CompletableFuture<Long> wrong = follower.appendReplicated(5, c.bytes());
            assertThrows(IllegalArgumentException.class, () -> Await.done(wrong));
            assertThrows(IllegalArgumentException.class,
                    () -> Await.done(follower.appendReplicated(0, new byte[] {1, 2, 3})));
            assertEquals(0, follower.nextPosition());
            LogCopies.copy(leader, follower, 300);
            assertEquals(LogCopies.records(leader), LogCopies.records(follower));
        }
    }

    @Test
    void chunksEndWithACompleteAtomicWriteAndTakeALargeOneWhole() throws Exception {
        try (SegmentedLog leader = SegmentedLog.open(options(leaderDir))) {
            List<LogRecord> big = new ArrayList<>();
            for (long s = 1; s <= 20; s++) {
                big.add(event("a", s));
            }
            Await.done(leader.append(List.of(leader.encode(big))));
            write(leader, "b", 1, 3);
            SegmentedLog.Chunk first = leader.readChunk(0, 10);
            assertEquals(20, first.next());
            SegmentedLog.Chunk second = leader.readChunk(first.next(), 1 << 20);
            assertEquals(23, second.next());
            assertTrue(leader.readChunk(23, 100).isEmpty());
            assertEquals(23, leader.readChunk(23, 100).next());
        }
    }

    @Test
    void gapsLeftByCompactionAreCopied() throws Exception {
        List<String> expected;
        try (SegmentedLog leader = SegmentedLog.open(options(leaderDir));
                SegmentedLog follower = SegmentedLog.open(options(followerDir))) {
            write(leader, "a", 1, 200);
            write(leader, "b", 1, 100);
            Await.done(leader.delete("a", 150));
            write(leader, "c", 1, 5);
            leader.compactNow();
            expected = LogCopies.records(leader);
            assertTrue(Long.parseLong(expected.get(0).split(" ")[0]) > 0, "the oldest segments are gone");
            LogCopies.copy(leader, follower, 2000);
            assertEquals(expected, LogCopies.records(follower));
            assertEquals(seqs(leader, "a"), seqs(follower, "a"));
        }
        try (SegmentedLog follower = SegmentedLog.open(options(followerDir))) {
            assertEquals(expected, LogCopies.records(follower));
        }
    }

    @Test
    void theCommitGateHoldsAcknowledgementsUntilItsStageCompletes() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(options(leaderDir))) {
            List<long[]> batches = new ArrayList<>();
            CompletableFuture<Void> release = new CompletableFuture<>();
            log.setCommitGate((first, next) -> {
                synchronized (batches) {
                    batches.add(new long[] {first, next});
                }
                return release;
            });
            CompletableFuture<SegmentedLog.Appended> held = log.append(List.of(log.encode(List.of(event("a", 1)))));
            // Durable and readable here, not acknowledged yet.
            while (log.nextPosition() < 1) {
                Thread.onSpinWait();
            }
            assertFalse(held.isDone());
            release.complete(null);
            assertEquals(0, Await.done(held).firstPosition());
            synchronized (batches) {
                assertEquals(List.of(0L, 1L), List.of(batches.get(0)[0], batches.get(0)[1]));
            }
            log.setCommitGate(null);
            Await.done(log.append(List.of(log.encode(List.of(event("a", 2))))));
        }
    }

    @Test
    void epochQueriesFollowTheRunsOfEpochs() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(options(leaderDir))) {
            assertEquals(-1, log.lastEpoch());
            epoch.set(2);
            write(log, "a", 1, 5);     // 0..4 in epoch 2
            epoch.set(5);
            write(log, "a", 6, 8);     // 5..7 in epoch 5
            assertEquals(5, log.lastEpoch());
            assertEquals(2, log.epochAt(4));
            assertEquals(5, log.epochAt(5));
            assertEquals(-1, log.epochAt(8));
            assertEquals(2, log.newestEpochUpTo(4));
            assertEquals(-1, log.newestEpochUpTo(1));
            assertEquals(5, log.firstPositionAbove(2));
            assertEquals(8, log.firstPositionAbove(5));
            assertEquals(0, log.firstPositionAbove(1));
            assertEquals(5, log.startOfLastEpoch());
        }
    }
}
