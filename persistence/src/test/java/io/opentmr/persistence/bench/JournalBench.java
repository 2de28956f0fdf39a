package io.opentmr.persistence.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.persistence.CborSerializable;
import io.opentmr.persistence.OpenTmrPersistence;
import io.opentmr.persistence.TestConfig;
import io.opentmr.persistence.log.SegmentedLog;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.stream.Stream;
import org.HdrHistogram.ConcurrentHistogram;
import org.HdrHistogram.Histogram;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;

/**
 * Events/s and persist latency of 100 persistent actors writing as fast as they can, on our journal (fsync
 * {@code batch}) and on Pekko's in-memory journal in the same run. Not a test: {@code mvn -Pbench} runs it.
 * Arguments (optional): actors, warm-up seconds, measured seconds.
 */
public final class JournalBench {

    private JournalBench() {
    }

    /** The one command: persist the next event. */
    enum Next {
        INSTANCE
    }

    /** ~100 bytes in CBOR, about the size of a seat or handle event. */
    public record BenchEvent(long n, String holder) implements CborSerializable {
    }

    /** Shared by the writers of one run. */
    static final class Run {
        final LongAdder events = new LongAdder();
        final Histogram latencyMicros = new ConcurrentHistogram(TimeUnit.SECONDS.toMicros(10), 3);
        volatile boolean measuring;
        volatile boolean stopped;
    }

    static final class Writer extends EventSourcedBehavior<Next, BenchEvent, Long> {
        private final Run run;
        private final ActorRef<Next> self;

        Writer(String id, Run run, ActorRef<Next> self) {
            super(PersistenceId.ofUniqueId(id));
            this.run = run;
            this.self = self;
        }

        static Behavior<Next> create(String id, Run run) {
            return Behaviors.setup(ctx -> {
                ctx.getSelf().tell(Next.INSTANCE);
                return new Writer(id, run, ctx.getSelf());
            });
        }

        @Override
        public Long emptyState() {
            return 0L;
        }

        @Override
        public CommandHandler<Next, BenchEvent, Long> commandHandler() {
            return newCommandHandlerBuilder().forAnyState().onCommand(Next.class, (state, cmd) -> {
                if (run.stopped) {
                    return Effect().none();
                }
                long start = System.nanoTime();
                return Effect().persist(new BenchEvent(state + 1, "host-17/user-42/pid-31337/session-0042"))
                        .thenRun(s -> {
                            if (run.measuring) {
                                run.latencyMicros.recordValue(
                                        Math.min((System.nanoTime() - start) / 1000, TimeUnit.SECONDS.toMicros(10)));
                                run.events.increment();
                            }
                            self.tell(Next.INSTANCE);
                        });
            }).build();
        }

        @Override
        public EventHandler<Long, BenchEvent> eventHandler() {
            return newEventHandlerBuilder().forAnyState().onAnyEvent((state, e) -> e.n());
        }
    }

    /** Figures of one journal. */
    record Result(String journal, double eventsPerSecond, double p50Millis, double p99Millis, double p999Millis,
            String detail) {
        @Override
        public String toString() {
            return String.format(Locale.ROOT, "%-8s %10.0f events/s   p50 %7.2f ms   p99 %7.2f ms   p99.9 %7.2f ms%s",
                    journal, eventsPerSecond, p50Millis, p99Millis, p999Millis, detail);
        }
    }

    static Result measure(String name, Config config, int actors, int warmupSeconds, int seconds)
            throws InterruptedException {
        Run run = new Run();
        ActorSystem<Void> system = ActorSystem.create(Behaviors.setup(ctx -> {
            for (int i = 0; i < actors; i++) {
                ctx.spawn(Writer.create("bench-" + i, run), "writer-" + i);
            }
            return Behaviors.empty();
        }), "bench-" + name, config);
        try {
            TimeUnit.SECONDS.sleep(warmupSeconds);
            SegmentedLog.Stats before = stats(system);
            run.measuring = true;
            long start = System.nanoTime();
            TimeUnit.SECONDS.sleep(seconds);
            run.measuring = false;
            double elapsed = (System.nanoTime() - start) / 1e9;
            SegmentedLog.Stats after = stats(system);
            run.stopped = true;
            String detail = "";
            if (before != null && after != null && after.fsyncs() > before.fsyncs()) {
                long fsyncs = after.fsyncs() - before.fsyncs();
                detail = String.format(Locale.ROOT, "   %.0f fsyncs/s, %.1f events per fsync", fsyncs / elapsed,
                        (double) (after.records() - before.records()) / fsyncs);
            }
            Histogram h = run.latencyMicros;
            return new Result(name, run.events.sum() / elapsed, h.getValueAtPercentile(50) / 1000.0,
                    h.getValueAtPercentile(99) / 1000.0, h.getValueAtPercentile(99.9) / 1000.0, detail);
        } finally {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().join();
        }
    }

    /** Counters of our log, or null when the run uses another journal. */
    private static SegmentedLog.Stats stats(ActorSystem<Void> system) {
        if (!system.settings().config().getString("pekko.persistence.journal.plugin")
                .equals("opentmr.persistence.journal")) {
            return null;
        }
        try {
            return OpenTmrPersistence.get(Adapter.toClassic(system)).log().stats();
        } catch (IOException e) {
            return null;
        }
    }

    public static void main(String[] args) throws Exception {
        int actors = args.length > 0 ? Integer.parseInt(args[0]) : 100;
        int warmup = args.length > 1 ? Integer.parseInt(args[1]) : 3;
        int seconds = args.length > 2 ? Integer.parseInt(args[2]) : 10;
        Path dir = Files.createTempDirectory("opentmr-bench");
        try {
            Config ours = ConfigFactory.parseString("opentmr.persistence.fsync = batch")
                    .withFallback(TestConfig.forDir(dir));
            Config inmem = ConfigFactory.parseString("""
                    pekko.persistence.journal.plugin = "pekko.persistence.journal.inmem"
                    pekko.persistence.snapshot-store.plugin = "pekko.persistence.no-snapshot-store"
                    """).withFallback(TestConfig.forDir(dir));
            Result a = measure("opentmr", ours, actors, warmup, seconds);
            Result b = measure("inmem", inmem, actors, warmup, seconds);
            System.out.printf(Locale.ROOT, "%d persistent actors, %d s warm-up, %d s measured, %d cores%n", actors,
                    warmup, seconds, Runtime.getRuntime().availableProcessors());
            System.out.println(a);
            System.out.println(b);
            System.out.printf(Locale.ROOT, "ratio opentmr/inmem: %.2f%n", a.eventsPerSecond() / b.eventsPerSecond());
        } finally {
            deleteRecursively(dir);
        }
    }

    private static void deleteRecursively(Path dir) throws IOException {
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
