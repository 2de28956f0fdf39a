package io.opentmr.persistence;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.persistence.log.FsyncPolicy;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class PersistenceSettingsTest {

    @Test
    void referenceConfDefaults() {
        PersistenceSettings s = PersistenceSettings.fromConfig(ConfigFactory.load());
        assertEquals(Path.of("journal"), s.directory());
        assertEquals(64L << 20, s.segmentSize());
        assertEquals(FsyncPolicy.BATCH, s.fsync());
        assertEquals(4 << 20, s.maxBatchBytes());
        assertEquals(1, s.keepSegments());
        assertEquals(1L << 20, s.preallocate());
        assertFalse(s.repair());
        assertEquals(Path.of("journal", "snapshots"), s.snapshotDirectory());
        assertEquals(Duration.ofMillis(100), s.queryRefreshInterval());
        assertEquals(256, s.queryBatchSize());
        assertEquals(0L, s.logOptions(() -> 0L, () -> 7L).epoch().getAsLong());
        assertEquals(7L, s.logOptions(() -> 0L, () -> 7L).replicatedTo().getAsLong());
    }

    @Test
    void overridesAndBadValues() {
        PersistenceSettings s = PersistenceSettings.fromConfig(ConfigFactory.parseString("""
                opentmr.persistence { dir = "/data/j", fsync = ALWAYS, snapshot-dir = "/data/s", repair = on }
                """).withFallback(ConfigFactory.load()));
        assertEquals(FsyncPolicy.ALWAYS, s.fsync());
        assertEquals(Path.of("/data/s"), s.snapshotDirectory());
        assertEquals(true, s.repair());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PersistenceSettings.fromConfig(ConfigFactory.parseString("opentmr.persistence.fsync = sometimes")
                        .withFallback(ConfigFactory.load())));
        assertEquals("fsync must be one of always, batch, never; got 'sometimes'", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PersistenceSettings.fromConfig(ConfigFactory
                .parseString("opentmr.persistence.segment-size = 1k").withFallback(ConfigFactory.load())));
        assertThrows(IllegalArgumentException.class, () -> PersistenceSettings.fromConfig(ConfigFactory
                .parseString("opentmr.persistence.compaction.keep-segments = 0").withFallback(ConfigFactory.load())));
    }

    @Test
    void thePluginsRunOnTheirOwnDispatcher() {
        Config c = ConfigFactory.load();
        assertEquals("opentmr.persistence.dispatcher", c.getString("opentmr.persistence.journal.plugin-dispatcher"));
        assertEquals("opentmr.persistence.dispatcher",
                c.getString("opentmr.persistence.snapshot-store.plugin-dispatcher"));
        assertEquals("PinnedDispatcher", c.getString("opentmr.persistence.dispatcher.type"));
        assertEquals("Dispatcher", c.getString(PersistenceSettings.IO_DISPATCHER + ".type"));
        assertEquals("thread-pool-executor", c.getString(PersistenceSettings.IO_DISPATCHER + ".executor"));
    }
}
