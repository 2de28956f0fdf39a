package io.opentmr.it;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** A {@code tmr} command run from the built fat jar as its own process, its output kept in a file. */
final class TmrProcess implements AutoCloseable {

    private final Process process;
    private final Path log;
    private final CompletableFuture<String> ready = new CompletableFuture<>();

    private TmrProcess(Process process, Path log, String readyMarker) {
        this.process = process;
        this.log = log;
        Thread reader = new Thread(() -> {
            try (BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(),
                    StandardCharsets.UTF_8))) {
                for (String line; (line = out.readLine()) != null; ) {
                    Files.writeString(log, line + "\n", StandardCharsets.UTF_8,
                            java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
                    if (line.contains(readyMarker)) {
                        ready.complete(line);
                    }
                }
            } catch (IOException e) {
                ready.completeExceptionally(e);
            }
            ready.completeExceptionally(new IOException("process ended before '" + readyMarker + "'"));
        }, "tmr-process-output");
        reader.setDaemon(true);
        reader.start();
    }

    static Path jar() {
        Path jar = Path.of(System.getProperty("opentmr.jar", "../packaging/target/opentmr.jar"));
        if (!Files.isRegularFile(jar)) {
            throw new IllegalStateException(jar + " is missing: build the packaging module first");
        }
        return jar;
    }

    /** Starts {@code tmr ARGS}; stdout and stderr go to {@code log}. */
    static TmrProcess start(Path log, String readyMarker, String... args) throws IOException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "-Xmx256m", "-jar", jar().toString()));
        command.addAll(List.of(args));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        return new TmrProcess(process, log, readyMarker);
    }

    /** Waits, bounded, for the ready line; fails with the process's output if it does not come. */
    String awaitReady(Duration max) throws Exception {
        try {
            return ready.get(max.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException | java.util.concurrent.ExecutionException e) {
            throw new AssertionError("tmr did not get ready within " + max + ":\n" + output(), e);
        }
    }

    String output() throws IOException {
        return Files.exists(log) ? Files.readString(log) : "(no output)";
    }

    /** SIGKILL: no shutdown hook runs, sockets are closed by the kernel. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            throw new AssertionError("process survived SIGKILL for 10 s");
        }
    }

    long pid() {
        return process.pid();
    }

    /** The exit code of a command that ends by itself; fails if it runs longer than {@code max}. */
    int awaitExit(Duration max) throws InterruptedException {
        if (!process.waitFor(max.toMillis(), TimeUnit.MILLISECONDS)) {
            throw new AssertionError("process still running after " + max);
        }
        return process.exitValue();
    }

    /** SIGTERM and a bounded wait for the exit code; fails if the process outlives {@code max}. */
    int terminate(Duration max) throws InterruptedException {
        process.destroy();
        if (!process.waitFor(max.toMillis(), TimeUnit.MILLISECONDS)) {
            throw new AssertionError("process survived SIGTERM for " + max);
        }
        return process.exitValue();
    }

    /** SIGTERM, then SIGKILL if it has not stopped within 15 s. */
    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(15, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }
}
