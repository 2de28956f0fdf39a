package io.opentmr.launcher;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.ProcessBuilder.Redirect;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The child processes of {@code tmr demo}: each a {@code tmr} command of this same launcher in its own JVM
 * (the same java binary), its output appended to its log file. A child that dies unasked is reported
 * with its exit code and log; {@link #stopAll} sends SIGTERM, waits bounded, then kills.
 *
 * <p>A child that exits with {@link Output#RESTART} (a twin node whose in-process restart as the standby could not
 * go on) is started again at once with the same command and log, as systemd's {@code Restart=} starts it in
 * production: without it the twin ran on one node, and the next fail-over had no standby. Only these: a child killed
 * (kill -9 of {@code tmr bench --failover}, which restarts it itself) or failing otherwise stays down, reported.
 */
final class DemoProcesses {

    /** A started child. */
    /** @param admin the URL of its management HTTP, or null */
    record Child(String name, String role, String address, String admin, Process process, Path log,
                 List<String> command) {

        DemoFiles.Component component() {
            return new DemoFiles.Component(name, role, address, admin, process.pid(), log, command);
        }
    }

    private final PrintStream err;
    private final List<String> jvmOptions;
    private final List<Child> children = new ArrayList<>();
    private final CompletableFuture<Void> allExited = new CompletableFuture<>();
    /**
     * The children whose exit was not handled yet ({@link #exited}): a child already dead whose handling waits for the
     * lock may still be started again, so "none alive" is not "all exited".
     */
    private final List<Child> unhandled = new ArrayList<>();
    private final String mainClass;
    private volatile boolean stopping;
    /** Told of each child started again (the demo writes its manifest anew: the pid changed). */
    private volatile Runnable onRestart = () -> { };

    DemoProcesses(PrintStream err, List<String> jvmOptions) {
        this(err, jvmOptions, Tmr.class.getName());
    }

    /** @param mainClass what a child runs when this launcher is not a jar (tests) */
    DemoProcesses(PrintStream err, List<String> jvmOptions, String mainClass) {
        this.err = err;
        this.jvmOptions = List.copyOf(jvmOptions);
        this.mainClass = mainClass;
    }

    void onRestart(Runnable listener) {
        onRestart = listener;
    }

    /** {@code java [options] -jar opentmr.jar ARGS}, or the class path when not run from the jar (tests). */
    List<String> command(List<String> args) {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(jvmOptions);
        Path jar = launcherJar();
        if (jar != null) {
            command.add("-jar");
            command.add(jar.toString());
        } else {
            command.add("-cp");
            command.add(System.getProperty("java.class.path"));
            command.add(mainClass);
        }
        command.addAll(args);
        return command;
    }

    private static Path launcherJar() {
        try {
            var source = Tmr.class.getProtectionDomain().getCodeSource();
            if (source == null) {
                return null;
            }
            Path path = Path.of(source.getLocation().toURI());
            return Files.isRegularFile(path) && path.toString().endsWith(".jar") ? path : null;
        } catch (URISyntaxException | IllegalArgumentException e) {
            return null;
        }
    }

    synchronized Child start(String name, String role, String address, Path log, List<String> args)
            throws IOException {
        return start(name, role, address, null, log, args);
    }

    synchronized Child start(String name, String role, String address, String admin, Path log, List<String> args)
            throws IOException {
        if (stopping) {
            throw new IllegalStateException("the demo is stopping");
        }
        Child child = spawn(name, role, address, admin, log, command(args));
        children.add(child);
        watch(child);
        return child;
    }

    private Child spawn(String name, String role, String address, String admin, Path log, List<String> command)
            throws IOException {
        Files.createDirectories(log.toAbsolutePath().getParent());
        Files.writeString(log, "==== " + Instant.now() + " tmr demo starts: " + String.join(" ", command) + "\n",
                StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        Process process = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(Redirect.appendTo(log.toFile())).redirectInput(Redirect.from(nullDevice())).start();
        return new Child(name, role, address, admin, process, log, List.copyOf(command));
    }

    /** Handles the child's exit once it comes; registered after the child is in {@link #children}. */
    private void watch(Child child) {
        unhandled.add(child);
        child.process().onExit().thenAccept(p -> exited(child));
    }

    /** A child exited: started again when it asks for it ({@link Output#RESTART}), else reported. */
    private void exited(Child child) {
        Process p = child.process();
        boolean restarted = false;
        synchronized (this) {
            int index = children.indexOf(child);
            if (!stopping && index >= 0 && p.exitValue() == Output.RESTART) {
                try {
                    Child again = spawn(child.name(), child.role(), child.address(), child.admin(), child.log(),
                            child.command());
                    children.set(index, again);
                    watch(again);
                    restarted = true;
                    err.printf("tmr demo: %s (pid %d) exited with code %d to be restarted; started it again (pid %d), "
                            + "as its supervisor would; log: %s%n", child.name(), p.pid(), p.exitValue(),
                            again.process().pid(), child.log());
                } catch (IOException | RuntimeException e) {
                    err.printf("tmr demo: %s (pid %d) exited with code %d to be restarted, but could not be started "
                            + "again: %s%n", child.name(), p.pid(), p.exitValue(), e);
                }
            } else if (!stopping) {
                err.printf("tmr demo: %s (pid %d) exited with code %d; log: %s%n", child.name(), p.pid(),
                        p.exitValue(), child.log());
            }
            unhandled.remove(child);
            if (unhandled.isEmpty()) {
                allExited.complete(null);
            }
        }
        if (restarted) {
            onRestart.run();
        }
    }

    private static java.io.File nullDevice() {
        return new java.io.File(System.getProperty("os.name").startsWith("Windows") ? "NUL" : "/dev/null");
    }

    synchronized List<Child> children() {
        return List.copyOf(children);
    }

    /**
     * Waits, bounded, until {@code child} accepts TCP connections on {@code address}.
     *
     * @throws IllegalStateException naming the child's log when it dies or does not listen in time
     */
    static void awaitListening(Child child, InetSocketAddress address, Duration max) throws InterruptedException {
        long deadline = System.nanoTime() + max.toNanos();
        while (true) {
            if (!child.process().isAlive()) {
                throw new IllegalStateException(child.name() + " exited with code " + child.process().exitValue()
                        + " before it listened on " + child.address() + "; see " + child.log());
            }
            try (Socket socket = new Socket()) {
                socket.connect(address, 500);
                return;
            } catch (IOException notYet) {
                if (System.nanoTime() - deadline > 0) {
                    throw new IllegalStateException(child.name() + " does not listen on " + child.address()
                            + " after " + max.toSeconds() + " s; see " + child.log(), notYet);
                }
            }
            Thread.sleep(200);
        }
    }

    /** Completes when every child has exited and none was started again. */
    CompletableFuture<Void> allExited() {
        return allExited;
    }

    boolean stopping() {
        return stopping;
    }

    /** SIGTERM to every child (the node first), a bounded wait, then SIGKILL to any still running. */
    void stopAll(Duration grace) {
        stopping = true;
        List<Child> running = new ArrayList<>(children());
        java.util.Collections.reverse(running);
        running.forEach(c -> c.process().destroy());
        long deadline = System.nanoTime() + grace.toNanos();
        for (Child child : running) {
            try {
                long left = Math.max(0, deadline - System.nanoTime());
                if (!child.process().waitFor(left, TimeUnit.NANOSECONDS)) {
                    err.printf("tmr demo: %s (pid %d) did not stop within %d s; killing it%n", child.name(),
                            child.process().pid(), grace.toSeconds());
                    child.process().destroyForcibly();
                    child.process().waitFor(5, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                child.process().destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }
}
