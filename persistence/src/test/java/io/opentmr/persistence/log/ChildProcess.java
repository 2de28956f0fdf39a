package io.opentmr.persistence.log;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/** A child JVM running {@link ChildProcessMain} on the test class path, its stdout lines queued for the test. */
final class ChildProcess implements AutoCloseable {

    private static final String EOF = "\u0000EOF";

    private final Process process;
    private final BlockingQueue<String> lines = new LinkedBlockingQueue<>(1_000_000);
    private final Thread reader;

    ChildProcess(String mode, Path dir) throws IOException {
        this(mode, dir, "256m");
    }

    /** A child with a heap of at most {@code maxHeap} (a -Xmx value). */
    ChildProcess(String mode, Path dir, String maxHeap) throws IOException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        process = new ProcessBuilder(List.of(java, "-Xmx" + maxHeap, "-cp", System.getProperty("java.class.path"),
                ChildProcessMain.class.getName(), mode, dir.toString()))
                .redirectError(ProcessBuilder.Redirect.DISCARD)
                .start();
        reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(
                    new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    lines.put(line);
                }
            } catch (IOException | InterruptedException e) {
                // The child died or the test ended; what was read is in the queue.
            } finally {
                lines.offer(EOF);
            }
        }, "child-stdout");
        reader.setDaemon(true);
        reader.start();
    }

    /** The next stdout line, or null on end of output or after {@code seconds}. */
    String nextLine(long seconds) throws InterruptedException {
        String line = lines.poll(seconds, TimeUnit.SECONDS);
        return line == null || line.equals(EOF) ? null : line;
    }

    /** Kills the child with SIGKILL (what destroyForcibly does on Linux) and waits for it to die. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        if (!process.waitFor(20, TimeUnit.SECONDS)) {
            throw new IllegalStateException("child " + process.pid() + " survived SIGKILL");
        }
    }

    long pid() {
        return process.pid();
    }

    @Override
    public void close() {
        try {
            if (process.isAlive()) {
                kill();
            }
            reader.join(TimeUnit.SECONDS.toMillis(10));
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }
}
