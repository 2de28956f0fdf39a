package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading CPU time from /proc/PID/stat lines, and what the bench prints of it. */
class ProcessCpuTest {

    /** A real line of a JVM (fields 14/15 utime 1234, stime 56; field 22 starttime 987654). */
    private static final String JAVA = "4711 (java) S 1 4711 4711 0 -1 4194560 51234 0 12 0 1234 56 0 0 20 0 42 0 "
            + "987654 8976052224 24737 18446744073709551615 1 1 0 0 0 0 0 4096 16796879 0 0 0 17 1 0 0 0 0 0";

    @TempDir
    Path dir;

    @Test
    void utimePlusStimeAndStartTime() {
        ProcessCpu.Stat stat = ProcessCpu.parseStat(JAVA);
        assertEquals(1234 + 56, stat.cpuTicks());
        assertEquals(987654, stat.startTicks());
    }

    @Test
    void aCommandNameWithSpacesAndParenthesesDoesNotShiftTheFields() {
        String odd = JAVA.replace("(java)", "(a) b (c) d)");
        assertEquals(1290, ProcessCpu.parseStat(odd).cpuTicks());
        assertEquals(987654, ProcessCpu.parseStat(odd).startTicks());
    }

    @Test
    void malformedLinesAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> ProcessCpu.parseStat(""));
        assertThrows(IllegalArgumentException.class, () -> ProcessCpu.parseStat("4711 (java) S 1 2 3"));
        assertThrows(IllegalArgumentException.class, () -> ProcessCpu.parseStat(JAVA.replace(" 1234 ", " x ")));
    }

    @Test
    void clockTicksFromGetconfOrTheLinuxDefault() {
        assertEquals(100, ProcessCpu.parseClockTicks("100\n"));
        assertEquals(250, ProcessCpu.parseClockTicks(" 250 "));
        assertEquals(ProcessCpu.DEFAULT_CLOCK_TICKS, ProcessCpu.parseClockTicks("undefined"));
        assertEquals(ProcessCpu.DEFAULT_CLOCK_TICKS, ProcessCpu.parseClockTicks("0"));
        assertEquals(ProcessCpu.DEFAULT_CLOCK_TICKS, ProcessCpu.parseClockTicks(""));
    }

    @Test
    void millisecondsPerPairOverAPhaseAndNotAvailableForAGoneOrRestartedProcess() throws Exception {
        write(1, 100, 7);
        write(2, 500, 7);
        write(3, 40, 7);
        ProcessCpu cpu = new ProcessCpu(dir, 100);
        Map<String, Long> pids = new LinkedHashMap<>();
        pids.put("backend-1", 1L);
        pids.put("node-a", 2L);
        pids.put("restarted", 3L);
        pids.put("gone", 4L);
        Map<String, Optional<ProcessCpu.Stat>> before = cpu.sample(pids);
        write(1, 150, 7);
        write(2, 700, 7);
        write(3, 90, 8);
        ProcessCpu.Usage usage = cpu.between(before, cpu.sample(pids));

        assertEquals(Optional.of(500.0), usage.millis().get("backend-1"));
        assertEquals(Optional.of(2000.0), usage.millis().get("node-a"));
        assertEquals(Optional.empty(), usage.millis().get("restarted"));
        assertEquals(Optional.empty(), usage.millis().get("gone"));
        Map<String, Object> perPair = usage.perPair(1000);
        assertEquals(0.5, perPair.get("backend-1"));
        assertEquals(2.0, perPair.get("node-a"));
        assertEquals("n/a", perPair.get("restarted"));
        assertEquals("n/a", perPair.get("gone"));
        assertEquals(500.0, usage.total().get("backend-1"));
        assertEquals(Optional.empty(), usage.allPerPair(1000), "no total while one process is unknown");
        assertEquals("backend-1 0.50 ms, node-a 2.00 ms, restarted n/a, gone n/a", usage.text(1000));
        assertEquals("n/a (no pairs measured)", usage.text(0));
    }

    @Test
    void theSumOverAllProcessesWhenEachIsKnown() throws Exception {
        write(1, 0, 1);
        write(2, 0, 1);
        ProcessCpu cpu = new ProcessCpu(dir, 100);
        Map<String, Long> pids = Map.of("a", 1L, "b", 2L);
        Map<String, Optional<ProcessCpu.Stat>> before = cpu.sample(pids);
        write(1, 10, 1);
        write(2, 30, 1);
        ProcessCpu.Usage usage = cpu.between(before, cpu.sample(pids));
        assertEquals(Optional.of(4.0), usage.allPerPair(100));
        assertTrue(usage.text(100).endsWith("; all 4.00 ms"), usage.text(100));
    }

    @Test
    void thisProcessOnLinux() {
        Optional<ProcessCpu> cpu = ProcessCpu.ofThisMachine();
        if (System.getProperty("os.name").toLowerCase(java.util.Locale.ROOT).startsWith("linux")) {
            assertTrue(cpu.isPresent());
            assertTrue(cpu.get().clockTicksPerSecond() > 0);
            assertTrue(cpu.get().read(ProcessHandle.current().pid()).isPresent());
            assertEquals(Optional.empty(), cpu.get().read(999_999_999L), "beyond any pid_max");
        } else {
            assertEquals(Optional.empty(), cpu);
        }
    }

    /** A stat file for PID with this utime (stime 0) and starttime. */
    private void write(long pid, long utime, long start) throws Exception {
        Path file = dir.resolve(Long.toString(pid)).resolve("stat");
        Files.createDirectories(file.getParent());
        Files.writeString(file, JAVA.replace(" 1234 56 ", " " + utime + " 0 ").replace(" 987654 ", " " + start + " ")
                + "\n");
    }
}
