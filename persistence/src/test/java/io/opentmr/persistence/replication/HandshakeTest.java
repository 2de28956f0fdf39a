package io.opentmr.persistence.replication;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.opentmr.persistence.Await;
import io.opentmr.persistence.log.FsyncPolicy;
import io.opentmr.persistence.log.LogOptions;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.SegmentedLog;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The handshake's decisions over two real logs: match, divergence, and where the follower cuts. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class HandshakeTest {

    @TempDir
    Path leaderDir;
    @TempDir
    Path followerDir;

    private final AtomicLong leaderEpoch = new AtomicLong();
    private final AtomicLong followerEpoch = new AtomicLong();

    private static SegmentedLog open(Path dir, AtomicLong epoch) throws Exception {
        return SegmentedLog.open(LogOptions.defaults(dir).withFsync(FsyncPolicy.NEVER).withEpoch(epoch::get));
    }

    private static void write(SegmentedLog log, int count) {
        for (int i = 0; i < count; i++) {
            Await.done(log.append(List.of(log.encode(List.of(LogRecord.event("p", log.nextPosition() + 1, 0, "w", 4,
                    "m", "", List.of(), new byte[] {1}))))));
        }
    }

    @Test
    void aPrefixMatchesAndADeadEpochSuffixIsCutWhereTheEpochsPart() throws Exception {
        try (SegmentedLog leader = open(leaderDir, leaderEpoch); SegmentedLog follower = open(followerDir,
                followerEpoch)) {
            // Both wrote 0..9 in epoch 1 (as if replicated); the follower, then leader, went on alone in epoch 1 to
            // 14; the leader wrote 10..19 in epoch 3 (epoch 2 left nothing).
            leaderEpoch.set(1);
            followerEpoch.set(1);
            write(leader, 10);
            write(follower, 15);
            leaderEpoch.set(3);
            write(leader, 10);

            assertEquals(new Handshake.Answer(true, -1, 0), Handshake.answer(leader, 0, -1));
            assertEquals(true, Handshake.answer(leader, 10, 1).match());
            assertEquals(false, Handshake.answer(leader, 10, 3).match(), "position 9 is epoch 1 here");
            assertEquals(false, Handshake.answer(leader, 25, 3).match(), "beyond the leader's end");

            Handshake.Answer a = Handshake.answer(leader, follower.nextPosition(), follower.lastEpoch());
            assertEquals(new Handshake.Answer(false, 1, 10), a);
            long cut = Handshake.truncationPoint(follower, a.epoch(), a.end());
            assertEquals(10, cut);
            assertEquals(10, Await.done(follower.truncateFrom(cut)));
            assertEquals(true, Handshake.answer(leader, follower.nextPosition(), follower.lastEpoch()).match());
        }
    }

    @Test
    void aFollowerWithOnlyANewerUnknownEpochLosesItAllAndEveryRoundShortensTheLog() throws Exception {
        try (SegmentedLog leader = open(leaderDir, leaderEpoch); SegmentedLog follower = open(followerDir,
                followerEpoch)) {
            leaderEpoch.set(2);
            write(leader, 5);
            followerEpoch.set(1);
            write(follower, 3);
            followerEpoch.set(4);
            write(follower, 4);
            // The leader has nothing of epoch <= 1 ... -1 ... epoch 2 is the newest not above 4.
            Handshake.Answer a = Handshake.answer(leader, follower.nextPosition(), follower.lastEpoch());
            assertEquals(new Handshake.Answer(false, 2, 5), a);
            // Nothing of epoch 2 here: cut at the follower's first record above epoch 2, its epoch-4 run.
            assertEquals(3, Handshake.truncationPoint(follower, a.epoch(), a.end()));
            Await.done(follower.truncateFrom(3));
            a = Handshake.answer(leader, follower.nextPosition(), follower.lastEpoch());
            assertEquals(new Handshake.Answer(false, -1, 0), a);
            assertEquals(0, Handshake.truncationPoint(follower, a.epoch(), a.end()));
        }
    }
}
