package io.opentmr.persistence.log;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;

/**
 * Random sequences of writes, deletes and reopens against a trivial model: after every step the log replays
 * exactly the model's live events and reports its highest sequence number. Small segments make rolling and
 * segment removal part of every run.
 */
class LogModelProperties {

    private static final List<String> IDS = List.of("a", "b", "c");

    sealed interface Op {
    }

    record Write(String pid, int count, boolean atomic) implements Op {
    }

    record Delete(String pid, int back) implements Op {
    }

    record Reopen() implements Op {
    }

    /** Close, then leave half a record at the tail, as a crash during a write would. */
    record TornReopen() implements Op {
    }

    /** What the log must hold for one id. */
    static final class Model {
        long highest;
        long deletedTo;

        List<Long> live() {
            List<Long> out = new ArrayList<>();
            for (long s = deletedTo + 1; s <= highest; s++) {
                out.add(s);
            }
            return out;
        }
    }

    @Provide
    Arbitrary<List<Op>> ops() {
        Arbitrary<String> pid = Arbitraries.of(IDS);
        Arbitrary<Op> write = Combinators.combine(pid, Arbitraries.integers().between(1, 20),
                Arbitraries.of(true, false)).as(Write::new);
        Arbitrary<Op> delete = Combinators.combine(pid, Arbitraries.integers().between(-3, 15)).as(Delete::new);
        Arbitrary<Op> reopen = Arbitraries.just(new Reopen());
        Arbitrary<Op> torn = Arbitraries.just(new TornReopen());
        return Arbitraries.frequencyOf(
                Tuple.of(6, write),
                Tuple.of(3, delete),
                Tuple.of(1, reopen),
                Tuple.of(1, torn)).list().ofMinSize(1).ofMaxSize(40);
    }

    @Property(tries = 60)
    void logMatchesTheModel(@ForAll("ops") List<Op> ops) throws IOException {
        Path dir = Files.createTempDirectory("log-model");
        LogOptions options = LogOptions.defaults(dir).withSegmentSize(4096);
        Map<String, Model> model = new HashMap<>();
        IDS.forEach(id -> model.put(id, new Model()));
        SegmentedLog log = SegmentedLog.open(options);
        try {
            for (Op op : ops) {
                if (op instanceof Write w) {
                    Model m = model.get(w.pid());
                    List<LogRecord> events = new ArrayList<>();
                    for (int i = 1; i <= w.count(); i++) {
                        events.add(Records.event(w.pid(), m.highest + i));
                    }
                    if (w.atomic()) {
                        await(log.append(List.of(log.encode(events))));
                    } else {
                        List<SegmentedLog.Group> groups = new ArrayList<>();
                        for (LogRecord e : events) {
                            groups.add(log.encode(List.of(e)));
                        }
                        await(log.append(groups));
                    }
                    m.highest += w.count();
                } else if (op instanceof Delete d) {
                    Model m = model.get(d.pid());
                    // back < 0 asks to delete beyond the highest sequence number, which deletes up to it.
                    long to = m.highest - d.back();
                    await(log.delete(d.pid(), to));
                    m.deletedTo = Math.max(m.deletedTo, Math.min(Math.max(to, 0), m.highest));
                } else {
                    log.close();
                    if (op instanceof TornReopen) {
                        List<Path> segments = LogScanner.segmentFiles(dir);
                        byte[] half = RecordCodec.encode(Records.event("a", 1_000_000), 1 << 20);
                        Files.write(segments.get(segments.size() - 1), Arrays.copyOf(half, half.length / 2),
                                StandardOpenOption.APPEND);
                    }
                    log = SegmentedLog.open(options);
                }
                check(log, model);
            }
            log.close();
            log = SegmentedLog.open(options);
            check(log, model);
        } finally {
            log.close();
            deleteRecursively(dir);
        }
    }

    /** jqwik has no @Timeout: every wait of the property is bounded here instead. */
    private static void await(CompletableFuture<?> f) {
        try {
            f.get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new AssertionError("log operation failed or timed out", e);
        }
    }

    private static void check(SegmentedLog log, Map<String, Model> model) {
        for (Map.Entry<String, Model> e : model.entrySet()) {
            List<Long> replayed = new ArrayList<>();
            log.replay(e.getKey(), 1, Long.MAX_VALUE, Long.MAX_VALUE, r -> replayed.add(r.sequenceNr()));
            assertEquals(e.getValue().live(), replayed, "replay of " + e.getKey());
            assertEquals(e.getValue().highest, log.highestSequenceNr(e.getKey()), "highest of " + e.getKey());
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
