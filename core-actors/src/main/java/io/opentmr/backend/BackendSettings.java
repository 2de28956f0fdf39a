package io.opentmr.backend;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import io.opentmr.access.AccessList;
import io.opentmr.protocol.AdminToken;
import io.opentmr.protocol.CodecLimits;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.runtime.ProcessThreads;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * {@code opentmr.backend.*}, read once at start. A bad value fails here with a
 * {@link ConfigException} that names the key, before anything listens.
 */
public record BackendSettings(
        String address,
        int port,
        Path dataDir,
        List<Path> vendorKeys,
        long cmActId,
        List<Long> additionalContainers,
        Duration cleanupTimeout,
        int snapshotEvery,
        Duration keepAliveInterval,
        String adminToken,
        AccessList accessList,
        int maxConnections,
        int maxInFlightPerConnection,
        int maxQueuedRequests,
        Duration helloTimeout,
        Duration requestTimeout,
        CodecLimits codecLimits,
        Optional<PeerAuth> peerAuth,
        Lease lease,
        Units units,
        int maxInFlightPerPeer,
        ProcessThreads threads) {

    public static final String PATH = "opentmr.backend";

    /**
     * {@code opentmr.backend.lease.*}: the leases this backend grants TMR nodes and the certificates it accepts.
     *
     * @param maxTtl    the longest TTL a grant gets, whatever the node asks
     * @param clockSkew how far a grantor's clock may be behind or ahead of this one when a certificate's grants
     *                  are checked (expiry; issue times in the future)
     */
    public record Lease(Duration maxTtl, Duration clockSkew) {

        public static final Lease DEFAULT = new Lease(Duration.ofSeconds(60), Duration.ofSeconds(1));
    }

    /**
     * {@code opentmr.backend.units.*}: how PEER_UNITS operation ids are remembered for retries.
     *
     * @param retryMemory   how long an operation's result is remembered: at least the SDK's retry window
     * @param maxRemembered operations of that window remembered at most; beyond, new ones are refused (309)
     */
    public record Units(Duration retryMemory, int maxRemembered) {

        /** The SDK retries within this window (the twin's fail-over timeout); a shorter memory is refused. */
        public static final Duration SDK_RETRY_WINDOW = Duration.ofSeconds(10);

        public static final Units DEFAULT = new Units(Duration.ofSeconds(30), 100_000);
    }

    public static BackendSettings from(Config root) {
        Config c = root.getConfig(PATH);
        String dataDir = c.getString("data-dir");
        if (dataDir.isBlank()) {
            throw new ConfigException.BadValue(PATH + ".data-dir", "must name the backend's data directory");
        }
        int port = c.getInt("port");
        // 0 asks the system for a free port: tests and one-off runs.
        if (port < 0 || port > 65_535) {
            throw new ConfigException.BadValue(PATH + ".port", "must be 0..65535, not " + port);
        }
        long cmActId = c.getLong("cm-act-id");
        if (cmActId <= 0 || cmActId > 0xFFFF_FFFFL) {
            throw new ConfigException.BadValue(PATH + ".cm-act-id", "must be 1..4294967295, not " + cmActId);
        }
        List<Long> additional = c.getLongList("additional-containers");
        java.util.Set<Long> distinct = new java.util.HashSet<>(List.of(cmActId));
        for (long more : additional) {
            if (more <= 0 || more > 0xFFFF_FFFFL) {
                throw new ConfigException.BadValue(PATH + ".additional-containers", "CmActIds are 1..4294967295, not "
                        + more);
            }
            if (!distinct.add(more)) {
                throw new ConfigException.BadValue(PATH + ".additional-containers", "CmActId " + more
                        + " twice: a backend holds one container per CmActId");
            }
        }
        List<Path> vendorKeys = c.getStringList("vendor-keys").stream().map(Path::of).toList();
        AccessList accessList = AccessList.fromConfig(root, PATH + ".access-list");
        int maxFrame = c.getInt("limits.max-frame-bytes");
        if (maxFrame < 1024) {
            throw new ConfigException.BadValue(PATH + ".limits.max-frame-bytes", "must be at least 1024");
        }
        if (c.getDuration("keep-alive-interval").compareTo(c.getDuration("cleanup-timeout")) >= 0) {
            throw new ConfigException.BadValue(PATH + ".keep-alive-interval", "must be shorter than "
                    + PATH + ".cleanup-timeout, or clients that do keep their sessions alive lose their handles");
        }
        Optional<PeerAuth> peers = peerAuth(root);
        ProcessThreads threads = ProcessThreads.from(c, PATH);
        if (threads.actorsOnIo() && peers.isPresent()) {
            throw new ConfigException.BadValue(PATH + ".threads.actors-on-io", "must be off on a backend that TMR "
                    + "nodes use (" + PeerAuth.SECRET_FILE_KEY + " is set): a node's lease renewals would wait behind a "
                    + "journal write that the disk holds up on the I/O thread that reads them");
        }
        return new BackendSettings(c.getString("address"), port, Path.of(dataDir), vendorKeys, cmActId,
                List.copyOf(additional), positive(c, "cleanup-timeout"), atLeastOne(c, "snapshot-every"), positive(c, "keep-alive-interval"), adminToken(root, c),
                accessList, atLeastOne(c, "limits.max-connections"), atLeastOne(c, "limits.max-in-flight-per-connection"),
                atLeastOne(c, "limits.max-queued-requests"),
                positive(c, "limits.hello-timeout"), positive(c, "limits.request-timeout"),
                new CodecLimits(maxFrame, CodecLimits.DEFAULT.maxStringBytes(), CodecLimits.DEFAULT.maxListItems()),
                peers, new Lease(positive(c, "lease.max-ttl"), notNegative(c, "lease.clock-skew")),
                units(c), atLeastOne(c, "limits.max-in-flight-per-peer"), threads);
    }

    private static Units units(Config c) {
        Duration memory = c.getDuration("units.retry-memory");
        if (memory.compareTo(Units.SDK_RETRY_WINDOW) < 0) {
            throw new ConfigException.BadValue(PATH + ".units.retry-memory", "must be at least "
                    + Units.SDK_RETRY_WINDOW.toSeconds() + "s, the window in which a retry may come, not " + memory);
        }
        return new Units(memory, atLeastOne(c, "units.max-remembered"));
    }

    private static Duration notNegative(Config c, String key) {
        Duration value = c.getDuration(key);
        if (value.isNegative()) {
            throw new ConfigException.BadValue(PATH + "." + key, "must not be negative, not " + value);
        }
        return value;
    }

    /**
     * {@code admin-token} as given, or else the content of the installation's admin token file
     * ({@value AdminToken#TOKEN_FILE_KEY}); empty: admin requests from loopback only.
     */
    private static String adminToken(Config root, Config c) {
        String given = c.getString("admin-token");
        if (!given.isEmpty()) {
            return given;
        }
        try {
            return AdminToken.fromSetting(root.hasPath(AdminToken.TOKEN_FILE_KEY)
                    ? root.getString(AdminToken.TOKEN_FILE_KEY) : "").map(AdminToken::value).orElse("");
        } catch (IllegalArgumentException e) {
            throw new ConfigException.BadValue(AdminToken.TOKEN_FILE_KEY, e.getMessage());
        }
    }

    /** The peer side is on only with a cluster secret. */
    public static Optional<PeerAuth> peerAuth(Config root) {
        try {
            return PeerAuth.fromSetting(root.hasPath(PeerAuth.SECRET_FILE_KEY)
                    ? root.getString(PeerAuth.SECRET_FILE_KEY) : "");
        } catch (IllegalArgumentException e) {
            throw new ConfigException.BadValue(PeerAuth.SECRET_FILE_KEY, e.getMessage());
        }
    }

    private static Duration positive(Config c, String key) {
        Duration value = c.getDuration(key);
        if (value.isZero() || value.isNegative()) {
            throw new ConfigException.BadValue(PATH + "." + key, "must be a positive duration, not " + value);
        }
        return value;
    }

    private static int atLeastOne(Config c, String key) {
        int value = c.getInt(key);
        if (value < 1) {
            throw new ConfigException.BadValue(PATH + "." + key, "must be at least 1, not " + value);
        }
        return value;
    }
}
