package io.opentmr.management;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.util.HashMap;
import java.util.Map;

/** Settings of management HTTP for tests: a free port on a given address. */
final class ManagementFixture {

    private ManagementFixture() {
    }

    /** {@code opentmr.management.*} with port 0 and {@code extra} over the defaults. */
    static Config config(Map<String, Object> extra) {
        Map<String, Object> settings = new HashMap<>(Map.of(ManagementSettings.PATH + ".port", 0));
        settings.putAll(extra);
        return ConfigFactory.parseMap(settings).withFallback(ConfigFactory.load()).resolve();
    }

    static ManagementSettings settings(String address, Map<String, Object> extra) {
        return ManagementSettings.from(config(extra), address);
    }

    /** A config's leaves as dotted paths, to hand over as a component's overrides. */
    static Map<String, Object> flatten(Config config) {
        Map<String, Object> flat = new HashMap<>();
        config.entrySet().forEach(e -> flat.put(e.getKey(), e.getValue().unwrapped()));
        return flat;
    }
}
