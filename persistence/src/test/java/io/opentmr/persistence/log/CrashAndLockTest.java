package io.opentmr.persistence.log;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Child JVMs killed with SIGKILL: acknowledged events survive, the tail is repaired, the lock is freed. */
class CrashAndLockTest {

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void everyEventAcknowledgedBeforeSigkillIsThereAfterReopen() throws Exception {
        Map<String, Set<Long>> acked = ackedUntilKilled("write", 5000);
        // Make the tail torn for certain (SIGKILL alone rarely tears a write): half a record after the last one.
        Path last = LogScanner.segmentFiles(dir).get(LogScanner.segmentFiles(dir).size() - 1);
        byte[] partial = RecordCodec.encode(Records.event("w0", 999_999_999L), 1 << 20);
        try (FileChannel ch = FileChannel.open(last, StandardOpenOption.WRITE, StandardOpenOption.APPEND)) {
            ch.write(ByteBuffer.wrap(partial, 0, partial.length / 2));
        }
        assertTrue(LogScanner.scan(dir, 64 << 20, false, (f, o, l, r) -> { }).damages().stream()
                .allMatch(LogScanner.Damage::tail));
        long total = acked.values().stream().mapToLong(Set::size).sum();
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir))) {
            assertAllReplayed(log, acked);
            assertTrue(log.nextPosition() >= total);
        }
        assertTrue(LogScanner.scan(dir, 64 << 20, false, (f, o, l, r) -> { }).damages().isEmpty(),
                "the torn tail is truncated on open");
    }

    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void everyEventAcknowledgedToAPersistentActorSurvivesSigkill() throws Exception {
        Map<String, Set<Long>> acked = ackedUntilKilled("actors", 3000);
        assertEquals(8, acked.size());
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir))) {
            assertAllReplayed(log, acked);
        }
    }

    /** Runs the child in {@code mode} until it acknowledged {@code count} events, kills it, drains the pipe. */
    private Map<String, Set<Long>> ackedUntilKilled(String mode, int count) throws Exception {
        Map<String, Set<Long>> acked = new HashMap<>();
        try (ChildProcess child = new ChildProcess(mode, dir)) {
            int seen = 0;
            while (seen < count) {
                String line = child.nextLine(30);
                assertNotNull(line, "child stopped acknowledging after " + seen + " events");
                if (ack(line, acked)) {
                    seen++;
                }
            }
            child.kill();
            // Acknowledgements printed before the kill may still sit in the pipe.
            for (String line; (line = child.nextLine(10)) != null; ) {
                ack(line, acked);
            }
        }
        return acked;
    }

    private static void assertAllReplayed(SegmentedLog log, Map<String, Set<Long>> acked) {
        for (Map.Entry<String, Set<Long>> e : acked.entrySet()) {
            Set<Long> replayed = new HashSet<>();
            log.replay(e.getKey(), 1, Long.MAX_VALUE, Long.MAX_VALUE, r -> replayed.add(r.sequenceNr()));
            assertTrue(replayed.containsAll(e.getValue()), "lost acknowledged events of " + e.getKey());
        }
    }

    private static boolean ack(String line, Map<String, Set<Long>> acked) {
        if (!line.startsWith("ACK ")) {
            return false;
        }
        String[] parts = line.split(" ");
        acked.computeIfAbsent(parts[1], k -> new HashSet<>()).add(Long.parseLong(parts[2]));
        return true;
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aSecondProcessIsRefusedAndARestartAfterKillOpensAtOnce() throws Exception {
        try (ChildProcess child = new ChildProcess("hold", dir)) {
            String line;
            do {
                line = child.nextLine(30);
                assertNotNull(line, "child did not open the journal");
            } while (!line.equals("READY"));
            JournalLockedException e = assertThrows(JournalLockedException.class,
                    () -> SegmentedLog.open(LogOptions.defaults(dir)));
            assertTrue(e.getMessage().contains("locked by another process"), e.getMessage());
            assertTrue(e.getMessage().contains("pid " + child.pid()), e.getMessage());
            child.kill();
        }
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir))) {
            assertEquals(0, log.nextPosition());
        }
    }

    @Test
    @Timeout(value = 10, unit = TimeUnit.SECONDS)
    void aSecondOpenInTheSameProcessIsRefusedClearly() throws IOException {
        List<String> messages = new ArrayList<>();
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir))) {
            JournalLockedException e = assertThrows(JournalLockedException.class,
                    () -> SegmentedLog.open(LogOptions.defaults(dir)));
            messages.add(e.getMessage());
            assertEquals(0, log.nextPosition());
        }
        assertTrue(messages.get(0).contains("already open in this process"), messages.get(0));
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir))) {
            assertEquals(0, log.nextPosition());
        }
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aRefusedSecondOpenInTheSameProcessKeepsTheOwnersLock() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir))) {
            for (int i = 0; i < 3; i++) {
                assertThrows(JournalLockedException.class, () -> SegmentedLog.open(LogOptions.defaults(dir)));
            }
            // The same directory by another name is the same directory.
            assertThrows(JournalLockedException.class,
                    () -> SegmentedLog.open(LogOptions.defaults(dir.resolve("."))));
            try (ChildProcess child = new ChildProcess("try", dir)) {
                String line;
                do {
                    line = child.nextLine(30);
                    assertNotNull(line, "child printed neither OPENED nor LOCKED");
                } while (!line.startsWith("OPENED") && !line.startsWith("LOCKED"));
                assertTrue(line.startsWith("LOCKED") && line.contains("locked by another process"),
                        "another process must still be refused after a refused open here: " + line);
            }
            log.append(List.of(log.encode(List.of(Records.event("a", 1))))).get(10, TimeUnit.SECONDS);
        }
    }
}
