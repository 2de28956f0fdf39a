package io.opentmr.management;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * {@code opentmr.management.*}, read once at start; {@link #pekkoConfig} renders the {@code pekko.management.*}
 * part the component's actor system must be created with (pekko-management reads it from there).
 *
 * @param address       where it listens: the setting, or the component's own address
 * @param readAllow     who may use the JSON routes, {@code /metrics} and the dashboard
 * @param https         PEM certificate chain and private key; empty: plain HTTP
 */
public record ManagementSettings(boolean enabled, String address, int port, AddressList readAllow,
                                 Optional<Pem> https, int defaultPage, int maxPage, Duration askTimeout) {

    public static final String PATH = "opentmr.management";
    /** The dispatcher of the routes' work (see reference.conf). */
    public static final String DISPATCHER = PATH + ".dispatcher";
    public static final String READINESS_PATH = "health/ready";
    public static final String LIVENESS_PATH = "health/alive";

    /** The PEM files of HTTPS. */
    public record Pem(Path certificate, Path privateKey) {
    }

    /**
     * @param componentAddress the address the component itself listens on (used when {@code address} is empty)
     * @throws ConfigException naming the key, for a bad value
     */
    public static ManagementSettings from(Config root, String componentAddress) {
        Config c = root.getConfig(PATH);
        String address = c.getString("address").strip();
        if (address.isEmpty()) {
            address = componentAddress;
        }
        int port = c.getInt("port");
        if (port < 0 || port > 65_535) {
            throw new ConfigException.BadValue(PATH + ".port", "must be 0..65535, not " + port);
        }
        AddressList allow;
        try {
            allow = AddressList.parse(c.getStringList("read-allow"));
        } catch (IllegalArgumentException e) {
            throw new ConfigException.BadValue(PATH + ".read-allow", e.getMessage());
        }
        String certificate = c.getString("https.certificate").strip();
        String key = c.getString("https.private-key").strip();
        if (certificate.isEmpty() != key.isEmpty()) {
            throw new ConfigException.BadValue(PATH + ".https", "set both certificate and private-key for HTTPS, "
                    + "or neither for HTTP");
        }
        Optional<Pem> https = certificate.isEmpty() ? Optional.empty()
                : Optional.of(new Pem(Path.of(certificate), Path.of(key)));
        int defaultPage = c.getInt("handles-page.default");
        int maxPage = c.getInt("handles-page.max");
        if (defaultPage < 1 || maxPage < defaultPage) {
            throw new ConfigException.BadValue(PATH + ".handles-page", "needs 1 <= default <= max, not default "
                    + defaultPage + ", max " + maxPage);
        }
        Duration askTimeout = c.getDuration("ask-timeout");
        if (askTimeout.isZero() || askTimeout.isNegative()) {
            throw new ConfigException.BadValue(PATH + ".ask-timeout", "must be a positive duration");
        }
        return new ManagementSettings(c.getBoolean("enabled"), address, port, allow, https, defaultPage, maxPage,
                askTimeout);
    }

    /**
     * The {@code pekko.*} settings of management HTTP, to lay over the component's config before its actor system
     * is created.
     *
     * @param clusterMember whether the component's actor system is a cluster member ({@code pekko.actor.provider =
     *                      cluster}): only then are pekko-management's cluster routes and membership check kept
     */
    public Config pekkoConfig(boolean clusterMember) {
        Map<String, Object> m = new HashMap<>();
        m.put("pekko.management.http.hostname", address);
        m.put("pekko.management.http.bind-hostname", address);
        m.put("pekko.management.http.port", port);
        m.put("pekko.management.http.bind-port", port);
        m.put("pekko.management.http.routes.opentmr", TmrRouteProvider.class.getName());
        m.put("pekko.management.health-checks.readiness-path", READINESS_PATH);
        m.put("pekko.management.health-checks.liveness-path", LIVENESS_PATH);
        m.put("pekko.management.health-checks.readiness-checks.opentmr", ReadinessCheck.class.getName());
        // The client's own address, for read-allow: never a header a client could forge.
        m.put("pekko.http.server.remote-address-attribute", "on");
        if (!clusterMember) {
            // pekko-management-cluster-http adds these; a process that is no cluster member must not load them.
            m.put("pekko.management.http.routes.cluster-management", "");
            m.put("pekko.management.health-checks.readiness-checks.cluster-membership", "");
        }
        return ConfigFactory.parseMap(m, "opentmr.management");
    }

    /** Whether {@code root} configures a cluster member. */
    public static boolean clusterMember(Config root) {
        return root.hasPath("pekko.actor.provider") && "cluster".equals(root.getString("pekko.actor.provider"));
    }
}
