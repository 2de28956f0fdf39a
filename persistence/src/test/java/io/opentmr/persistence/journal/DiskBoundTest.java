package io.opentmr.persistence.journal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import io.opentmr.persistence.Filler;
import io.opentmr.persistence.OpenTmrPersistence;
import io.opentmr.persistence.TestConfig;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.LogScanner;
import io.opentmr.persistence.log.RecordCodec;
import io.opentmr.persistence.log.RecordType;
import io.opentmr.persistence.log.SegmentedLog;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Records deleted by snapshots stop costing disk: 200 000 events through the plugin, 19 actors taking a snapshot
 * every 1 000 events that deletes the events before the previous one, and one actor that keeps all of its events,
 * written in between the others' so that every segment holds some of them (no segment ever has all its records
 * deleted). The journal ends up within its documented bound, twice the bytes of its live records plus one segment
 * (keep-segments = 1). fsync = never: this test is about size.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DiskBoundTest {

    private static final int ACTORS = 20;
    private static final int EVENTS_PER_ACTOR = 10_000;
    private static final long SEGMENT_SIZE = 1 << 20;

    @TempDir
    Path dir;

    @Test
    void twoHundredThousandEventsWithSnapshotDeletesStayWithinTwiceTheLiveDataPlusOneSegment() throws Exception {
        ActorTestKit kit = ActorTestKit.create("disk-bound", ConfigFactory.parseString("""
                opentmr.persistence.segment-size = 1 MiB
                opentmr.persistence.fsync = never
                """).withFallback(TestConfig.forDir(dir)));
        try {
            TestProbe<Long> done = kit.createTestProbe();
            TestProbe<Long> keeperDone = kit.createTestProbe();
            kit.spawn(Filler.create("keeper", EVENTS_PER_ACTOR, 1, 0, keeperDone.getRef()));
            for (int i = 1; i < ACTORS; i++) {
                kit.spawn(Filler.create("filler-" + i, EVENTS_PER_ACTOR, 20, 1_000, done.getRef()));
            }
            // Each filler reports once its last snapshot's deletion is journaled.
            for (int i = 1; i < ACTORS; i++) {
                assertEquals(EVENTS_PER_ACTOR - 1_000, done.receiveMessage(Duration.ofSeconds(90)));
            }
            assertEquals(EVENTS_PER_ACTOR, keeperDone.receiveMessage(Duration.ofSeconds(90)));
            SegmentedLog log = OpenTmrPersistence.get(kit.system()).log();
            log.compactNow();

            long live = liveBytes(log);
            long onDisk = segmentBytes();
            long written = (long) ACTORS * EVENTS_PER_ACTOR;
            System.out.printf("disk bound: %d events written, %d segment bytes on disk, %d live bytes, bound %d,"
                    + " %d compactions%n", written, onDisk, live, 2 * live + SEGMENT_SIZE,
                    log.diskUsage().compactions());
            assertTrue(onDisk <= 2 * live + SEGMENT_SIZE, "on disk " + onDisk + " > 2 x live " + live
                    + " + one segment " + SEGMENT_SIZE);
            assertTrue(log.diskUsage().compactions() > 0, "compaction ran");
        } finally {
            kit.shutdownTestKit();
        }
    }

    /** Bytes of the live records, counted apart from the log's own accounting: replay, re-encode, sum. */
    private static long liveBytes(SegmentedLog log) {
        long[] bytes = new long[1];
        for (String pid : log.persistenceIds(0, Integer.MAX_VALUE)) {
            log.replay(pid, 1, Long.MAX_VALUE, Long.MAX_VALUE,
                    r -> bytes[0] += RecordCodec.encode(r, RecordCodec.MAX_RECORD_BYTES).length);
            if (log.deletedTo(pid) > 0) {
                bytes[0] += RecordCodec.encode(new LogRecord(RecordType.TOMBSTONE, true, 0, 0, pid,
                        log.deletedTo(pid), 0, "", 0, "", "", List.of(), new byte[0]), RecordCodec.MAX_RECORD_BYTES)
                        .length;
            }
        }
        return bytes[0];
    }

    private long segmentBytes() throws Exception {
        long total = 0;
        for (Path segment : LogScanner.segmentFiles(dir)) {
            total += Files.size(segment);
        }
        return total;
    }
}
