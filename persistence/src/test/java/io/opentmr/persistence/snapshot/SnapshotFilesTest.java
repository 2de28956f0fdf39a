package io.opentmr.persistence.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.persistence.Serialized;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Setting snapshots aside: recovery no longer sees them, an operator still finds them, new ones count again. */
class SnapshotFilesTest {

    @TempDir
    Path dir;

    private static SnapshotFiles.Stored stored(String text) {
        return new SnapshotFiles.Stored(new Serialized(4, "m", text.getBytes(StandardCharsets.UTF_8)), null);
    }

    @Test
    void snapshotsSetAsideAreNoLongerListedButKeptAndNewOnesAreListedAgain() throws Exception {
        SnapshotFiles files = new SnapshotFiles(dir);
        files.save("tmr-license|1-2-3", 10, 1_000, stored("ten"));
        files.save("tmr-license|1-2-3", 20, 2_000, stored("twenty"));
        files.save("other", 5, 3_000, stored("five"));
        Files.writeString(dir.resolve("notes.txt"), "not a snapshot");

        assertEquals(3, files.setAside(1_700_000_000_000L));

        assertEquals(List.of(), files.list("tmr-license|1-2-3"));
        assertEquals(List.of(), files.list("other"));
        Path aside = dir.resolve("set-aside-1700000000000");
        try (Stream<Path> kept = Files.list(aside)) {
            assertEquals(3, kept.filter(f -> f.getFileName().toString().endsWith(".snap")).count());
        }
        assertTrue(Files.exists(dir.resolve("notes.txt")), "only snapshot files are moved");
        // The files set aside are still readable where they are.
        List<SnapshotFiles.Key> asideKeys = SnapshotFiles.readOnly(aside).list("tmr-license|1-2-3");
        assertEquals(20, asideKeys.get(0).sequenceNr());
        assertArrayEquals("twenty".getBytes(StandardCharsets.UTF_8),
                SnapshotFiles.readOnly(aside).read(asideKeys.get(0)).snapshot().bytes());

        assertEquals(0, files.setAside(1_700_000_000_001L), "nothing left to set aside");
        files.save("tmr-license|1-2-3", 30, 4_000, stored("thirty"));
        assertEquals(30, files.list("tmr-license|1-2-3").get(0).sequenceNr());
    }

    @Test
    void readOnlyFilesSetNothingAside() throws Exception {
        new SnapshotFiles(dir).save("p", 1, 1, stored("x"));
        assertThrows(IllegalStateException.class, () -> SnapshotFiles.readOnly(dir).setAside(1));
        assertEquals(1, new SnapshotFiles(dir).list("p").size());
    }
}
