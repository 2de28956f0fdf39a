package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import io.opentmr.protocol.PeerAuth;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.pekko.coordination.lease.LeaseSettings;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The node's name is its identity towards the backends: required, and one sensible token. Whether it asks for the
 * active lease always or on request, and the Pekko lease's times beside its own.
 */
class NodeSettingsTest {

    @TempDir
    Path dir;

    private Config config(Object name) throws Exception {
        Path secret = dir.resolve("secret");
        Files.writeString(secret, "s".repeat(40));
        Map<String, Object> settings = new HashMap<>(Map.of(
                "opentmr.node.data-dir", dir.toString(),
                "opentmr.node.backends", List.of("127.0.1.1:22350", "127.0.1.2:22350", "127.0.1.3:22350"),
                PeerAuth.SECRET_FILE_KEY, secret.toString()));
        if (name != null) {
            settings.put("opentmr.node.name", name);
        }
        return ConfigFactory.parseMap(settings).withFallback(ConfigFactory.load());
    }

    @Test
    void theNameIsRequired() throws Exception {
        for (String missing : new String[] {null, "", "   "}) {
            ConfigException refused = assertThrows(ConfigException.BadValue.class,
                    () -> NodeSettings.from(config(missing)));
            assertTrue(refused.getMessage().contains("opentmr.node.name"), refused.getMessage());
        }
    }

    @Test
    void aBadNameIsRefusedNamingTheKey() throws Exception {
        for (String bad : List.of("-a", "node a", "a/b", "nöde", "x".repeat(65), "a\nb")) {
            ConfigException refused = assertThrows(ConfigException.BadValue.class, () -> NodeSettings.from(config(bad)),
                    bad);
            assertTrue(refused.getMessage().contains("opentmr.node.name"), refused.getMessage());
        }
    }

    @Test
    void aGoodNameIsKeptAsGiven() throws Exception {
        for (String good : List.of("node-a", "n", "node_b.site-1", "node@10.0.0.1:22350", "x".repeat(64))) {
            assertEquals(good, NodeSettings.from(config(good)).nodeName());
        }
    }

    @Test
    void theTakeOverTimingsDefaultAndRefuseBadValuesNamingTheKey() throws Exception {
        NodeSettings defaults = NodeSettings.from(config("node-a"));
        assertEquals(java.time.Duration.ofMillis(700), defaults.helloWait());
        assertEquals(java.time.Duration.ofSeconds(5), defaults.trackingRecoveryDelay());
        assertEquals(java.time.Duration.ZERO, NodeSettings.from(ConfigFactory.parseMap(Map.of(
                "opentmr.node.tracking.recovery-delay", "0s")).withFallback(config("node-a"))).trackingRecoveryDelay());
        for (Map.Entry<String, String> bad : Map.of("opentmr.node.tracking.recovery-delay", "-1s",
                "opentmr.node.hello-wait", "0s").entrySet()) {
            ConfigException refused = assertThrows(ConfigException.BadValue.class, () -> NodeSettings.from(
                    ConfigFactory.parseMap(Map.of(bad.getKey(), bad.getValue())).withFallback(config("node-a"))));
            assertTrue(refused.getMessage().contains(bad.getKey()), refused.getMessage());
        }
    }

    @Test
    void aSingleNodeAlwaysAsksForTheActiveLeaseATwinOnlyOnRequest() throws Exception {
        assertFalse(NodeSettings.from(config("node-a")).leaseOnRequest(), "the single node of before");
        Config twin = ConfigFactory.parseMap(Map.of("opentmr.node.lease-on-request", true))
                .withFallback(config("node-a"));
        assertTrue(NodeSettings.from(twin).leaseOnRequest());
    }

    @Test
    void thePekkoLeaseTimesMatchTheNodesLeaseTtlAndHeartbeat() throws Exception {
        Config config = ConfigFactory.load();
        NodeSettings node = NodeSettings.from(config("node-a"));
        LeaseSettings settings = LeaseSettings.apply(config.getConfig("opentmr.backend-quorum-lease")
                .withFallback(config.getConfig("pekko.coordination.lease")), "lease", "owner");
        assertEquals(node.leaseTtl(), settings.timeoutSettings().getHeartbeatTimeout());
        assertEquals(node.heartbeat(), settings.timeoutSettings().getHeartbeatInterval());
        // An acquire outlasts a frozen holder's grants: their TTL, the next heartbeat, and some margin.
        assertTrue(settings.timeoutSettings().getOperationTimeout()
                .compareTo(node.leaseTtl().plus(node.heartbeat())) > 0);
        assertEquals("io.opentmr.tmr.lease.BackendQuorumLease", settings.leaseConfig().getString("lease-class"));
    }
}
