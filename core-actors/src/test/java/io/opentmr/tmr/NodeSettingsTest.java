package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The node's name is its identity towards the backends: required, and one sensible token. */
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
}
