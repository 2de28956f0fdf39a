package io.opentmr.launcher;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * How a server command's configuration is put together: command-line flags over the {@code --config}
 * file over the launcher's wiring over every module's {@code reference.conf}. The wiring names our
 * journal plugin and puts the journal under the component's data directory.
 */
final class LauncherConfig {

    private LauncherConfig() {
    }

    /**
     * @param flags      HOCON paths → values of the flags given (absent flags are not in the map)
     * @param configFile the {@code --config} file, or null
     * @param dataDirKey the HOCON path of the component's data directory
     */
    static Config resolve(Map<String, Object> flags, Path configFile, String dataDirKey) {
        Config fromFlags = ConfigFactory.parseMap(flags, "command-line flags");
        Config fromFile = ConfigFactory.empty();
        if (configFile != null) {
            if (!Files.isReadable(configFile)) {
                throw new ConfigException.BadValue("--config", "cannot read " + configFile);
            }
            fromFile = ConfigFactory.parseFile(configFile.toFile(), ConfigParseOptions.defaults().setAllowMissing(false));
        }
        Config given = fromFlags.withFallback(fromFile);
        Map<String, Object> wiring = new HashMap<>();
        wiring.put("pekko.persistence.journal.plugin", "opentmr.persistence.journal");
        wiring.put("pekko.persistence.snapshot-store.plugin", "opentmr.persistence.snapshot-store");
        if (given.hasPath(dataDirKey) && !given.hasPath("opentmr.persistence.dir")) {
            wiring.put("opentmr.persistence.dir", Path.of(given.getString(dataDirKey)).resolve("journal").toString());
        }
        return given.withFallback(ConfigFactory.parseMap(wiring, "launcher wiring"))
                .withFallback(ConfigFactory.load()).resolve();
    }
}
