package io.opentmr.client;

import io.opentmr.protocol.CodecLimits;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * How a {@link TmrClient} connects and how long it waits. Build one with {@link #builder()}; every
 * field but the addresses has a default.
 *
 * @param addresses           the servers to try, in order: the TMR nodes (or their virtual IP) or a
 *                            backend; on connection loss the client tries them round-robin
 * @param clientName          the program name sent in HELLO (default: the executable's file name)
 * @param host                the client host sent in HELLO (default: {@code HOSTNAME}/{@code COMPUTERNAME}
 *                            from the environment, else the local host name)
 * @param user                the user sent in HELLO (default: {@code user.name})
 * @param pid                 the process id sent in HELLO (default: this process's id)
 * @param connectTimeout      how long {@link TmrClient#connect(TmrClientOptions)} waits for the first
 *                            session, trying the addresses in turn (default 5 s)
 * @param attemptTimeout      bound on one connection attempt to one address: TCP connect plus the HELLO
 *                            answer (default 1 s). Short, so that an address that swallows packets (a
 *                            virtual IP not yet moved, a dead host) costs little of a fail-over
 * @param requestTimeout      bound on one request, including any time it waits for a reconnect
 *                            (default 10 s)
 * @param silenceTimeout      how long a connection may stay silent while a request waits on it (default
 *                            1 s): when a request sent on it has waited this long and nothing at all was
 *                            read from the connection for as long, the client sends a KEEPALIVE probe; if
 *                            still nothing is read within this time again, the connection counts as lost
 *                            (a frozen or cut-off server) and the client fails over as for a closed one.
 *                            A server that answers anything, the probe included, is alive: a slow
 *                            request keeps waiting, up to {@code requestTimeout}
 * @param maxInFlight         requests the caller threads may have outstanding at once; the next one
 *                            fails at once with 309 (default 256)
 * @param reconnectBackoffMin pause after the first round of addresses that all failed (default 100 ms)
 * @param reconnectBackoffMax the pause doubles per failed round up to this (default 1 s); for a request
 *                            timeout after a session was lost (a fail-over) at most 200 ms, so a client finds
 *                            a node that took over within 200 ms of it answering
 * @param codecLimits         limits on what the client accepts from a server
 */
public record TmrClientOptions(
        List<InetSocketAddress> addresses,
        String clientName,
        String host,
        String user,
        long pid,
        Duration connectTimeout,
        Duration attemptTimeout,
        Duration requestTimeout,
        Duration silenceTimeout,
        int maxInFlight,
        Duration reconnectBackoffMin,
        Duration reconnectBackoffMax,
        CodecLimits codecLimits) {

    /** The protocol's registered port, used for an address given without one. */
    public static final int DEFAULT_PORT = 22350;

    /** Checks every field; {@link Builder#build()} is the usual way here. */
    public TmrClientOptions {
        addresses = List.copyOf(addresses);
        if (addresses.isEmpty()) {
            throw new IllegalArgumentException("at least one server address is needed");
        }
        Objects.requireNonNull(clientName, "clientName");
        Objects.requireNonNull(host, "host");
        Objects.requireNonNull(user, "user");
        if (pid < 0 || pid > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("pid must fit 32 bits: " + pid);
        }
        positive(connectTimeout, "connectTimeout");
        positive(attemptTimeout, "attemptTimeout");
        positive(requestTimeout, "requestTimeout");
        positive(silenceTimeout, "silenceTimeout");
        positive(reconnectBackoffMin, "reconnectBackoffMin");
        positive(reconnectBackoffMax, "reconnectBackoffMax");
        if (reconnectBackoffMax.compareTo(reconnectBackoffMin) < 0) {
            throw new IllegalArgumentException("reconnectBackoffMax " + reconnectBackoffMax
                    + " is shorter than reconnectBackoffMin " + reconnectBackoffMin);
        }
        if (maxInFlight < 1) {
            throw new IllegalArgumentException("maxInFlight must be at least 1: " + maxInFlight);
        }
        Objects.requireNonNull(codecLimits, "codecLimits");
    }

    /** A builder with the defaults filled in from this process and its environment. */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Parses {@code HOST:PORT}, {@code [IPv6]:PORT} or a bare {@code HOST} (port {@value #DEFAULT_PORT}).
     * The host is not resolved here; the client resolves it at each connection attempt, so a DNS name
     * that moves is followed.
     *
     * @throws IllegalArgumentException if the text is not an address
     */
    public static InetSocketAddress parseAddress(String text) {
        String trimmed = text.trim();
        String host;
        int port = DEFAULT_PORT;
        if (trimmed.startsWith("[")) {
            int close = trimmed.indexOf(']');
            if (close < 0) {
                throw new IllegalArgumentException("unclosed '[' in address '" + text + "'");
            }
            host = trimmed.substring(1, close);
            String rest = trimmed.substring(close + 1);
            if (!rest.isEmpty()) {
                if (!rest.startsWith(":")) {
                    throw new IllegalArgumentException("expected ':PORT' after ']' in address '" + text + "'");
                }
                port = parsePort(rest.substring(1), text);
            }
        } else {
            int colon = trimmed.lastIndexOf(':');
            if (colon >= 0 && trimmed.indexOf(':') != colon) {
                throw new IllegalArgumentException("an IPv6 address needs brackets, e.g. [::1]:22350: '" + text + "'");
            }
            host = colon < 0 ? trimmed : trimmed.substring(0, colon);
            if (colon >= 0) {
                port = parsePort(trimmed.substring(colon + 1), text);
            }
        }
        if (host.isEmpty()) {
            throw new IllegalArgumentException("no host in address '" + text + "'");
        }
        return InetSocketAddress.createUnresolved(host, port);
    }

    private static int parsePort(String port, String text) {
        try {
            int value = Integer.parseInt(port);
            if (value < 1 || value > 0xFFFF) {
                throw new IllegalArgumentException("port out of range in address '" + text + "'");
            }
            return value;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad port in address '" + text + "'", e);
        }
    }

    private static void positive(Duration duration, String name) {
        Objects.requireNonNull(duration, name);
        if (duration.isNegative() || duration.isZero()) {
            throw new IllegalArgumentException(name + " must be positive: " + duration);
        }
    }

    /** Collects options; {@link #build()} checks them. Not thread-safe. */
    public static final class Builder {

        private final List<InetSocketAddress> addresses = new ArrayList<>();
        private String clientName = ProcessDefaults.CLIENT_NAME;
        private String host = ProcessDefaults.HOST;
        private String user = System.getProperty("user.name", "");
        private long pid = ProcessHandle.current().pid() & 0xFFFF_FFFFL;
        private Duration connectTimeout = Duration.ofSeconds(5);
        private Duration attemptTimeout = Duration.ofSeconds(1);
        private Duration requestTimeout = Duration.ofSeconds(10);
        private Duration silenceTimeout = Duration.ofSeconds(1);
        private int maxInFlight = 256;
        private Duration reconnectBackoffMin = Duration.ofMillis(100);
        private Duration reconnectBackoffMax = Duration.ofSeconds(1);
        private CodecLimits codecLimits = CodecLimits.DEFAULT;

        private Builder() {
        }

        /** Adds addresses as {@code HOST:PORT} strings (see {@link #parseAddress(String)}). */
        public Builder addresses(String... addresses) {
            for (String address : addresses) {
                this.addresses.add(parseAddress(address));
            }
            return this;
        }

        /** Adds addresses. */
        public Builder addresses(InetSocketAddress... addresses) {
            for (InetSocketAddress address : addresses) {
                this.addresses.add(Objects.requireNonNull(address, "address"));
            }
            return this;
        }

        /** Adds addresses. */
        public Builder addresses(List<InetSocketAddress> addresses) {
            return addresses(addresses.toArray(new InetSocketAddress[0]));
        }

        /** The program name sent in HELLO. */
        public Builder clientName(String clientName) {
            this.clientName = clientName;
            return this;
        }

        /** The client host name sent in HELLO; STATIONSHARE counts seats per host. */
        public Builder host(String host) {
            this.host = host;
            return this;
        }

        /** The user name sent in HELLO. */
        public Builder user(String user) {
            this.user = user;
            return this;
        }

        /** The process id sent in HELLO (0..2<sup>32</sup>-1). */
        public Builder pid(long pid) {
            this.pid = pid;
            return this;
        }

        /** How long the first connect waits; see {@link TmrClientOptions#connectTimeout()}. */
        public Builder connectTimeout(Duration connectTimeout) {
            this.connectTimeout = connectTimeout;
            return this;
        }

        /** Bound on one attempt at one address; see {@link TmrClientOptions#attemptTimeout()}. */
        public Builder attemptTimeout(Duration attemptTimeout) {
            this.attemptTimeout = attemptTimeout;
            return this;
        }

        /** Bound on every request, reconnects included; see {@link TmrClientOptions#requestTimeout()}. */
        public Builder requestTimeout(Duration requestTimeout) {
            this.requestTimeout = requestTimeout;
            return this;
        }

        /** Silence that starts a probe, and then ends the connection; see {@link TmrClientOptions#silenceTimeout()}. */
        public Builder silenceTimeout(Duration silenceTimeout) {
            this.silenceTimeout = silenceTimeout;
            return this;
        }

        /** Requests outstanding at once before the next fails with 309. */
        public Builder maxInFlight(int maxInFlight) {
            this.maxInFlight = maxInFlight;
            return this;
        }

        /** The pause between failed rounds of addresses starts at {@code min} and doubles up to {@code max}. */
        public Builder reconnectBackoff(Duration min, Duration max) {
            this.reconnectBackoffMin = min;
            this.reconnectBackoffMax = max;
            return this;
        }

        /** Limits on the frames the client accepts; the protocol's defaults suit every server. */
        public Builder codecLimits(CodecLimits codecLimits) {
            this.codecLimits = codecLimits;
            return this;
        }

        /**
         * @throws IllegalArgumentException if no address was given or a value is out of range
         */
        public TmrClientOptions build() {
            return new TmrClientOptions(addresses, clientName, host, user, pid, connectTimeout, attemptTimeout,
                    requestTimeout, silenceTimeout, maxInFlight, reconnectBackoffMin, reconnectBackoffMax, codecLimits);
        }

    }

    /** Looked up once per process: the local host name may need a DNS round trip. */
    private static final class ProcessDefaults {
        static final String CLIENT_NAME = defaultClientName();
        static final String HOST = defaultHost();

        private ProcessDefaults() {
        }

        private static String defaultClientName() {
            return ProcessHandle.current().info().command()
                    .map(command -> Path.of(command).getFileName())
                    .map(Path::toString)
                    .orElse("opentmr-client");
        }

        private static String defaultHost() {
            for (String variable : List.of("HOSTNAME", "COMPUTERNAME")) {
                String value = System.getenv(variable);
                if (value != null && !value.isBlank()) {
                    return value;
                }
            }
            try {
                return InetAddress.getLocalHost().getHostName();
            } catch (UnknownHostException e) {
                return "localhost";
            }
        }
    }
}
