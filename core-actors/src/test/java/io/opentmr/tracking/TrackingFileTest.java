package io.opentmr.tracking;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.testing.MutableClock;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The node's tracking file: lines in order, rotated at midnight into gzip files, old days removed. */
@Timeout(30)
class TrackingFileTest {

    private static final ZoneId UTC = ZoneOffset.UTC;

    @TempDir
    Path dir;

    static List<String> lines(Path file) throws IOException {
        List<String> lines = new ArrayList<>();
        try (BufferedReader reader = TrackingFiles.open(file)) {
            for (String line = reader.readLine(); line != null; line = reader.readLine()) {
                lines.add(line);
            }
        }
        return lines;
    }

    @Test
    void linesAreWrittenInOrderAndRotatedAtMidnightIntoGzip() throws Exception {
        MutableClock clock = new MutableClock(Instant.parse("2027-03-01T23:59:58Z"));
        try (TrackingFile file = new TrackingFile(dir, clock, UTC, 90)) {
            for (int i = 0; i < 1000; i++) {
                file.append("{\"n\":" + i + "}");
            }
            file.written().get(10, TimeUnit.SECONDS);
            assertEquals(1000, lines(dir.resolve("tracking.log")).size());
            clock.advance(Duration.ofSeconds(3));
            file.append("{\"n\":\"next day\"}");
            file.written().get(10, TimeUnit.SECONDS);
        }
        Path rotated = dir.resolve("tracking.2027-03-01.log.gz");
        assertTrue(Files.exists(rotated), "the first day rotated: " + TrackingFiles.inDirectory(dir));
        List<String> first = lines(rotated);
        assertEquals(1000, first.size());
        assertEquals("{\"n\":0}", first.get(0));
        assertEquals("{\"n\":999}", first.get(999));
        assertEquals(List.of("{\"n\":\"next day\"}"), lines(dir.resolve("tracking.log")));
        assertEquals(List.of(rotated, dir.resolve("tracking.log")), TrackingFiles.inDirectory(dir));
        assertEquals(LocalDate.parse("2027-03-01"), TrackingFiles.dayOf(rotated).orElseThrow());
    }

    @Test
    void aFileLeftFromAnEarlierDayIsRotatedAtOpenAndDaysBeyondTheKeptOnesGo() throws Exception {
        MutableClock clock = new MutableClock(Instant.parse("2027-03-10T08:00:00Z"));
        Path current = dir.resolve("tracking.log");
        Files.writeString(current, "{\"old\":1}\n");
        Files.setLastModifiedTime(current, FileTime.from(Instant.parse("2027-03-08T20:00:00Z")));
        Path ancient = dir.resolve("tracking.2027-01-01.log.gz");
        Files.write(ancient, new byte[0]);
        Path recent = dir.resolve("tracking.2027-03-05.log.gz");
        Files.write(recent, new byte[0]);
        try (TrackingFile file = new TrackingFile(dir, clock, UTC, 30)) {
            file.append("{\"new\":1}");
            file.written().get(10, TimeUnit.SECONDS);
        }
        assertEquals(List.of("{\"old\":1}"), lines(dir.resolve("tracking.2027-03-08.log.gz")));
        assertEquals(List.of("{\"new\":1}"), lines(current));
        assertFalse(Files.exists(ancient), "older than 30 days: removed");
        assertTrue(Files.exists(recent), "within 30 days: kept");
    }

    @Test
    void aSecondFileOfOneDayGetsAnIndexAndIsReadAfterTheFirst() throws Exception {
        MutableClock clock = new MutableClock(Instant.parse("2027-03-10T08:00:00Z"));
        Files.write(dir.resolve("tracking.2027-03-09.log.gz"), new byte[0]);
        Path current = dir.resolve("tracking.log");
        Files.writeString(current, "{\"again\":1}\n");
        Files.setLastModifiedTime(current, FileTime.from(Instant.parse("2027-03-09T20:00:00Z")));
        new TrackingFile(dir, clock, UTC, 30).close();
        Path second = dir.resolve("tracking.2027-03-09.1.log.gz");
        assertEquals(List.of("{\"again\":1}"), lines(second));
        List<Path> files = TrackingFiles.inDirectory(dir);
        assertEquals(List.of(dir.resolve("tracking.2027-03-09.log.gz"), second, current), files);
    }

    @Test
    void linesAfterCloseAreDroppedNotHung() throws Exception {
        TrackingFile file = new TrackingFile(dir, new MutableClock(Instant.parse("2027-03-10T08:00:00Z")), UTC, 1);
        file.append("{\"a\":1}");
        file.close();
        file.append("{\"late\":1}");
        file.written().get(1, TimeUnit.SECONDS);
        assertEquals(List.of("{\"a\":1}"), lines(dir.resolve("tracking.log")));
    }
}
