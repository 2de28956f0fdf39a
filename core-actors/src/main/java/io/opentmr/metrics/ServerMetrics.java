package io.opentmr.metrics;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.server.RequestObserver;
import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.datapoints.DistributionDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.instrumentation.jvm.JvmMetrics;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.MetricSnapshots;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.DoubleSupplier;

/**
 * The metrics of one server (a backend or a TMR node), in a registry of its own: several servers in one JVM
 * (the tests) each show their own numbers. Served as {@code /metrics} by management HTTP; every name of ours
 * starts with {@code opentmr_} ({@code docs/management-http.md} lists them), beside the JVM's ({@code jvm_},
 * {@code process_}).
 *
 * <p>On the request path only counters and histograms are touched, through data points looked up once, so
 * an answered request costs a few atomic additions and allocates nothing.
 */
public final class ServerMetrics implements RequestObserver {

    /** Seconds: 100 µs to 10 s, the range of a request from an in-memory answer to a timeout. */
    static final double[] REQUEST_BUCKETS = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 0.5, 1, 2.5, 5, 10};
    /** Seconds: a journal write with its fsync, 100 µs to 5 s. */
    static final double[] JOURNAL_BUCKETS = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 0.5, 1, 2.5, 5};
    /** Error numbers below this have their denial counters cached; larger ones are looked up per denial. */
    private static final int CACHED_CODES = 512;
    /** The peer writes that carry a lease certificate: a 134 answer to one of them is a refused certificate. */
    private static final Set<MessageType> CERTIFIED = EnumSet.of(MessageType.ALLOCATE, MessageType.FREE,
            MessageType.PEER_CRYPT, MessageType.PEER_UNITS);

    /**
     * The JVM's metrics, registered once per JVM and shown by every server in it: registering them per server would
     * keep every server's registry (the client remembers them) and add GC listeners at each start.
     */
    private static final PrometheusRegistry JVM = jvm();

    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final Counter accesses;
    private final Counter denials;
    private final Counter certificateRefusals;
    private final Histogram journalWrites;
    private final DistributionDataPoint[] latency = new DistributionDataPoint[MessageType.values().length];
    private final AtomicReferenceArray<CounterDataPoint> denialPoints =
            new AtomicReferenceArray<>(MessageType.values().length * CACHED_CODES);

    /** @param component {@code backend} or {@code node}: named in the help texts only */
    public ServerMetrics(String component) {
        accesses = Counter.builder().name("opentmr_accesses")
                .help("ACCESS requests granted by this " + component + " (a handle opened, or a repeated ACCESS "
                        + "answered with its handle)")
                .withoutExemplars().register(registry);
        denials = Counter.builder().name("opentmr_denials")
                .help("Requests this " + component + " answered with an ERROR, by request type and CodeMeter error "
                        + "number (docs/protocol.md)")
                .labelNames("request", "error").withoutExemplars().register(registry);
        certificateRefusals = Counter.builder().name("opentmr_certificate_refusals")
                .help("Peer writes (ALLOCATE, FREE, PEER_CRYPT, PEER_UNITS) refused with ERROR 134: a missing, "
                        + "forged, expired or stale lease certificate")
                .withoutExemplars().register(registry);
        Histogram requests = Histogram.builder().name("opentmr_request_duration_seconds")
                .help("From reading a request to writing its answer, by request type")
                .labelNames("request").classicOnly().classicUpperBounds(REQUEST_BUCKETS).withoutExemplars()
                .register(registry);
        for (MessageType type : MessageType.values()) {
            if (type.direction() == MessageType.Direction.CLIENT_TO_SERVER
                    || type.direction() == MessageType.Direction.NODE_TO_BACKEND) {
                latency[type.ordinal()] = requests.labelValues(type.name());
            }
        }
        journalWrites = Histogram.builder().name("opentmr_journal_write_seconds")
                .help("From handing events to the journal to their write being acknowledged (fsync included), "
                        + "as the " + component + "'s actors wait for it")
                .classicOnly().classicUpperBounds(JOURNAL_BUCKETS).withoutExemplars().register(registry);
    }

    private static PrometheusRegistry jvm() {
        PrometheusRegistry jvm = new PrometheusRegistry();
        JvmMetrics.builder().register(jvm);
        return jvm;
    }

    /** The server's own metrics (the JVM's are in {@link #scrape}). */
    public PrometheusRegistry registry() {
        return registry;
    }

    /** Everything this server shows under {@code /metrics}: its own metrics and the JVM's. */
    public MetricSnapshots scrape() {
        MetricSnapshots.Builder all = MetricSnapshots.builder();
        registry.scrape().forEach(all::metricSnapshot);
        JVM.scrape().forEach(all::metricSnapshot);
        return all.build();
    }

    @Override
    public void answered(MessageType request, Message reply, long nanos) {
        DistributionDataPoint histogram = latency[request.ordinal()];
        if (histogram != null) {
            histogram.observe(nanos / 1e9);
        }
        if (reply instanceof Message.Error error) {
            denial(request, error.code()).inc();
            if (error.code() == CmError.TMR_LEASE_REFUSED.code() && CERTIFIED.contains(request)) {
                certificateRefusals.inc();
            }
        } else if (request == MessageType.ACCESS && reply instanceof Message.AccessOk) {
            accesses.inc();
        }
    }

    private CounterDataPoint denial(MessageType request, int code) {
        if (code < 0 || code >= CACHED_CODES) {
            return denials.labelValues(request.name(), Integer.toString(code));
        }
        int index = request.ordinal() * CACHED_CODES + code;
        CounterDataPoint point = denialPoints.get(index);
        if (point == null) {
            // Racing lookups get the same data point: the counter keeps one per label values.
            point = denials.labelValues(request.name(), Integer.toString(code));
            denialPoints.set(index, point);
        }
        return point;
    }

    /** A journal write the server's actors waited for, in nanoseconds. */
    public void journalWrite(long nanos) {
        journalWrites.observe(nanos / 1e9);
    }

    /** A gauge without labels whose value is read at each scrape (keep {@code value} cheap and thread-safe). */
    public void gauge(String name, String help, DoubleSupplier value) {
        GaugeWithCallback.builder().name(name).help(help).callback(callback -> callback.call(value.getAsDouble()))
                .register(registry);
    }
}
