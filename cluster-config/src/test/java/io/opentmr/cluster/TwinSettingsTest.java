package io.opentmr.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TwinSettingsTest {

    @TempDir
    static Path dir;

    @BeforeAll
    static void keys() throws Exception {
        ClusterKeys keys = new ClusterKeys(new SecureRandom(), Clock.systemUTC(), 2048);
        keys.createAuthority(dir.resolve("ca"));
        keys.issue(dir.resolve("ca"), "node-a", dir.resolve("node-a"));
    }

    private static Config config(Map<String, Object> values) {
        Map<String, Object> map = new java.util.HashMap<>(Map.of(
                "opentmr.node.name", "node-a",
                "opentmr.node.cluster-address", "127.0.2.1",
                "opentmr.node.seed-nodes", List.of("127.0.2.2:25520", "127.0.2.1:25520"),
                "opentmr.node.cluster-keys-dir", dir.resolve("node-a").toString()));
        map.putAll(values);
        return ConfigFactory.parseMap(map).withFallback(ConfigFactory.load());
    }

    @Test
    void bothNodesOrderTheSeedsAlikeSoExactlyOneIsFirst() {
        TwinSettings a = TwinSettings.from(config(Map.of()));
        TwinSettings b = TwinSettings.from(config(Map.of("opentmr.node.name", "node-b",
                "opentmr.node.cluster-address", "127.0.2.2",
                "opentmr.node.seed-nodes", List.of("127.0.2.1:25520", "127.0.2.2:25520"))));
        assertEquals(a.seeds(), b.seeds());
        assertNotEquals(a.firstSeed(), b.firstSeed());
        assertEquals(a.pekkoConfig("opentmr-node").getStringList("pekko.cluster.seed-nodes"),
                b.pekkoConfig("opentmr-node").getStringList("pekko.cluster.seed-nodes"));
    }

    @Test
    void thePekkoConfigIsAClusterOverMutualTlsWithTheTunedTiming() {
        Config pekko = TwinSettings.from(config(Map.of())).pekkoConfig("opentmr-node");
        assertEquals("cluster", pekko.getString("pekko.actor.provider"));
        assertEquals("tls-tcp", pekko.getString("pekko.remote.artery.transport"));
        assertEquals("127.0.2.1", pekko.getString("pekko.remote.artery.canonical.hostname"));
        assertEquals(25520, pekko.getInt("pekko.remote.artery.canonical.port"));
        assertEquals(25520, pekko.getInt("pekko.remote.artery.bind.port"), "binds the port the twin dials");
        assertEquals(List.of("pekko://opentmr-node@127.0.2.1:25520", "pekko://opentmr-node@127.0.2.2:25520"),
                pekko.getStringList("pekko.cluster.seed-nodes"));
        assertEquals(List.of("opentmr-name:node-a"), pekko.getStringList("pekko.cluster.roles"));
        assertEquals(200, pekko.getDuration("pekko.cluster.failure-detector.heartbeat-interval").toMillis());
        assertEquals(1000, pekko.getDuration("pekko.cluster.failure-detector.acceptable-heartbeat-pause").toMillis());
        assertEquals("", pekko.getString("pekko.cluster.downing-provider-class"));
        assertEquals(1000, TwinSettings.from(config(Map.of())).downUnreachableAfter().toMillis());
        assertTrue(pekko.getString("pekko.remote.artery.ssl.rotating-keys-engine.key-file").endsWith("node-a/tls.key"));
        Config resolved = pekko.withFallback(ConfigFactory.load()).resolve();
        assertEquals(1, resolved.getInt("pekko.remote.artery.advanced.inbound-lanes"), "remoting on one thread");
        assertEquals(1, resolved.getInt("pekko.remote.default-remote-dispatcher.thread-pool-executor.fixed-pool-size"));
        assertEquals(resolved.getString("pekko.remote.artery.advanced.use-dispatcher"),
                resolved.getString("pekko.io.tcp.worker-dispatcher"), "the TCP connections' actors on it too");
    }

    @Test
    void aNodeBehindAForwarderBindsItsBindPortAndIsDialledOnTheClusterPort() {
        Config pekko = TwinSettings.from(config(Map.of("opentmr.node.cluster-bind-port", 25530)))
                .pekkoConfig("opentmr-node");
        assertEquals(25520, pekko.getInt("pekko.remote.artery.canonical.port"));
        assertEquals(25530, pekko.getInt("pekko.remote.artery.bind.port"));
        assertEquals(List.of("pekko://opentmr-node@127.0.2.1:25520", "pekko://opentmr-node@127.0.2.2:25520"),
                pekko.getStringList("pekko.cluster.seed-nodes"));
    }

    @Test
    void badSettingsFailNamingTheKey() {
        assertKey("opentmr.node.seed-nodes", Map.of("opentmr.node.seed-nodes", List.of("127.0.2.2:25520")));
        assertKey("opentmr.node.seed-nodes", Map.of("opentmr.node.seed-nodes",
                List.of("127.0.2.1:25520", "127.0.2.2:25520", "127.0.2.3:25520")));
        assertKey("opentmr.node.seed-nodes", Map.of("opentmr.node.seed-nodes", List.of("127.0.2.1")));
        assertKey("opentmr.node.cluster-port", Map.of("opentmr.node.cluster-port", 0));
        assertKey("opentmr.node.cluster-bind-port", Map.of("opentmr.node.cluster-bind-port", 70_000));
        assertKey("opentmr.node.cluster-address", Map.of("opentmr.node.cluster-address", "0.0.0.0"));
        assertKey("opentmr.node.name", Map.of("opentmr.node.name", ""));
        assertKey("opentmr.node.cluster-keys-dir", Map.of("opentmr.node.cluster-keys-dir", dir.resolve("none").toString()));
        assertKey("opentmr.node.cluster.alone-after", Map.of("opentmr.node.cluster.alone-after", "1s"));
        assertKey("opentmr.node.cluster.failure-detector.acceptable-heartbeat-pause",
                Map.of("opentmr.node.cluster.failure-detector.acceptable-heartbeat-pause", "60ms"));
    }

    @Test
    void noSeedsMeansAClusterOfOne() {
        TwinSettings alone = TwinSettings.from(config(Map.of("opentmr.node.seed-nodes", List.of())));
        assertEquals(List.of(alone.self()), alone.seeds());
        assertTrue(alone.firstSeed());
    }

    @Test
    void keysAreIssuedByTheInstallationsCaAndNeverOverwritten() throws Exception {
        Path node = dir.resolve("node-a");
        X509Certificate ca = ClusterKeys.readCertificate(node.resolve("ca.crt"));
        X509Certificate cert = ClusterKeys.readCertificate(node.resolve("tls.crt"));
        cert.verify(ca.getPublicKey());
        assertTrue(cert.getSubjectX500Principal().getName().contains("OU=node-a"));
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(node.resolve("tls.key"))));
        assertEquals("rw-------", PosixFilePermissions.toString(
                Files.getPosixFilePermissions(dir.resolve("ca").resolve("ca.key"))));
        ClusterKeys keys = new ClusterKeys(new SecureRandom(), Clock.systemUTC(), 2048);
        assertThrows(java.nio.file.FileAlreadyExistsException.class, () -> keys.createAuthority(dir.resolve("ca")));
        assertThrows(java.nio.file.FileAlreadyExistsException.class,
                () -> keys.issue(dir.resolve("ca"), "node-a", node));
    }

    private static void assertKey(String key, Map<String, Object> values) {
        ConfigException e = assertThrows(ConfigException.class, () -> TwinSettings.from(config(values)));
        assertTrue(e.getMessage().contains(key), e.getMessage());
    }
}
