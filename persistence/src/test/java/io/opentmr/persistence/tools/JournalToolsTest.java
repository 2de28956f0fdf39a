package io.opentmr.persistence.tools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.opentmr.persistence.Await;
import io.opentmr.persistence.Counter;
import io.opentmr.persistence.OpenTmrPersistence;
import io.opentmr.persistence.TestConfig;
import io.opentmr.persistence.log.LogOptions;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.LogScanner;
import io.opentmr.persistence.log.SegmentedLog;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.pattern.StatusReply;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(value = 60, unit = TimeUnit.SECONDS)
class JournalToolsTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static LogRecord raw(String pid, long seq) {
        return LogRecord.event(pid, seq, 1000 + seq, "w", 4, "", "", List.of("t"),
                ("raw-" + seq).getBytes(StandardCharsets.UTF_8));
    }

    private void writeRaw(String pid, int count) throws IOException {
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir))) {
            for (int s = 1; s <= count; s++) {
                Await.done(log.append(List.of(log.encode(List.of(raw(pid, s))))));
            }
        }
    }

    private List<JsonNode> dump(DumpFilter filter) throws IOException {
        StringWriter out = new StringWriter();
        DumpResult result = JournalTools.dump(dir, filter, out);
        List<JsonNode> lines = new ArrayList<>();
        for (String line : out.toString().split("\n")) {
            if (!line.isEmpty()) {
                lines.add(JSON.readTree(line));
            }
        }
        assertEquals(result.printed(), lines.size());
        return lines;
    }

    private List<Integer> offsets() throws IOException {
        List<Integer> out = new ArrayList<>();
        LogScanner.scan(dir, 1 << 20, false, (f, offset, l, r) -> out.add(offset));
        return out;
    }

    @Test
    void dumpFiltersAndDecodesJacksonPayloadsToJson() throws Exception {
        ActorTestKit kit = ActorTestKit.create("tools", TestConfig.forDir(dir));
        try {
            // The lease of a later issue sets the epoch this way; every record written from now on carries it.
            OpenTmrPersistence.get(Adapter.toClassic(kit.system())).setEpochSupplier(() -> 5L);
            for (String id : List.of("c-1", "c-2")) {
                ActorRef<Counter.Command> c = kit.spawn(Counter.create(id));
                for (long a = 1; a <= 4; a++) {
                    TestProbe<StatusReply<Long>> probe = kit.createTestProbe();
                    c.tell(new Counter.Add(a * 10, probe.getRef()));
                    probe.receiveMessage(Duration.ofSeconds(10));
                }
            }
        } finally {
            kit.shutdownTestKit();
        }
        assertEquals(8, dump(DumpFilter.all()).size());
        List<JsonNode> lines = dump(DumpFilter.persistenceId("c-2").sequenceNrs(2, 3));
        assertEquals(2, lines.size());
        JsonNode first = lines.get(0);
        assertEquals("c-2", first.get("persistenceId").asText());
        assertEquals(2, first.get("sequenceNr").asLong());
        assertEquals("event", first.get("type").asText());
        assertEquals(20, first.get("payload").get("amount").asLong());
        assertEquals("counter", first.get("tags").get(0).asText());
        assertEquals(5, first.get("epoch").asLong());
        assertTrue(first.get("position").asLong() >= 4);
    }

    @Test
    void dumpShowsOtherPayloadsAsBase64AndMarksDeletedEvents() throws Exception {
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir))) {
            Await.done(log.append(List.of(log.encode(List.of(raw("r", 1))), log.encode(List.of(raw("r", 2))))));
            Await.done(log.delete("r", 1));
        }
        List<JsonNode> lines = dump(DumpFilter.persistenceId("r"));
        assertEquals(3, lines.size());
        assertEquals("raw-1", new String(Base64.getDecoder().decode(
                lines.get(0).get("payloadBase64").asText()), StandardCharsets.UTF_8));
        assertTrue(lines.get(0).get("deleted").asBoolean());
        assertTrue(!lines.get(1).get("deleted").asBoolean());
        assertEquals("tombstone", lines.get(2).get("type").asText());
    }

    @Test
    void verifyReportsACleanJournal() throws IOException {
        writeRaw("a", 5);
        VerifyReport report = JournalTools.verify(dir);
        assertEquals(0, report.exitCode(), report.toString());
        assertEquals(5, report.events());
        assertEquals(1, report.persistenceIds());
        assertEquals(1, report.segments());
        assertEquals(List.of(), report.notes());
    }

    @Test
    void verifyNotesATornTailWithExitZeroAndDoesNotRepairIt() throws IOException {
        writeRaw("a", 5);
        Path seg = LogScanner.segmentFiles(dir).get(0);
        long size = Files.size(seg);
        try (RandomAccessFile f = new RandomAccessFile(seg.toFile(), "rw")) {
            f.setLength(size - 5);
        }
        VerifyReport report = JournalTools.verify(dir);
        assertEquals(0, report.exitCode(), report.toString());
        assertEquals(1, report.notes().size());
        assertTrue(report.notes().get(0).contains("torn tail"), report.notes().get(0));
        assertEquals(4, report.events());
        assertEquals(size - 5, Files.size(seg), "verify must not truncate");
    }

    @Test
    void verifyNamesDamageInTheMiddleWithANonZeroExit() throws IOException {
        writeRaw("a", 6);
        Path seg = LogScanner.segmentFiles(dir).get(0);
        int second = offsets().get(1);
        try (RandomAccessFile f = new RandomAccessFile(seg.toFile(), "rw")) {
            f.seek(second + 25);
            int b = f.read();
            f.seek(second + 25);
            f.write(b ^ 0xFF);
        }
        VerifyReport report = JournalTools.verify(dir);
        assertEquals(1, report.exitCode());
        assertEquals(1, report.problems().size(), report.toString());
        String problem = report.problems().get(0);
        assertTrue(problem.contains(seg.toString()) && problem.contains("offset " + second), problem);
        assertTrue(problem.contains("CRC32C"), problem);
        assertEquals(5, report.events(), "records after the damage are still read and counted");
        assertTrue(report.notes().get(0).contains("missing"), report.notes().toString());
    }

    @Test
    void toolsReadALiveJournalWithoutTakingItsLock() throws IOException {
        try (SegmentedLog log = SegmentedLog.open(LogOptions.defaults(dir))) {
            Await.done(log.append(List.of(log.encode(List.of(raw("live", 1))))));
            assertEquals(0, JournalTools.verify(dir).exitCode());
            assertEquals(1, dump(DumpFilter.all()).size());
            Await.done(log.append(List.of(log.encode(List.of(raw("live", 2))))));
            assertEquals(2, JournalTools.verify(dir).events());
        }
    }
}
