package io.opentmr.testing;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.opentmr.backend.Backend;
import io.opentmr.client.CmException;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.ProductItemSpec;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.license.VendorState;
import io.opentmr.peer.PeerConnection;
import io.opentmr.peer.PeerOptions;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.CodecLimits;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.tmr.TmrNode;
import io.opentmr.tmr.VirtualContainer;
import io.opentmr.tmr.backend.PeerLink;
import java.io.IOException;
import java.net.ConnectException;
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
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * A TMR group in one JVM for backend and node tests: three real backends on 127.0.1.1..3 (loopback only,
 * port 0 at first, the same port after a restart) sharing a vendor key, a cluster secret and a CmActId,
 * each on our own journal in its data directory, and optionally a TMR node on 127.0.2.1 over them.
 *
 * <p>What a test can do to it: issue TMR licenses (three copies) and ordinary ones; {@link #kill} a backend
 * and {@link #restart} it on its data; and, between the node and a backend, {@link LinkControl#cut() cut}
 * the link, {@link LinkControl#freeze() freeze} it (answers withheld) or {@link LinkControl#delay delay}
 * and so reorder its answers. Backend tests talk to the backends as a node would through {@link #peer}.
 * Like Ratis' MiniRaftCluster: members are killed and restarted, the test asserts what clients saw.
 */
public final class TmrTestGroup implements AutoCloseable {

    public static final long FIRM = 6_000_010;
    public static final long CM_ACT_ID = 7;
    public static final String SECRET = "a-cluster-secret-of-more-than-32-characters";
    public static final int QUORUM_LOST = CmError.REDUNDANCY_SERVER_MISSING.code();
    public static final String NODE_NAME = "test-node";

    private final Path dir;
    private final Clock clock;
    private final KeyPair vendor;
    private final Path secretFile;
    private final PeerAuth auth;
    private final Map<String, Object> backendOverrides;
    private final java.util.function.IntFunction<Map<String, Object>> perBackend;
    private final java.util.function.IntFunction<Clock> backendClocks;
    private final Backend[] backends = new Backend[3];
    private final int[] ports = new int[3];
    private final LinkControl[] links = new LinkControl[3];
    private final EventLoopGroup peerLoop = new NioEventLoopGroup(1);
    private final ScheduledExecutorService delays = Executors.newSingleThreadScheduledExecutor(runnable -> {
        Thread thread = new Thread(runnable, "tmr-test-group-delays");
        thread.setDaemon(true);
        return thread;
    });
    private VendorState vendorState = VendorState.empty();
    private TmrNode node;
    private final List<TmrNode> otherNodes = new ArrayList<>();

    /** Three backends on the system clock. */
    public TmrTestGroup(Path dir) throws Exception {
        this(dir, Clock.systemUTC(), Map.of());
    }

    /**
     * @param clock            the backends' clock (expiry, leases, usage periods) and the issuer's
     * @param backendOverrides settings given to every backend on top of the group's
     */
    public TmrTestGroup(Path dir, Clock clock, Map<String, Object> backendOverrides) throws Exception {
        this(dir, clock, backendOverrides, i -> Map.of());
    }

    /**
     * @param perBackend settings of backend {@code i} (0..2) on top of {@code backendOverrides}, e.g. what differs
     *                   by its address
     */
    public TmrTestGroup(Path dir, Clock clock, Map<String, Object> backendOverrides,
                        java.util.function.IntFunction<Map<String, Object>> perBackend) throws Exception {
        this(dir, clock, backendOverrides, perBackend, i -> clock);
    }

    /**
     * @param backendClocks the clock of backend {@code i} (0..2), e.g. {@link Clock#offset} of {@code clock}: copies
     *                      whose clocks differ; the node and the issuer keep {@code clock}
     */
    public TmrTestGroup(Path dir, Clock clock, Map<String, Object> backendOverrides,
                        java.util.function.IntFunction<Map<String, Object>> perBackend,
                        java.util.function.IntFunction<Clock> backendClocks) throws Exception {
        this.perBackend = perBackend;
        this.backendClocks = backendClocks;
        this.dir = dir;
        this.clock = clock;
        this.backendOverrides = Map.copyOf(backendOverrides);
        this.vendor = VendorKeyFiles.generate(dir.resolve("vendor"));
        this.secretFile = dir.resolve("secret");
        Files.writeString(secretFile, SECRET + "\n");
        this.auth = PeerAuth.fromFile(secretFile);
        for (int i = 0; i < 3; i++) {
            links[i] = new LinkControl(i, delays, 1000 + i);
        }
        try {
            for (int i = 0; i < 3; i++) {
                backends[i] = Backend.start(backendConfig(i), backendClocks.apply(i));
                ports[i] = backends[i].address().getPort();
            }
        } catch (Exception | Error e) {
            close();
            throw e;
        }
    }

    private Config backendConfig(int i) {
        return backendConfig(i, Map.of());
    }

    /** Backend {@code i}'s configuration with {@code overrides} on top of everything else. */
    private Config backendConfig(int i, Map<String, Object> overrides) {
        Path data = dir.resolve("backend-" + (i + 1));
        Map<String, Object> settings = new HashMap<>(Map.of(
                "opentmr.backend.address", "127.0.1." + (i + 1),
                "opentmr.backend.port", ports[i],
                "opentmr.backend.data-dir", data.toString(),
                "opentmr.backend.vendor-keys", List.of(dir.resolve("vendor/vendor.pub").toString()),
                "opentmr.backend.cm-act-id", CM_ACT_ID,
                PeerAuth.SECRET_FILE_KEY, secretFile.toString(),
                // Our own journal in the data directory, so a restarted backend comes back on its data.
                "pekko.persistence.journal.plugin", "opentmr.persistence.journal",
                "pekko.persistence.snapshot-store.plugin", "opentmr.persistence.snapshot-store",
                "opentmr.persistence.dir", data.resolve("journal").toString(),
                "opentmr.persistence.fsync", "never"));
        settings.putAll(backendOverrides);
        settings.putAll(overrides);
        return ConfigFactory.parseMap(settings).withFallback(ConfigFactory.parseMap(perBackend.apply(i)))
                .withFallback(ConfigFactory.load()).resolve();
    }

    // --- backends ------------------------------------------------------------------------------------

    /** Backend {@code i} (0..2); fails while it is killed. */
    public Backend backend(int i) {
        Backend backend = backends[i];
        if (backend == null) {
            throw new IllegalStateException("backend " + (i + 1) + " is killed");
        }
        return backend;
    }

    /** Where backend {@code i} listens, also while it is killed (a restart keeps the port). */
    public InetSocketAddress backendAddress(int i) {
        return new InetSocketAddress("127.0.1." + (i + 1), ports[i]);
    }

    public boolean isRunning(int i) {
        return backends[i] != null;
    }

    /** Stops backend {@code i}: its listener and connections close, its actors stop; the data stays. */
    public void kill(int i) {
        Backend backend = backends[i];
        backends[i] = null;
        if (backend != null) {
            backend.close();
        }
    }

    /** Starts backend {@code i} again on its data directory and its port. */
    public Backend restart(int i) throws IOException, InterruptedException {
        if (backends[i] != null) {
            throw new IllegalStateException("backend " + (i + 1) + " is running");
        }
        backends[i] = Backend.start(backendConfig(i), backendClocks.apply(i));
        return backends[i];
    }

    /**
     * Starts backend {@code i} again on its port with {@code overrides} on top of its settings: e.g. another data
     * directory and CmActId, so that it comes back as another container (a stray one for the group).
     */
    public Backend restart(int i, Map<String, Object> overrides) throws IOException, InterruptedException {
        if (backends[i] != null) {
            throw new IllegalStateException("backend " + (i + 1) + " is running");
        }
        backends[i] = Backend.start(backendConfig(i, overrides), clock);
        return backends[i];
    }

    // --- licenses ------------------------------------------------------------------------------------

    public static LicenseIssuer.Request seats(long product, long quantity) {
        return new LicenseIssuer.Request(FIRM, product, quantity, true, null, null, null, null, null, 0xFF, "seats");
    }

    public static LicenseIssuer.Request units(long product, long units) {
        return new LicenseIssuer.Request(FIRM, product, 100, true, units, null, null, null, null, 0, "units");
    }

    /** Issues a TMR license to the three containers and imports each copy; returns the item as issued. */
    public ProductItemSpec issueTmr(LicenseIssuer.Request request) throws Exception {
        LicenseIssuer.Result result = issueOnly(request);
        for (int i = 0; i < 3; i++) {
            importFile(i, result.files().get(i));
        }
        return result.files().get(0).update().items().get(0);
    }

    /**
     * Issues a TMR license in the older format, without the vendor's statement of the group's keys (as files issued
     * before it existed), imports each copy and returns the item.
     */
    public ProductItemSpec issueTmrWithoutStatement(LicenseIssuer.Request request) throws Exception {
        return issueTmrWithoutStatementOn(request, java.util.Set.of(0, 1, 2));
    }

    /** As {@link #issueTmrWithoutStatement}, the copies of {@code backends} only; the others as issued. */
    public ProductItemSpec issueTmrWithoutStatementOn(LicenseIssuer.Request request, java.util.Set<Integer> backends)
            throws Exception {
        LicenseIssuer.Result result = issueOnly(request);
        for (int i = 0; i < 3; i++) {
            LicenseIssuer.Issued issued = result.files().get(i);
            if (!backends.contains(i)) {
                importFile(i, issued);
                continue;
            }
            io.opentmr.license.LicenseUpdate u = issued.update();
            io.opentmr.license.LicenseUpdate older = new io.opentmr.license.LicenseUpdate(u.target(), u.cmActId(),
                    u.firmCode(), u.firmUpdateCounter(), u.issuedAt(), u.items(), u.tmrGroupKeys());
            importFile(i, new LicenseIssuer.Issued(issued.context(), older,
                    io.opentmr.license.LicenseUpdateFile.sign(older, vendor.getPrivate(), vendor.getPublic())));
        }
        return result.files().get(0).update().items().get(0);
    }

    /** The vendor's raw public key, which a program trusts for the tickets of a TMR node. */
    public Bytes vendorPublicKey() {
        return Bytes.of(io.opentmr.license.Ed25519.raw(vendor.getPublic()));
    }

    /** Issues a TMR license but imports nothing (the test imports a differently issued copy, or none). */
    public LicenseIssuer.Result issueOnly(LicenseIssuer.Request request) throws Exception {
        return issue(request, List.of(0, 1, 2));
    }

    /**
     * Issues a TMR license to the three backends' containers of {@code cmActId} (backends holding several,
     * {@code opentmr.backend.additional-containers}) and imports each copy; returns the item as issued.
     */
    public ProductItemSpec issueTmr(long cmActId, LicenseIssuer.Request request) throws Exception {
        LicenseIssuer.Result result = issue(request, List.of(0, 1, 2), i -> {
            io.opentmr.backend.BackendContainers containers = backend(i).containers();
            return containers.get(containers.indexOfCmActId(cmActId)).identity().serial();
        });
        for (int i = 0; i < 3; i++) {
            importFile(i, result.files().get(i));
        }
        return result.files().get(0).update().items().get(0);
    }

    /** Issues an ordinary license to backend {@code i} alone and imports it. */
    public ProductItemSpec issueOrdinary(int i, LicenseIssuer.Request request) throws Exception {
        LicenseIssuer.Result result = issue(request, List.of(i));
        importFile(i, result.files().get(0));
        return result.files().get(0).update().items().get(0);
    }

    private LicenseIssuer.Result issue(LicenseIssuer.Request request, List<Integer> to) throws Exception {
        return issue(request, to, i -> Serial.NONE);
    }

    private LicenseIssuer.Result issue(LicenseIssuer.Request request, List<Integer> to,
                                       java.util.function.IntFunction<Serial> container) throws Exception {
        List<ContainerContext> contexts = new ArrayList<>();
        for (int i : to) {
            try (RawConnection admin = new RawConnection(backend(i).address())) {
                admin.hello();
                Message context = admin.request(new Message.LicenseContext("", container.apply(i)));
                contexts.add(ContainerContext.parse(((Message.LicenseContextOk) context).context().toArray()));
            }
        }
        LicenseIssuer.Result result = new LicenseIssuer(vendor.getPrivate(), vendor.getPublic(), clock,
                new SecureRandom()).issue(vendorState, contexts, request);
        vendorState = result.state();
        return result;
    }

    public VendorState vendorState() {
        return vendorState;
    }

    /** Issue again as if the last issue had not happened: the same TMR-Id, a different copy. */
    public void resetVendorState(VendorState state) {
        this.vendorState = state;
    }

    public void importFile(int backend, LicenseIssuer.Issued issued) throws Exception {
        try (RawConnection admin = new RawConnection(backend(backend).address())) {
            admin.hello();
            Message applied = admin.request(new Message.LicenseUpdate("", Bytes.of(issued.file().toJson())));
            assertInstanceOf(Message.LicenseUpdateOk.class, applied, applied.toString());
        }
    }

    // --- the node --------------------------------------------------------------------------------------

    /** Starts the TMR node on 127.0.2.1 (port 0, in-memory journal) over the three backends. */
    public TmrNode startNode(Map<String, Object> overrides) {
        if (node != null) {
            throw new IllegalStateException("the node is running");
        }
        node = TmrNode.start(nodeConfig(NODE_NAME, "127.0.2.1", "node", overrides), clock,
                PeerLink.Connector.binding((address, cmActId) -> connect(NODE_NAME, address, cmActId == 0, cmActId)));
        return node;
    }

    /**
     * Starts another TMR node over the same backends: its own name, address (127.0.2.x), data directory
     * ({@code node-NAME}) and in-memory journal. It reaches the backends directly, past the {@link #link
     * LinkControl}s; {@link #close} stops it.
     */
    public TmrNode startOtherNode(String name, String address, Map<String, Object> overrides) {
        TmrNode other = TmrNode.start(nodeConfig(name, address, "node-" + name, overrides), clock,
                connector(name));
        otherNodes.add(other);
        return other;
    }

    /** How a node named {@code name} reaches the backends, past the {@link #link LinkControl}s. */
    public PeerLink.Connector connector(String name) {
        return PeerLink.Connector.binding((backend, cmActId) -> connect(name, backend, false, cmActId));
    }

    /**
     * A node's configuration over this group's backends: {@code name}, client address, data directory {@code
     * dataDir} under the group's, in-memory journal unless {@code overrides} say otherwise.
     */
    public Config nodeConfig(String name, String address, String dataDir, Map<String, Object> overrides) {
        List<String> addresses = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            addresses.add("127.0.1." + (i + 1) + ":" + ports[i]);
        }
        Map<String, Object> settings = new HashMap<>(Map.of(
                "opentmr.node.address", address,
                "opentmr.node.port", 0,
                "opentmr.node.data-dir", dir.resolve(dataDir).toString(),
                "opentmr.node.backends", addresses,
                // Well above a cold backend's first journal writes on a loaded machine.
                "opentmr.node.backend-timeout", "2s",
                "opentmr.node.name", name,
                // The lines a restart finds missing are written at once, as tests read the file right after.
                "opentmr.node.tracking.recovery-delay", "0s",
                PeerAuth.SECRET_FILE_KEY, secretFile.toString(),
                "pekko.persistence.journal.plugin", "pekko.persistence.journal.inmem",
                "pekko.persistence.snapshot-store.plugin", "pekko.persistence.no-snapshot-store"));
        settings.putAll(overrides);
        return ConfigFactory.parseMap(settings).withFallback(ConfigFactory.load()).resolve();
    }

    public TmrNode node() {
        return node;
    }

    /**
     * Node settings for a node that can be restarted on its state: its own journal in {@code journalDir} and a
     * fixed free port on 127.0.2.1, so that its clients come back to it.
     */
    public static Map<String, Object> restartableNode(Path journalDir) throws IOException {
        int port;
        try (java.net.ServerSocket socket = new java.net.ServerSocket(0, 1,
                java.net.InetAddress.getByName("127.0.2.1"))) {
            port = socket.getLocalPort();
        }
        return Map.of(
                "pekko.persistence.journal.plugin", "opentmr.persistence.journal",
                "pekko.persistence.snapshot-store.plugin", "opentmr.persistence.snapshot-store",
                "opentmr.persistence.dir", journalDir.toString(),
                "opentmr.persistence.fsync", "never",
                "opentmr.node.port", port);
    }

    /**
     * Until the node's license of {@code product} uses all three copies: counted and re-synced. The node lists and
     * serves a license once two are; a test that then stops a backend, or reads every backend's seats, must not race
     * the third's re-sync.
     *
     * <p>Also until the node serves: after a step of the clocks its lease grants have run out, and what its licenses
     * report until it holds the lease again is from before the step. Once it holds it again it may serve with two
     * copies while the third still re-syncs (the step may even have gone unnoticed by its virtual container), so a
     * test that needs all three after a step waits here.
     */
    public void awaitAllCopiesUsable(long product) throws InterruptedException {
        Await.until("the node serves with the three copies of product " + product, () -> {
            if (!node.serving()) {
                return false;
            }
            VirtualContainer.Overview overview = Await.unchecked(() -> AskPattern.<VirtualContainer.Command,
                    VirtualContainer.Overview>ask(node.container(), VirtualContainer.GetOverview::new,
                    Duration.ofSeconds(5), node.actorSystem().scheduler()).toCompletableFuture().get(10,
                    TimeUnit.SECONDS));
            return overview.licenses().stream().anyMatch(l -> l.key().productCode() == product && l.usable() == 3);
        });
    }

    public InetSocketAddress nodeAddress() {
        return node.address();
    }

    public void stopNode() {
        if (node != null) {
            node.close();
            node = null;
        }
    }

    /** The cluster secret's file, for a second node or a peer client of a test's own. */
    public Path secretFile() {
        return secretFile;
    }

    /** The network between the node and backend {@code i}. */
    public LinkControl link(int i) {
        return links[i];
    }

    /**
     * @param controlled whether the link goes through the backend's {@link LinkControl} (the group's own node's links
     *                   to the first containers; links of the node's further virtual containers go past it)
     * @param cmActId    the container the link is bound to (PEER_HELLO; 0: the backend's first)
     */
    private CompletionStage<PeerLink> connect(String name, InetSocketAddress address, boolean controlled,
                                              long cmActId) {
        int backend = indexOf(address);
        if (backend < 0) {
            return CompletableFuture.failedFuture(new ConnectException("not a backend of the group: " + address));
        }
        if (controlled && links[backend].isCut()) {
            return CompletableFuture.failedFuture(new ConnectException("backend " + (backend + 1)
                    + " cut off by the test"));
        }
        InetSocketAddress resolved = new InetSocketAddress(address.getHostString(), address.getPort());
        return PeerConnection.connect(resolved, name, auth, new PeerOptions(Duration.ofSeconds(2),
                        Duration.ofSeconds(2), 1024, CodecLimits.DEFAULT), peerLoop, cmActId)
                .thenCompose(connection -> {
                    if (!controlled) {
                        return CompletableFuture.completedFuture(PeerLink.of(connection));
                    }
                    PeerLink link = links[backend].wrap(PeerLink.of(connection));
                    if (link == null) {
                        connection.close();
                        return CompletableFuture.failedFuture(new ConnectException("backend " + (backend + 1)
                                + " cut off by the test"));
                    }
                    return CompletableFuture.completedFuture(link);
                });
    }

    private int indexOf(InetSocketAddress address) {
        for (int i = 0; i < 3; i++) {
            if (ports[i] == address.getPort() && ("127.0.1." + (i + 1)).equals(address.getHostString())) {
                return i;
            }
        }
        return -1;
    }

    // --- looking at backends as a node does -------------------------------------------------------------

    /** A TMR node's peer connection to backend {@code i} under {@code name}, past the challenge. */
    public Peer peer(String name, int i) throws IOException {
        RawConnection connection = new RawConnection(backend(i).address());
        try {
            byte[] nodeNonce = new byte[PeerAuth.NONCE_BYTES];
            new SecureRandom().nextBytes(nodeNonce);
            Message.PeerChallenge challenge = (Message.PeerChallenge) connection.request(
                    new Message.PeerHello(name, Bytes.of(nodeNonce)));
            Message answer = connection.request(new Message.PeerProof(Bytes.of(auth.nodeProof(
                    challenge.backendNonce().toArray(), nodeNonce, name))));
            assertInstanceOf(Message.Ok.class, answer, answer.toString());
            return new Peer(name, connection);
        } catch (IOException | RuntimeException | Error e) {
            connection.close();
            throw e;
        }
    }

    /** Every allocation backend {@code i} holds, read through a peer connection of its own. */
    public List<Allocation> allocations(int backend) throws Exception {
        return allocations(backend, 0);
    }

    /** Every allocation backend {@code i}'s container of {@code cmActId} holds (0: its first container). */
    public List<Allocation> allocations(int backend, long cmActId) throws Exception {
        try (PeerConnection peer = PeerConnection.connect(backend(backend).address(), "test-inspector", auth,
                PeerOptions.defaults(), peerLoop, cmActId).get(10, TimeUnit.SECONDS)) {
            List<Allocation> all = new ArrayList<>();
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

    /** The TMR allocations backend {@code backend} holds as borrowed (PEER_BORROW), by handle id, with their expiry. */
    public Map<Long, java.time.Instant> borrowedAllocations(int backend) throws Exception {
        Map<Long, java.time.Instant> borrowed = new java.util.TreeMap<>();
        backend(backend).<io.opentmr.backend.Container.Overview>ask(io.opentmr.backend.Container.GetOverview::new,
                java.time.Duration.ofSeconds(10)).get(15, TimeUnit.SECONDS).tmrBorrows()
                .forEach(b -> borrowed.put(b.tmrHandleId(), b.expiresAt()));
        return borrowed;
    }

    /** The first container a client's LIST_CONTAINERS shows (a node's virtual container), for waits and asserts. */
    public static io.opentmr.protocol.ContainerInfo listed(RawConnection client) {
        try {
            Message list = client.request(new Message.ListContainers());
            return ((Message.ContainerList) list).containers().get(0);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The CodeMeter error number of a failure from the SDK or a peer call, or -1 when it is none. */
    public static int code(Throwable failure) {
        for (Throwable cause = failure; cause != null; cause = cause.getCause()) {
            if (cause instanceof CmException sdk) {
                return sdk.code();
            }
            if (cause instanceof CmFailure peer) {
                return peer.code();
            }
        }
        return -1;
    }

    @Override
    public void close() {
        stopNode();
        otherNodes.forEach(TmrNode::close);
        otherNodes.clear();
        for (int i = 0; i < 3; i++) {
            kill(i);
        }
        delays.shutdownNow();
        peerLoop.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    /** One authenticated peer connection of a TMR node, blocking, frame by frame. */
    public record Peer(String name, RawConnection connection) implements AutoCloseable {

        public Message request(Message message) throws IOException {
            return connection.request(message);
        }

        public Message acquire(String lease, long proposedEpoch, long ttlMillis) throws IOException {
            return request(new Message.LeaseAcquire(lease, name, proposedEpoch, ttlMillis));
        }

        /** Acquires the active lease; the grant, or an AssertionError with the refusal. */
        public LeaseGrant grant(long proposedEpoch, long ttlMillis) throws IOException {
            Message answer = acquire(LeaseGrant.ACTIVE_LEASE, proposedEpoch, ttlMillis);
            return assertInstanceOf(Message.LeaseGranted.class, answer, answer.toString()).grant();
        }

        @Override
        public void close() throws IOException {
            connection.close();
        }
    }
}
