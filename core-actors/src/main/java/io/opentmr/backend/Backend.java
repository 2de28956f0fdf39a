package io.opentmr.backend;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import io.opentmr.access.AccessList;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.metrics.ServerMetrics;
import io.opentmr.server.FrameServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running backend license server: the container actor (its actor system's guardian) and the
 * listener in front of it. Which journal stores the container's events is configuration
 * ({@code pekko.persistence.journal.plugin}).
 */
public final class Backend implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(Backend.class);

    /** Requests per batch at most: one journal write stays bounded (a few hundred KiB). */
    static final int MAX_BATCH = 1000;

    private final ActorSystem<Void> system;
    private final FrameServer server;
    private final ContainerIdentity identity;
    private final BackendSettings settings;
    private final RequestInbox inbox;
    private final BackendContainers containers;
    private final ServerMetrics metrics;
    private final java.time.Instant startedAt;

    private Backend(ActorSystem<Void> system, FrameServer server, BackendContainers containers,
                    BackendSettings settings, ServerMetrics metrics, java.time.Instant startedAt) {
        this.system = system;
        this.server = server;
        this.containers = containers;
        this.identity = containers.primary().identity();
        this.settings = settings;
        this.inbox = containers.primary().inbox();
        this.metrics = metrics;
        this.startedAt = startedAt;
    }

    /**
     * Starts a backend from a resolved configuration.
     *
     * @throws ConfigException naming the key, for a bad or missing setting or an unreadable vendor key
     */
    public static Backend start(Config config) throws IOException, InterruptedException {
        return start(config, Clock.systemUTC());
    }

    /** As {@link #start(Config)}, with the clock that decides expiry, activation and usage periods. */
    public static Backend start(Config config, Clock clock) throws IOException, InterruptedException {
        BackendSettings settings = BackendSettings.from(config);
        List<PublicKey> vendorKeys = new ArrayList<>();
        for (Path file : settings.vendorKeys()) {
            try {
                vendorKeys.add(VendorKeyFiles.readPublic(file));
            } catch (IOException | IllegalArgumentException e) {
                throw new ConfigException.BadValue(BackendSettings.PATH + ".vendor-keys",
                        "cannot read vendor public key " + file + ": " + e.getMessage());
            }
        }
        if (vendorKeys.isEmpty()) {
            LOG.warn("No vendor keys configured ({}.vendor-keys): this backend will refuse every license update",
                    BackendSettings.PATH);
        }
        if (settings.accessList().hasNameRules()) {
            LOG.warn(AccessList.nameRulesWarning(BackendSettings.PATH + ".access-list"));
        }
        // Owner only: the journal holds the items' crypt secrets and container.json the container's key.
        if (!Files.exists(settings.dataDir())) {
            Files.createDirectories(settings.dataDir(), java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                    java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
        }
        java.util.concurrent.CompletableFuture<ActorRef<ContainerGateway.Message>> started =
                new java.util.concurrent.CompletableFuture<>();
        SecureRandom random = new SecureRandom();
        List<BackendContainers.Slot> slots = new ArrayList<>();
        slots.add(new BackendContainers.Slot(ContainerIdentity.loadOrCreate(settings.dataDir(), settings.cmActId(),
                random), new RequestInbox(settings.maxQueuedRequests(), MAX_BATCH)));
        for (long cmActId : settings.additionalContainers()) {
            slots.add(new BackendContainers.Slot(ContainerIdentity.loadOrCreate(additionalDir(settings, cmActId),
                    cmActId, random), new RequestInbox(settings.maxQueuedRequests(), MAX_BATCH)));
        }
        BackendContainers containers = new BackendContainers(slots);
        ContainerIdentity identity = containers.primary().identity();
        ServerMetrics metrics = new ServerMetrics("backend");
        List<ContainerCounts> counts = slots.stream().map(slot -> new ContainerCounts()).toList();
        gauges(metrics, counts);
        Behavior<Void> guardian = Behaviors.setup(context -> {
            ActorRef<ContainerGateway.Message> gateway = null;
            for (int i = 0; i < slots.size(); i++) {
                BackendContainers.Slot slot = slots.get(i);
                // The first container's actor keeps its name: one container is the backend as it always was.
                ActorRef<ContainerGateway.Message> spawned = context.spawn(ContainerGateway.create(
                        Container.create(slot.identity(), vendorKeys, settings.cleanupTimeout(),
                                settings.snapshotEvery(), settings.lease(), settings.units(), clock, counts.get(i),
                                metrics), slot.inbox()), i == 0 ? "gateway" : "gateway-" + slot.identity().cmActId());
                gateway = i == 0 ? spawned : gateway;
            }
            started.complete(gateway);
            return Behaviors.empty();
        });
        String writeOnCaller = BackendSettings.PATH + ".journal-write-on-caller";
        Config journal = config.withValue("opentmr.persistence.write-on-caller",
                com.typesafe.config.ConfigValueFactory.fromAnyRef(config.getBoolean(writeOnCaller), writeOnCaller));
        ActorSystem<Void> system = ActorSystem.create(guardian, "opentmr-backend",
                settings.threads().applyTo(journal, BackendSettings.PATH + ".threads"));
        try {
            started.get(30, TimeUnit.SECONDS);
            if (containers.size() > 1) {
                learnAll(containers).get(30, TimeUnit.SECONDS);
            }
            TrackingLog tracking = new TrackingLog(identity.serial());
            FrameServer server = FrameServer.start(settings.address(), settings.port(), settings.maxConnections(),
                    settings.codecLimits(), settings.threads().io(),
                    () -> new ClientSession(settings, containers, random, tracking, clock, metrics));
            LOG.info("Backend {} listening on {} (max {} connections, {} requests in flight each)",
                    identity.serial(), server.localAddress(), settings.maxConnections(),
                    settings.maxInFlightPerConnection());
            for (BackendContainers.Slot more : containers.all().subList(1, containers.size())) {
                LOG.info("Backend {} also holds container {} (CmActId {})", identity.serial(),
                        more.identity().serial(), more.identity().cmActId());
            }
            return new Backend(system, server, containers, settings, metrics, clock.instant());
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            system.terminate();
            throw new IllegalStateException("the backend's actors did not start within 30 s", e);
        } catch (Exception e) {
            // Also a BindException, which Netty throws without declaring it: the actor system must not leak.
            system.terminate();
            throw e;
        }
    }


    /** Where an additional container keeps its identity: its journal is the backend's, under its own serial. */
    static Path additionalDir(BackendSettings settings, long cmActId) {
        return settings.dataDir().resolve("containers").resolve(Long.toString(cmActId));
    }

    /** Every container's listing learnt for routing ACCESS; completes once all answered (after their recovery). */
    private static java.util.concurrent.CompletableFuture<Void> learnAll(BackendContainers containers) {
        List<java.util.concurrent.CompletableFuture<?>> all = new ArrayList<>();
        for (int i = 0; i < containers.size(); i++) {
            int index = i;
            java.util.concurrent.CompletableFuture<Void> learnt = new java.util.concurrent.CompletableFuture<>();
            containers.get(i).inbox().submit(new Container.Describe(answer -> {
                if (answer.isSuccess()) {
                    containers.learn(index, answer.getValue());
                    learnt.complete(null);
                } else {
                    learnt.completeExceptionally(answer.getError());
                }
            }));
            all.add(learnt);
        }
        return java.util.concurrent.CompletableFuture.allOf(all.toArray(java.util.concurrent.CompletableFuture[]::new));
    }

    /** Each gauge sums (the epoch: the highest of) the backend's containers. */
    private static void gauges(ServerMetrics metrics, List<ContainerCounts> counts) {
        metrics.gauge("opentmr_open_handles", "Open client handles of the backend's containers",
                () -> counts.stream().mapToInt(ContainerCounts::handles).sum());
        metrics.gauge("opentmr_tmr_allocations", "Seats the backend's TMR copies hold for TMR nodes (ALLOCATE)",
                () -> counts.stream().mapToInt(ContainerCounts::allocations).sum());
        metrics.gauge("opentmr_borrows", "Seats borrowed out of the backend's containers",
                () -> counts.stream().mapToInt(ContainerCounts::borrows).sum());
        metrics.gauge("opentmr_product_items", "Product items in the backend's containers",
                () -> counts.stream().mapToInt(ContainerCounts::products).sum());
        metrics.gauge("opentmr_lease_epoch", "The highest epoch of the active lease (opentmr-active) the backend "
                + "granted or saw in a certificate; it rises only when the holder changes",
                () -> counts.stream().mapToLong(ContainerCounts::activeEpoch).max().orElse(0));
    }

    public InetSocketAddress address() {
        return server.localAddress();
    }

    /** What {@code /metrics} shows for this backend. */
    public ServerMetrics metrics() {
        return metrics;
    }

    public BackendSettings settings() {
        return settings;
    }

    public java.time.Instant startedAt() {
        return startedAt;
    }

    /** The backend's actor system: management HTTP runs in it. */
    public ActorSystem<Void> actorSystem() {
        return system;
    }

    /**
     * Asks the container through the same inbox the sessions use (so an operator's request waits its turn and is
     * refused with 309 under overload like any other); fails with the container's {@link io.opentmr.protocol.CmFailure},
     * or with a {@link java.util.concurrent.TimeoutException} after {@code timeout}.
     */
    public <T> java.util.concurrent.CompletableFuture<T> ask(
            java.util.function.Function<Container.ReplyTo<T>, Container.Request> request, java.time.Duration timeout) {
        java.util.concurrent.CompletableFuture<T> answer = new java.util.concurrent.CompletableFuture<>();
        Container.Request asked = request.apply(reply -> {
            if (reply.isSuccess()) {
                answer.complete(reply.getValue());
            } else {
                answer.completeExceptionally(reply.getError());
            }
        });
        inbox.submit(asked);
        if (asked instanceof Container.ImportLicense && containers.size() > 1) {
            // What the first container holds now decides where clients' ACCESS go first.
            inbox.submit(new Container.Describe(listed -> {
                if (listed.isSuccess()) {
                    containers.learn(0, listed.getValue());
                }
            }));
        }
        return answer.orTimeout(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** The first container's identity: what the backend's management routes and {@link #ask} address. */
    public ContainerIdentity identity() {
        return identity;
    }

    /** Every container of the backend, the first one first. */
    public BackendContainers containers() {
        return containers;
    }

    @Override
    public void close() {
        server.close();
        system.terminate();
        try {
            system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.warn("Backend {} did not stop within 10 s: {}", identity.serial(), e.toString());
        }
    }

    /** Completes when the backend has stopped (after {@link #close()} or the JVM's shutdown). */
    public java.util.concurrent.CompletionStage<org.apache.pekko.Done> whenTerminated() {
        return system.getWhenTerminated();
    }
}
