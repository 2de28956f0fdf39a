package io.opentmr.tmr;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import io.opentmr.access.AccessList;
import io.opentmr.protocol.AdminToken;
import io.opentmr.protocol.CodecLimits;
import io.opentmr.protocol.NodeName;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.protocol.Serial;
import io.opentmr.runtime.ProcessThreads;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.DateTimeException;
import java.time.Duration;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * {@code opentmr.node.*}, read once at start. A bad value fails here with a {@link ConfigException}
 * that names the key, before anything listens or connects.
 *
 * @param nodeName         who this node is to the backends: bound into the peer challenge, the lease holder
 * @param backends         the three backends of the group, in a fixed order (their index is their name in logs)
 * @param virtualSerial    the virtual container's serial; empty: random once, then kept in the data dir
 * @param virtualSerials   the serials of the virtual containers of other CmActIds (docs/several-containers.md), by
 *                         CmActId; one not given: random once (a twin: derived), then kept in the data dir
 * @param heartbeat        how often a backend is asked to renew the lease (its heartbeat)
 * @param missedHeartbeats unanswered heartbeats after which a backend counts as down
 * @param backendTimeout   bound on every request to a backend
 * @param leaseTtl         lifetime of a lease grant without renewal
 * @param acquireRetry     how soon a backend that refused the lease (held by another node) is asked again while the
 *                         node wants it, rather than at the next heartbeat
 * @param reconcileTimeout how long the node waits, once it holds the lease, for every license to be re-synced
 *                         before it serves anyway (those not re-synced answer 130 until they are)
 * @param helloWait        how long a HELLO waits for a node that holds the lease but is still taking over to serve
 * @param leaseOnRequest   false: the node always asks the backends for the active lease (a single node); true:
 *                         only while a {@code BackendQuorumLease} acquires it (a twin, the singleton's lease)
 * @param accessList       which clients may connect, as configured at start ({@link #accessList(Config)} reloads it)
 * @param trackingZone     the time zone whose midnight rotates the tracking log
 * @param standbyListingInterval how often a twin's standby lists the backends' allocations to keep the take-over's
 *                               listing code compiled (zero: never)
 * @param trackingRecoveryDelay how long after the licenses recovered the tracking log looks for the lines of
 *                         journaled events its files lack ({@code tracking.recovery-delay}; zero: at once)
 * @param adminToken       the installation's admin token ({@value AdminToken#TOKEN_FILE_KEY}): admin messages
 *                         from another host than loopback need it; empty: loopback only
 * @param threads          the process's threads ({@link ProcessThreads}): client I/O, the actors' dispatcher
 */
public record NodeSettings(
        String address,
        int port,
        Path dataDir,
        List<InetSocketAddress> backends,
        Optional<Serial> virtualSerial,
        java.util.Map<Long, Serial> virtualSerials,
        PeerAuth peerAuth,
        String nodeName,
        Duration heartbeat,
        int missedHeartbeats,
        int inventoryEvery,
        Duration backendTimeout,
        Duration leaseTtl,
        Duration acquireRetry,
        Duration reconnectMin,
        Duration reconnectMax,
        Duration cleanupTimeout,
        Duration keepAliveInterval,
        int snapshotEvery,
        int maxConnections,
        int maxInFlightPerConnection,
        Duration helloTimeout,
        Duration requestTimeout,
        CodecLimits codecLimits,
        Duration reconcileTimeout,
        Duration helloWait,
        boolean leaseOnRequest,
        AccessList accessList,
        ZoneId trackingZone,
        Duration trackingRecoveryDelay,
        Duration standbyListingInterval,
        Optional<AdminToken> adminToken,
        ProcessThreads threads) {

    public static final String PATH = "opentmr.node";

    public static NodeSettings from(Config root) {
        Config c = root.getConfig(PATH);
        String dataDir = c.getString("data-dir");
        if (dataDir.isBlank()) {
            throw new ConfigException.BadValue(PATH + ".data-dir", "must name the node's data directory");
        }
        int port = c.getInt("port");
        if (port < 0 || port > 65_535) {
            throw new ConfigException.BadValue(PATH + ".port", "must be 0..65535, not " + port);
        }
        List<InetSocketAddress> backends = new ArrayList<>();
        for (String entry : c.getStringList("backends")) {
            backends.add(hostPort(entry));
        }
        if (backends.size() != 3) {
            throw new ConfigException.BadValue(PATH + ".backends",
                    "must name the 3 backends of the TMR group as HOST:PORT, not " + backends.size());
        }
        if (backends.stream().distinct().count() != 3) {
            throw new ConfigException.BadValue(PATH + ".backends", "names one backend twice: " + backends);
        }
        Optional<Serial> virtualSerial = Optional.empty();
        String serialText = c.getString("virtual-serial").strip();
        if (!serialText.isEmpty()) {
            Serial serial;
            try {
                serial = Serial.parse(serialText);
            } catch (IllegalArgumentException e) {
                throw new ConfigException.BadValue(PATH + ".virtual-serial", e.getMessage());
            }
            if (serial.mask() != Serial.MASK_VIRTUAL_TMR) {
                throw new ConfigException.BadValue(PATH + ".virtual-serial",
                        "a virtual TMR container's serial has mask 131 (131-n), not " + serialText);
            }
            virtualSerial = Optional.of(serial);
        }
        java.util.Map<Long, Serial> virtualSerials = new java.util.TreeMap<>();
        com.typesafe.config.ConfigObject serialsObject = c.getObject("virtual-serials");
        for (String key : serialsObject.keySet()) {
            String setting = PATH + ".virtual-serials." + key;
            long cmActId;
            try {
                cmActId = Long.parseLong(key.strip());
            } catch (NumberFormatException e) {
                throw new ConfigException.BadValue(setting, "the key is a CmActId (a number), not " + key);
            }
            if (cmActId <= 0 || cmActId > 0xFFFF_FFFFL) {
                throw new ConfigException.BadValue(setting, "a CmActId is 1..4294967295");
            }
            Serial serial;
            try {
                serial = Serial.parse(serialsObject.toConfig().getString("\"" + key + "\"").strip());
            } catch (IllegalArgumentException | ConfigException.WrongType e) {
                throw new ConfigException.BadValue(setting, e.getMessage());
            }
            if (serial.mask() != Serial.MASK_VIRTUAL_TMR) {
                throw new ConfigException.BadValue(setting, "a virtual TMR container's serial has mask 131 (131-n), "
                        + "not " + serial);
            }
            if (virtualSerials.containsValue(serial) || virtualSerial.filter(serial::equals).isPresent()) {
                throw new ConfigException.BadValue(setting, "serial " + serial + " is given to another virtual "
                        + "container too");
            }
            virtualSerials.put(cmActId, serial);
        }
        PeerAuth auth;
        try {
            auth = PeerAuth.fromSetting(root.getString(PeerAuth.SECRET_FILE_KEY)).orElseThrow(() ->
                    new ConfigException.BadValue(PeerAuth.SECRET_FILE_KEY,
                            "a TMR node needs the cluster secret of its backends"));
        } catch (IllegalArgumentException e) {
            throw new ConfigException.BadValue(PeerAuth.SECRET_FILE_KEY, e.getMessage());
        }
        String name = c.getString("name").strip();
        if (name.isEmpty()) {
            throw new ConfigException.BadValue(PATH + ".name", "must name this node (e.g. node-a): the backends "
                    + "hold the active lease under this name, so each node of a group needs its own");
        }
        String badName = NodeName.problem(name);
        if (badName != null) {
            throw new ConfigException.BadValue(PATH + ".name", badName);
        }
        int maxFrame = c.getInt("limits.max-frame-bytes");
        if (maxFrame < 1024) {
            throw new ConfigException.BadValue(PATH + ".limits.max-frame-bytes", "must be at least 1024");
        }
        Duration heartbeat = positive(c, "heartbeat-interval");
        Duration leaseTtl = positive(c, "lease-ttl");
        if (heartbeat.multipliedBy(2).compareTo(leaseTtl) > 0) {
            throw new ConfigException.BadValue(PATH + ".heartbeat-interval", "must be at most half of "
                    + PATH + ".lease-ttl, or the lease lapses between two renewals");
        }
        Duration acquireRetry = positive(c, "acquire-retry");
        if (acquireRetry.compareTo(heartbeat) > 0) {
            throw new ConfigException.BadValue(PATH + ".acquire-retry", "must be at most " + PATH
                    + ".heartbeat-interval (" + heartbeat.toMillis() + " ms): a refused lease is asked again at the "
                    + "next heartbeat anyway");
        }
        if (c.getDuration("keep-alive-interval").compareTo(c.getDuration("cleanup-timeout")) >= 0) {
            throw new ConfigException.BadValue(PATH + ".keep-alive-interval", "must be shorter than "
                    + PATH + ".cleanup-timeout");
        }
        return new NodeSettings(c.getString("address"), port, Path.of(dataDir), List.copyOf(backends), virtualSerial,
                java.util.Collections.unmodifiableMap(virtualSerials), auth, name,
                heartbeat, atLeastOne(c, "missed-heartbeats"), atLeastOne(c, "inventory-every"),
                positive(c, "backend-timeout"), leaseTtl, acquireRetry, positive(c, "reconnect.min-backoff"),
                positive(c, "reconnect.max-backoff"), positive(c, "cleanup-timeout"),
                positive(c, "keep-alive-interval"), atLeastOne(c, "snapshot-every"),
                atLeastOne(c, "limits.max-connections"), atLeastOne(c, "limits.max-in-flight-per-connection"),
                positive(c, "limits.hello-timeout"), positive(c, "limits.request-timeout"),
                new CodecLimits(maxFrame, CodecLimits.DEFAULT.maxStringBytes(), CodecLimits.DEFAULT.maxListItems()),
                positive(c, "reconcile-timeout"), positive(c, "hello-wait"), c.getBoolean("lease-on-request"), accessList(root),
                trackingZone(c), notNegative(c, "tracking.recovery-delay"), notNegative(c, "standby-listing-interval"),
                adminToken(root),
                ProcessThreads.from(c, PATH));
    }

    private static Optional<AdminToken> adminToken(Config root) {
        try {
            return AdminToken.fromSetting(root.hasPath(AdminToken.TOKEN_FILE_KEY)
                    ? root.getString(AdminToken.TOKEN_FILE_KEY) : "");
        } catch (IllegalArgumentException e) {
            throw new ConfigException.BadValue(AdminToken.TOKEN_FILE_KEY, e.getMessage());
        }
    }

    /**
     * {@code opentmr.node.access-list} of a configuration: at start, and again on a reload.
     *
     * @throws ConfigException naming the key and the first rule that is neither address, CIDR block nor name
     */
    public static AccessList accessList(Config root) {
        return AccessList.fromConfig(root, PATH + ".access-list");
    }

    private static ZoneId trackingZone(Config c) {
        String zone = c.getString("tracking.zone").strip();
        if (zone.isEmpty()) {
            return ZoneId.systemDefault();
        }
        try {
            return ZoneId.of(zone);
        } catch (DateTimeException e) {
            throw new ConfigException.BadValue(PATH + ".tracking.zone", "not a time zone: " + e.getMessage());
        }
    }

    private static InetSocketAddress hostPort(String entry) {
        int colon = entry.lastIndexOf(':');
        try {
            if (colon <= 0) {
                throw new IllegalArgumentException("no port");
            }
            String host = entry.substring(0, colon).replace("[", "").replace("]", "");
            int port = Integer.parseInt(entry.substring(colon + 1));
            if (port <= 0 || port > 65_535) {
                throw new IllegalArgumentException("port out of range");
            }
            return InetSocketAddress.createUnresolved(host, port);
        } catch (IllegalArgumentException e) {
            throw new ConfigException.BadValue(PATH + ".backends", "'" + entry + "' is not HOST:PORT (" + e.getMessage()
                    + ")");
        }
    }

    private static Duration positive(Config c, String key) {
        Duration value = c.getDuration(key);
        if (value.isNegative() || value.isZero()) {
            throw new ConfigException.BadValue(PATH + "." + key, "must be positive");
        }
        return value;
    }

    private static Duration notNegative(Config c, String key) {
        Duration value = c.getDuration(key);
        if (value.isNegative()) {
            throw new ConfigException.BadValue(PATH + "." + key, "must not be negative");
        }
        return value;
    }

    private static int atLeastOne(Config c, String key) {
        int value = c.getInt(key);
        if (value < 1) {
            throw new ConfigException.BadValue(PATH + "." + key, "must be at least 1");
        }
        return value;
    }
}
