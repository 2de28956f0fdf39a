package io.opentmr.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.net.InetAddress;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ManagementSettingsTest {

    @Test
    void defaultsArePekkoManagementsPortOnTheComponentsOwnAddress() {
        ManagementSettings settings = ManagementSettings.from(ConfigFactory.load(), "127.0.1.2");
        assertTrue(settings.enabled());
        assertEquals("127.0.1.2", settings.address());
        assertEquals(7626, settings.port());
        assertTrue(settings.readAllow().allowsAll());
        assertTrue(settings.https().isEmpty());
        assertEquals(100, settings.defaultPage());
        Config pekko = settings.pekkoConfig(false).withFallback(ConfigFactory.load()).resolve();
        assertEquals("health/ready", pekko.getString("pekko.management.health-checks.readiness-path"));
        assertEquals("health/alive", pekko.getString("pekko.management.health-checks.liveness-path"));
        assertEquals("127.0.1.2", pekko.getString("pekko.management.http.bind-hostname"));
        assertEquals(7626, pekko.getInt("pekko.management.http.port"));
        // A process that is no cluster member drops pekko-management's cluster routes and membership check.
        assertEquals("", pekko.getString("pekko.management.http.routes.cluster-management"));
        assertEquals("", pekko.getString("pekko.management.health-checks.readiness-checks.cluster-membership"));
        Config member = settings.pekkoConfig(true).withFallback(ConfigFactory.load()).resolve();
        assertFalse(member.getString("pekko.management.http.routes.cluster-management").isEmpty());
    }

    @Test
    void badValuesNameTheirKey() {
        assertKey("opentmr.management.port", Map.of("opentmr.management.port", 70_000));
        assertKey("opentmr.management.read-allow", Map.of("opentmr.management.read-allow", List.of("ws-1")));
        assertKey("opentmr.management.https", Map.of("opentmr.management.https.certificate", "/etc/cert.pem"));
        assertKey("opentmr.management.handles-page", Map.of("opentmr.management.handles-page.max", 10,
                "opentmr.management.handles-page.default", 50));
    }

    private static void assertKey(String key, Map<String, Object> given) {
        ConfigException e = assertThrows(ConfigException.class, () -> ManagementSettings.from(
                ConfigFactory.parseMap(given).withFallback(ConfigFactory.load()), "127.0.0.1"));
        assertTrue(e.getMessage().contains(key), e.getMessage());
    }

    @Test
    void addressListsTakeAddressesAndBlocks() throws Exception {
        AddressList list = AddressList.parse(List.of("10.0.0.0/8", "192.168.1.7", "fd00::/8"));
        assertTrue(list.allows(InetAddress.getByName("10.200.3.4")));
        assertTrue(list.allows(InetAddress.getByName("192.168.1.7")));
        assertFalse(list.allows(InetAddress.getByName("192.168.1.8")));
        assertTrue(list.allows(InetAddress.getByName("fd12::1")));
        assertFalse(list.allows(InetAddress.getByName("127.0.0.1")));
        assertFalse(list.allows(null));
        AddressList halfByte = AddressList.parse(List.of("172.16.0.0/12"));
        assertTrue(halfByte.allows(InetAddress.getByName("172.31.255.255")));
        assertFalse(halfByte.allows(InetAddress.getByName("172.32.0.1")));
        assertTrue(AddressList.parse(List.of()).allows(null));
        assertThrows(IllegalArgumentException.class, () -> AddressList.parse(List.of("10.0.0.0/33")));
        assertThrows(IllegalArgumentException.class, () -> AddressList.parse(List.of("localhost")));
    }
}
