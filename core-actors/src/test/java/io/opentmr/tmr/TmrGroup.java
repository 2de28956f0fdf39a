package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.opentmr.backend.Backend;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.license.VendorState;
import io.opentmr.peer.PeerConnection;
import io.opentmr.peer.PeerOptions;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.tmr.backend.PeerLink;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;

/**
 * Three backends on loopback (127.0.1.1..3, port 0, Pekko's in-memory journal) sharing a vendor key, a
 * cluster secret and a CmActId, and a TMR node over them whose links the test can cut (the backend is
 * unreachable: closed connection, refused reconnects) or pause (requests never answered: a frozen host).
 */
final class TmrGroup implements AutoCloseable {

    static final long FIRM = 6_000_010;
    static final long CM_ACT_ID = 7;
    static final String SECRET = "a-cluster-secret-of-more-than-32-characters";

    enum Mode { UP, CUT, PAUSED }

    private final Path dir;
    private final Clock clock;
    private final KeyPair vendor;
    private final Path secretFile;
    private final List<Backend> backends = new ArrayList<>();
    private final Mode[] modes = {Mode.UP, Mode.UP, Mode.UP};
    private final List<List<PeerLink>> links = List.of(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
    private final EventLoopGroup peerLoop = new NioEventLoopGroup(1);
    private VendorState vendorState = VendorState.empty();
    private TmrNode node;

    TmrGroup(Path dir, Clock clock) throws Exception {
        this.dir = dir;
        this.clock = clock;
        this.vendor = VendorKeyFiles.generate(dir.resolve("vendor"));
        this.secretFile = dir.resolve("secret");
        Files.writeString(secretFile, SECRET + "\n");
        for (int i = 1; i <= 3; i++) {
            Map<String, Object> settings = new HashMap<>(Map.of(
                    "opentmr.backend.address", "127.0.1." + i,
                    "opentmr.backend.port", 0,
                    "opentmr.backend.data-dir", dir.resolve("backend-" + i).toString(),
                    "opentmr.backend.vendor-keys", List.of(dir.resolve("vendor/vendor.pub").toString()),
                    "opentmr.backend.cm-act-id", CM_ACT_ID,
                    "opentmr.cluster.secret-file", secretFile.toString(),
                    "pekko.persistence.journal.plugin", "pekko.persistence.journal.inmem",
                    "pekko.persistence.snapshot-store.plugin", "pekko.persistence.no-snapshot-store"));
            Config config = ConfigFactory.parseMap(settings).withFallback(ConfigFactory.load());
            backends.add(Backend.start(config, clock));
        }
    }

    Backend backend(int index) {
        return backends.get(index);
    }

    /** Issues a TMR license for the three containers and imports each copy into its backend. */
    void issueTmr(LicenseIssuer.Request request) throws Exception {
        LicenseIssuer.Result result = issueOnly(request);
        for (int i = 0; i < 3; i++) {
            importFile(i, result.files().get(i));
        }
    }

    /** Issues a TMR license but imports nothing (the test imports a differently issued copy, or none). */
    LicenseIssuer.Result issueOnly(LicenseIssuer.Request request) throws Exception {
        List<ContainerContext> contexts = new ArrayList<>();
        for (Backend backend : backends) {
            try (RawConnection admin = new RawConnection(backend.address())) {
                admin.hello();
                Message context = admin.request(new Message.LicenseContext("", Serial.NONE));
                contexts.add(ContainerContext.parse(((Message.LicenseContextOk) context).context().toArray()));
            }
        }
        LicenseIssuer.Result result = new LicenseIssuer(vendor.getPrivate(), vendor.getPublic(), clock,
                new SecureRandom()).issue(vendorState, contexts, request);
        vendorState = result.state();
        return result;
    }

    VendorState vendorState() {
        return vendorState;
    }

    /** Issue again as if the last issue had not happened: the same TMR-Id, a different copy. */
    void resetVendorState(VendorState state) {
        this.vendorState = state;
    }

    void importFile(int backend, LicenseIssuer.Issued issued) throws Exception {
        try (RawConnection admin = new RawConnection(backends.get(backend).address())) {
            admin.hello();
            Message applied = admin.request(new Message.LicenseUpdate("", Bytes.of(issued.file().toJson())));
            assertInstanceOf(Message.LicenseUpdateOk.class, applied, applied.toString());
        }
    }

    static LicenseIssuer.Request seats(long product, long quantity) {
        return new LicenseIssuer.Request(FIRM, product, quantity, true, null, null, null, null, null, 0xFF, "seats");
    }

    static LicenseIssuer.Request units(long product, long units) {
        return new LicenseIssuer.Request(FIRM, product, 100, true, units, null, null, null, null, 0, "units");
    }

    TmrNode startNode(Map<String, Object> overrides) {
        Map<String, Object> settings = new HashMap<>(Map.of(
                "opentmr.node.address", "127.0.2.1",
                "opentmr.node.port", 0,
                "opentmr.node.data-dir", dir.resolve("node").toString(),
                "opentmr.node.backends", backends.stream().map(b -> b.address().getAddress().getHostAddress() + ":"
                        + b.address().getPort()).toList(),
                "opentmr.node.backend-timeout", "500ms",
                "opentmr.node.name", "test-node",
                "opentmr.cluster.secret-file", secretFile.toString(),
                "pekko.persistence.journal.plugin", "pekko.persistence.journal.inmem",
                "pekko.persistence.snapshot-store.plugin", "pekko.persistence.no-snapshot-store"));
        settings.putAll(overrides);
        Config config = ConfigFactory.parseMap(settings).withFallback(ConfigFactory.load());
        node = TmrNode.start(config, clock, this::connect);
        return node;
    }

    Path secretFile() {
        return secretFile;
    }

    TmrNode node() {
        return node;
    }

    InetSocketAddress nodeAddress() {
        return node.address();
    }

    /** Makes a backend unreachable (cut), frozen (paused) or reachable again (up). */
    synchronized void set(int backend, Mode mode) {
        modes[backend] = mode;
        if (mode == Mode.CUT) {
            links.get(backend).forEach(PeerLink::close);
            links.get(backend).clear();
        }
    }

    private CompletionStage<PeerLink> connect(InetSocketAddress address) {
        int index = -1;
        for (int i = 0; i < 3; i++) {
            InetSocketAddress own = backends.get(i).address();
            if (own.getPort() == address.getPort() && own.getHostString().equals(address.getHostString())) {
                index = i;
            }
        }
        int backend = index;
        synchronized (this) {
            if (backend < 0 || modes[backend] == Mode.CUT) {
                return CompletableFuture.failedFuture(new java.net.ConnectException("backend cut off by the test"));
            }
        }
        InetSocketAddress resolved = new InetSocketAddress(address.getHostString(), address.getPort());
        try {
            return PeerConnection.connect(resolved, "test-node", PeerAuth.fromFile(secretFile),
                    new PeerOptions(Duration.ofSeconds(2), Duration.ofSeconds(2), 1024,
                            io.opentmr.protocol.CodecLimits.DEFAULT), peerLoop)
                    .thenApply(connection -> {
                        PeerLink real = PeerLink.of(connection);
                        PeerLink link = new PeerLink() {
                            @Override
                            public CompletionStage<Message> request(Message request) {
                                synchronized (TmrGroup.this) {
                                    if (modes[backend] == Mode.PAUSED) {
                                        // A frozen host: the request is never answered.
                                        return new CompletableFuture<>();
                                    }
                                }
                                return real.request(request);
                            }

                            @Override
                            public CompletionStage<Void> closed() {
                                return real.closed();
                            }

                            @Override
                            public String backendName() {
                                return real.backendName();
                            }

                            @Override
                            public void close() {
                                real.close();
                            }
                        };
                        synchronized (TmrGroup.this) {
                            links.get(backend).add(link);
                        }
                        return link;
                    });
        } catch (IllegalArgumentException e) {
            return CompletableFuture.failedFuture(e);
        }
    }

    /** The allocations one backend holds, through a peer connection of its own. */
    List<io.opentmr.protocol.Allocation> allocations(int backend) throws Exception {
        InetSocketAddress address = backends.get(backend).address();
        try (PeerConnection peer = PeerConnection.connect(address, "test-inspector", PeerAuth.fromFile(secretFile),
                PeerOptions.defaults(), peerLoop).get(10, TimeUnit.SECONDS)) {
            List<io.opentmr.protocol.Allocation> all = new ArrayList<>();
            long after = 0;
            while (true) {
                Message reply = peer.request(new Message.ListAllocations(after, 500)).get(10, TimeUnit.SECONDS);
                Message.AllocationList page = (Message.AllocationList) reply;
                all.addAll(page.allocations());
                if (!page.more() || page.allocations().isEmpty()) {
                    return all;
                }
                after = page.allocations().get(page.allocations().size() - 1).tmrHandleId();
            }
        }
    }

    static int code(Throwable failure) {
        Throwable cause = failure;
        while (cause != null && !(cause instanceof CmFailure)) {
            cause = cause.getCause();
        }
        return cause == null ? -1 : ((CmFailure) cause).code();
    }

    static final int QUORUM_LOST = CmError.REDUNDANCY_SERVER_MISSING.code();

    @Override
    public void close() {
        if (node != null) {
            node.close();
        }
        backends.forEach(Backend::close);
        peerLoop.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
