package io.opentmr.persistence.log;

import io.opentmr.persistence.AckingWriter;
import io.opentmr.persistence.TestConfig;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Runs in a child JVM started by the crash and lock tests, which then kill it with SIGKILL.
 * {@code hold DIR}: open the log, print READY, wait. {@code write DIR}: several threads append events to the log
 * and print {@code ACK pid seq} for each acknowledged one. {@code actors DIR}: the same through persistent actors
 * and the Pekko journal plugin. {@code try DIR}: try to open the log once and print {@code OPENED} or
 * {@code LOCKED message}. {@code replay DIR}: open the log, replay every persistence id and print
 * {@code REPLAYED records bytes}, or {@code FAILED cause} (the memory test runs it under a small heap). Each exits by itself after a minute, so a test that dies cannot leave it running.
 */
public final class ChildProcessMain {

    private ChildProcessMain() {
    }

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        Path dir = Path.of(args[1]);
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(1);
        if (args[0].equals("actors")) {
            runActors(dir, out, deadline);
            return;
        }
        if (args[0].equals("replay")) {
            try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir))) {
                long[] counts = new long[2];
                for (String pid : log.persistenceIds(0, Integer.MAX_VALUE)) {
                    log.replay(pid, 1, Long.MAX_VALUE, Long.MAX_VALUE, r -> {
                        counts[0]++;
                        counts[1] += r.payload().length;
                    });
                }
                out.println("REPLAYED " + counts[0] + " " + counts[1]);
            } catch (Throwable t) {
                out.println("FAILED " + t);
            }
            return;
        }
        if (args[0].equals("try")) {
            try {
                SegmentedLog.open(LogOptions.defaults(dir)).close();
                out.println("OPENED");
            } catch (JournalLockedException e) {
                out.println("LOCKED " + e.getMessage());
            }
            return;
        }
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir))) {
            if (args[0].equals("hold")) {
                out.println("READY");
                // Held until the test kills this process; the bound only keeps an orphan from living on.
                new CountDownLatch(1).await(1, TimeUnit.MINUTES);
                return;
            }
            int writers = 4;
            Thread[] threads = new Thread[writers];
            for (int w = 0; w < writers; w++) {
                String pid = "w" + w;
                threads[w] = new Thread(() -> writeUntil(log, pid, deadline, out));
                threads[w].start();
            }
            for (Thread t : threads) {
                t.join();
            }
        }
    }

    /** Eight persistent actors writing through the Pekko journal plugin, each printing what is acknowledged. */
    private static void runActors(Path dir, PrintStream out, long deadline) throws InterruptedException {
        ActorSystem<Void> system = ActorSystem.create(Behaviors.setup(ctx -> {
            for (int i = 0; i < 8; i++) {
                ctx.spawn(AckingWriter.create("actor-" + i, out), "writer-" + i);
            }
            return Behaviors.empty();
        }), "crash-child", TestConfig.forDir(dir));
        // Runs until the test kills this process; the bound only keeps an orphan from living on.
        new CountDownLatch(1).await(deadline - System.nanoTime(), TimeUnit.NANOSECONDS);
        system.terminate();
    }

    /** Keeps up to 16 appends in flight per writer, so group commits have several requests to batch. */
    private static void writeUntil(SegmentedLog log, String pid, long deadline, PrintStream out) {
        Semaphore inFlight = new Semaphore(16);
        long seq = 0;
        while (System.nanoTime() < deadline) {
            inFlight.acquireUninterruptibly();
            long s = ++seq;
            log.append(List.of(log.encode(List.of(Records.event(pid, s))))).whenComplete((a, e) -> {
                if (e == null) {
                    synchronized (out) {
                        out.println("ACK " + pid + " " + s);
                    }
                }
                inFlight.release();
            });
        }
    }
}
