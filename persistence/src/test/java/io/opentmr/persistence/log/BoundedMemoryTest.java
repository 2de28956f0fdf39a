package io.opentmr.persistence.log;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.opentmr.persistence.Await;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Opening and replay stream the log: a process whose heap is far smaller than one segment opens the journal and
 * replays all of it. The segment here is 192 MiB, the child's heap 48 MiB.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class BoundedMemoryTest {

    private static final int RECORDS = 768;
    private static final int PAYLOAD = 256 * 1024;

    @TempDir
    Path dir;

    @Test
    void aSegmentMuchLargerThanTheHeapOpensAndReplays() throws Exception {
        LogOptions options = LogOptions.defaults(dir).withSegmentSize(256L << 20).withFsync(FsyncPolicy.NEVER);
        byte[] payload = new byte[PAYLOAD];
        Arrays.fill(payload, (byte) 'x');
        try (SegmentedLog log = SegmentedLog.open(options)) {
            for (int from = 1; from <= RECORDS; from += 16) {
                List<SegmentedLog.Group> groups = new ArrayList<>();
                for (int seq = from; seq < from + 16; seq++) {
                    String pid = "p" + (seq % 4);
                    groups.add(log.encode(List.of(LogRecord.event(pid, seq, 0, "w", 4, "", "", List.of(),
                            payload))));
                }
                Await.done(log.append(groups));
            }
        }
        assertEquals(1, LogScanner.segmentFiles(dir).size(), "one segment, larger than the child's heap");
        try (ChildProcess child = new ChildProcess("replay", dir, "48m")) {
            String line = child.nextLine(60);
            while (line != null && !line.startsWith("REPLAYED") && !line.startsWith("FAILED")) {
                line = child.nextLine(60);   // the child's log lines
            }
            assertEquals("REPLAYED " + RECORDS + " " + (long) RECORDS * PAYLOAD, line);
        }
    }
}
