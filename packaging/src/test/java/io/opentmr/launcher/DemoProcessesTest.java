package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The demo's supervision of its children: only a child that exits to be restarted is started again. */
@Timeout(90)
class DemoProcessesTest {

    @TempDir
    Path dir;

    @Test
    void aChildThatExitsToBeRestartedIsStartedAgainAndAChildThatFailsIsNot() throws Exception {
        ByteArrayOutputStream errBytes = new ByteArrayOutputStream();
        PrintStream err = new PrintStream(errBytes, true, StandardCharsets.UTF_8);
        DemoProcesses processes = new DemoProcesses(err, List.of("-Xmx32m"), ExitingChild.class.getName());
        AtomicInteger restarts = new AtomicInteger();
        processes.onRestart(restarts::incrementAndGet);
        Path nodeLog = dir.resolve("node-a.log");
        DemoProcesses.Child first;
        DemoProcesses.Child failing;
        try {
            first = processes.start("node-a", "active", "127.0.2.1:1", null, nodeLog,
                    List.of(Integer.toString(Output.RESTART), dir.resolve("node-a.marker").toString()));
            failing = processes.start("backend-1", "backend", "127.0.1.1:1", null, dir.resolve("backend-1.log"),
                    List.of("3", dir.resolve("backend-1.marker").toString()));
            assertEquals(Output.RESTART, first.process().onExit().get(30, TimeUnit.SECONDS).exitValue());
            assertEquals(3, failing.process().onExit().get(30, TimeUnit.SECONDS).exitValue());
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (!Files.readString(nodeLog).contains("running again") && System.nanoTime() < deadline) {
                Thread.sleep(100);
            }
            DemoProcesses.Child again = processes.children().get(0);
            assertEquals("node-a", again.name());
            assertNotEquals(first.process().pid(), again.process().pid(), "started again: a new process");
            assertTrue(again.process().isAlive(), "the node runs again");
            assertTrue(Files.readString(nodeLog).contains("running again"), Files.readString(nodeLog));
            assertEquals(2, Files.readString(nodeLog).split("tmr demo starts", -1).length - 1,
                    "both starts are in the child's log");
            assertEquals(1, restarts.get(), "the demo was told, once");
            assertEquals(failing, processes.children().get(1), "a child that failed stays down");
            assertFalse(processes.allExited().isDone(), "a child still runs");
            String said = errBytes.toString(StandardCharsets.UTF_8);
            assertTrue(said.contains("node-a (pid " + first.process().pid() + ") exited with code " + Output.RESTART
                    + " to be restarted; started it again"), said);
            assertTrue(said.contains("backend-1 (pid " + failing.process().pid() + ") exited with code 3; log"), said);
        } finally {
            processes.stopAll(Duration.ofSeconds(10));
        }
        processes.allExited().get(30, TimeUnit.SECONDS);
        assertEquals(1, restarts.get(), "a child stopped with the demo is not started again");
        assertFalse(processes.children().get(0).process().isAlive());
    }
}
