package io.opentmr.persistence.query;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Counter;
import io.opentmr.persistence.OpenTmrPersistence;
import io.opentmr.persistence.TestConfig;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.SegmentedLog;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.pattern.StatusReply;
import org.apache.pekko.persistence.query.EventEnvelope;
import org.apache.pekko.persistence.query.Offset;
import org.apache.pekko.persistence.query.PersistenceQuery;
import org.apache.pekko.persistence.query.Sequence;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.testkit.TestSubscriber;
import org.apache.pekko.stream.testkit.javadsl.TestSink;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The six queries of the read journal, current and live, over events persisted by real actors. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ReadJournalTest {

    private static final Duration WAIT = Duration.ofSeconds(10);
    /** Pekko's ByteArraySerializer: raw payload bytes, for records written to the log directly. */
    private static final int BYTES_SERIALIZER = 4;

    @TempDir
    Path dir;

    private ActorTestKit kit;
    private OpenTmrReadJournal journal;
    private org.apache.pekko.actor.ActorSystem classic;

    @BeforeEach
    void start() {
        kit = ActorTestKit.create("read-journal", TestConfig.forDir(dir));
        classic = Adapter.toClassic(kit.system());
        journal = PersistenceQuery.get(classic).getReadJournalFor(OpenTmrReadJournal.class,
                OpenTmrReadJournal.IDENTIFIER);
    }

    @AfterEach
    void stop() {
        kit.shutdownTestKit();
    }

    private ActorRef<Counter.Command> counter(String id, long... amounts) {
        ActorRef<Counter.Command> c = kit.spawn(Counter.create(id), id);
        for (long a : amounts) {
            add(c, a);
        }
        return c;
    }

    private void add(ActorRef<Counter.Command> counter, long amount) {
        TestProbe<StatusReply<Long>> probe = kit.createTestProbe();
        counter.tell(new Counter.Add(amount, probe.getRef()));
        assertTrue(probe.receiveMessage(WAIT).isSuccess());
    }

    private <T> List<T> run(org.apache.pekko.stream.javadsl.Source<T, ?> source) throws Exception {
        return source.runWith(Sink.seq(), classic).toCompletableFuture().get(10, TimeUnit.SECONDS);
    }

    @Test
    void currentQueriesReturnWhatIsStoredAndComplete() throws Exception {
        counter("c-1", 1, 2, 3);
        counter("c-2", 10, 20);

        List<EventEnvelope> c1 = run(journal.currentEventsByPersistenceId("c-1", 1, Long.MAX_VALUE));
        assertEquals(List.of(1L, 2L, 3L), c1.stream().map(EventEnvelope::sequenceNr).toList());
        assertEquals(new Counter.Added(2), c1.get(1).event());
        assertEquals(List.of(2L), run(journal.currentEventsByPersistenceId("c-1", 2, 2)).stream()
                .map(EventEnvelope::sequenceNr).toList());

        assertEquals(Set.of("c-1", "c-2"), Set.copyOf(run(journal.currentPersistenceIds())));

        List<EventEnvelope> tagged = run(journal.currentEventsByTag("counter", Offset.noOffset()));
        assertEquals(5, tagged.size());
        long previous = -1;
        for (EventEnvelope e : tagged) {
            long position = ((Sequence) e.offset()).value();
            assertTrue(position > previous, "ordered by global position");
            previous = position;
        }
        Offset second = tagged.get(1).offset();
        assertEquals(tagged.subList(2, 5), run(journal.currentEventsByTag("counter", second)));
        assertEquals(List.of(), run(journal.currentEventsByTag("no-such-tag", Offset.noOffset())));
    }

    @Test
    void liveQueriesSeeEventsWrittenAfterTheyStarted() {
        ActorRef<Counter.Command> c1 = counter("c-1", 1);

        TestSubscriber.Probe<EventEnvelope> byId = journal.eventsByPersistenceId("c-1", 1, Long.MAX_VALUE)
                .runWith(TestSink.probe(classic), classic);
        TestSubscriber.Probe<EventEnvelope> byTag = journal.eventsByTag("counter", Offset.noOffset())
                .runWith(TestSink.probe(classic), classic);
        TestSubscriber.Probe<String> ids = journal.persistenceIds().runWith(TestSink.probe(classic), classic);

        byId.request(10);
        byTag.request(10);
        ids.request(10);
        assertEquals(1, byId.expectNext(WAIT).sequenceNr());
        assertEquals("c-1", byTag.expectNext(WAIT).persistenceId());
        assertEquals("c-1", ids.expectNext(WAIT));

        add(c1, 5);
        counter("c-2", 7);

        assertEquals(2, byId.expectNext(WAIT).sequenceNr());
        assertEquals(new Counter.Added(5), byTag.expectNext(WAIT).event());
        assertEquals("c-2", byTag.expectNext(WAIT).persistenceId());
        assertEquals("c-2", ids.expectNext(WAIT));

        byId.cancel();
        byTag.cancel();
        ids.cancel();
    }

    @Test
    void theScaladslJournalServesTheSameStreams() throws Exception {
        counter("c-9", 4);
        OpenTmrScaladslReadJournal scaladsl = PersistenceQuery.get(classic)
                .readJournalFor(OpenTmrReadJournal.IDENTIFIER);
        List<String> ids = run(scaladsl.currentPersistenceIds().asJava());
        assertEquals(List.of("c-9"), ids);
        assertEquals(1, run(scaladsl.currentEventsByPersistenceId("c-9", 0, Long.MAX_VALUE).asJava()).size());
    }

    private static LogRecord tagged(String pid, long seq) {
        return LogRecord.event(pid, seq, 1_700_000_000_000L, "writer-1", BYTES_SERIALIZER, "", "",
                List.of("t"), (pid + ":" + seq).getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void eventsByTagGetsPastAPageOfDeletedEvents() throws Exception {
        SegmentedLog log = OpenTmrPersistence.get(classic).log();
        List<SegmentedLog.Group> groups = new ArrayList<>();
        for (long s = 1; s <= 300; s++) {
            groups.add(log.encode(List.of(tagged("a", s))));
        }
        log.append(groups).get(10, TimeUnit.SECONDS);
        log.delete("a", 300).get(10, TimeUnit.SECONDS);
        log.append(List.of(log.encode(List.of(tagged("b", 1))))).get(10, TimeUnit.SECONDS);

        // batch-size 256 (the default): the first page of the tag holds only deleted events.
        List<EventEnvelope> current = run(journal.currentEventsByTag("t", Offset.noOffset()));
        assertEquals(List.of("b"), current.stream().map(EventEnvelope::persistenceId).toList());
        assertArrayEquals("b:1".getBytes(StandardCharsets.UTF_8), (byte[]) current.get(0).event());

        TestSubscriber.Probe<EventEnvelope> live = journal.eventsByTag("t", Offset.noOffset())
                .runWith(TestSink.probe(classic), classic);
        live.request(10);
        assertEquals("b", live.expectNext(WAIT).persistenceId());
        log.append(List.of(log.encode(List.of(tagged("b", 2))))).get(10, TimeUnit.SECONDS);
        assertEquals(2, live.expectNext(WAIT).sequenceNr());
        live.cancel();
    }
}
