package io.opentmr.persistence;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.nio.file.Path;
import java.util.Map;

/** Actor system configuration for tests: our plugins on {@code dir}, Java serialization off. */
public final class TestConfig {

    private TestConfig() {
    }

    public static Config forDir(Path dir) {
        return ConfigFactory.parseString("""
                pekko.loglevel = WARNING
                pekko.loggers = ["org.apache.pekko.event.slf4j.Slf4jLogger"]
                pekko.logging-filter = "org.apache.pekko.event.slf4j.Slf4jLoggingFilter"
                pekko.actor.allow-java-serialization = off
                pekko.actor.serialization-bindings {
                  "io.opentmr.persistence.CborSerializable" = jackson-cbor
                }
                pekko.persistence.journal.plugin = "opentmr.persistence.journal"
                pekko.persistence.snapshot-store.plugin = "opentmr.persistence.snapshot-store"
                opentmr.persistence.query.refresh-interval = 50ms
                """)
                .withFallback(ConfigFactory.parseMap(Map.of("opentmr.persistence.dir", dir.toString())))
                .withFallback(ConfigFactory.load())
                .resolve();
    }
}
