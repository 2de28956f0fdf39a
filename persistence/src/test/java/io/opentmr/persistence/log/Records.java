package io.opentmr.persistence.log;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Test records: payload is the UTF-8 text "pid:seq", so a test can check it came back. */
final class Records {
    private Records() {
    }

    static LogRecord event(String pid, long seq, String... tags) {
        return LogRecord.event(pid, seq, 1_700_000_000_000L + seq, "writer-1", 4, "m", "",
                List.of(tags), (pid + ":" + seq).getBytes(StandardCharsets.UTF_8));
    }

    static String text(LogRecord r) {
        return new String(r.payload(), StandardCharsets.UTF_8);
    }

    static LogOptions options(Path dir) {
        return LogOptions.defaults(dir);
    }

    /** The sequence numbers of {@code pid} in the log in {@code dir}, opened anew (what a restart would see). */
    static List<Long> replayed(Path dir, String pid) throws IOException {
        List<Long> out = new ArrayList<>();
        try (SegmentedLog log = SegmentedLog.open(options(dir))) {
            log.replay(pid, 1, Long.MAX_VALUE, Long.MAX_VALUE, r -> out.add(r.sequenceNr()));
        }
        return out;
    }
}
