package io.opentmr.management;

import io.opentmr.client.AdminClient;
import io.opentmr.cluster.TwinReplication;
import io.opentmr.persistence.replication.ReplicationFollower;
import io.opentmr.persistence.replication.ReplicationLeader;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.protocol.AdminToken;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.NodeStatus;
import io.opentmr.tmr.Quorums;
import io.opentmr.tmr.TmrNode;
import io.opentmr.tmr.VirtualContainer;
import io.opentmr.tmr.backend.PeerGroup;
import io.opentmr.tmr.license.Seat;
import io.opentmr.tmr.license.TmrLicense;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.http.javadsl.model.HttpResponse;

/**
 * The routes of a TMR node: its status, its backends as their watchers see them, the virtual container, its
 * licenses and handles (asked of the actors that hold them), force-release, and the import of a TMR issue's three
 * files, each sent to the backend whose container it names.
 */
final class NodeRoutes extends ManagementRoutes {

    private final TmrNode node;

    NodeRoutes(TmrNode node, ManagementSettings settings, Optional<AdminToken> token, Executor executor) {
        super(settings, token, node.metrics(), executor);
        this.node = node;
    }

    private Duration timeout() {
        return settings.askTimeout();
    }

    private <R> CompletionStage<R> ask(ActorRef<VirtualContainer.Command> target,
                                       org.apache.pekko.japi.function.Function<ActorRef<R>, VirtualContainer.Command> m) {
        return AskPattern.ask(target, m, timeout(), node.actorSystem().scheduler());
    }

    private CompletionStage<Quorums.Backends> backendViews() {
        ActorRef<Quorums.Command> quorums = node.quorums();
        if (quorums == null) {
            return CompletableFuture.failedFuture(new Unavailable("the node's backend watchers do not run yet"));
        }
        return AskPattern.ask(quorums, Quorums.GetBackends::new, timeout(), node.actorSystem().scheduler());
    }

    /** The virtual container running now; none on a twin's standby. */
    private ActorRef<VirtualContainer.Command> container() {
        ActorRef<VirtualContainer.Command> container = node.container();
        if (container == null) {
            throw new Unavailable("no virtual container runs on this node now (a standby): ask the active node");
        }
        return container;
    }

    /**
     * The overviews of every virtual container running now: the first, then one per further CmActId the backends
     * share (docs/several-containers.md §2).
     */
    private CompletionStage<List<VirtualContainer.Overview>> overviews() {
        List<ActorRef<VirtualContainer.Command>> running;
        try {
            running = running();
        } catch (Unavailable e) {
            return CompletableFuture.failedFuture(e);
        }
        List<CompletableFuture<VirtualContainer.Overview>> asked = new ArrayList<>();
        for (ActorRef<VirtualContainer.Command> container : running) {
            asked.add(ask(container, VirtualContainer.GetOverview::new).toCompletableFuture());
        }
        return CompletableFuture.allOf(asked.toArray(CompletableFuture[]::new)).thenApplyAsync(done ->
                asked.stream().map(CompletableFuture::join).toList(), executor);
    }

    /** The virtual containers running now, the first first; none on a standby ({@link Unavailable}). */
    private List<ActorRef<VirtualContainer.Command>> running() {
        List<ActorRef<VirtualContainer.Command>> running = new ArrayList<>();
        running.add(container());
        node.otherContainers().forEach(group -> running.add(group.container()));
        return running;
    }

    static String address(InetSocketAddress address) {
        return address.getHostString() + ":" + address.getPort();
    }

    @Override
    CompletionStage<HttpResponse> status() {
        NodeStatus status = node.status();
        PeerGroup peers = node.peerGroup();
        int up = 0;
        for (int i = 0; i < peers.size(); i++) {
            up += peers.isLinked(i) ? 1 : 0;
        }
        boolean held = peers.holdsLease();
        String role = status.serving() ? "active" : held ? "reconciling" : "standby";
        Optional<TwinReplication> twin = TwinReplication.of(node.actorSystem());
        // A standby's epoch is that of the active whose journal it follows now.
        Long epoch = held ? Long.valueOf(peers.epoch()) : twin.filter(t -> t.follower().following())
                .map(t -> t.follower().leaderEpoch()).filter(e -> e >= 0).orElse(null);
        String active = status.serving() ? address(node.address()) : node.activeAddress();
        Instant now = Instant.now();
        Map<String, Object> body = obj("component", "node",
                "name", node.settings().nodeName(),
                "role", role,
                "serving", status.serving(),
                "address", address(node.address()),
                "virtualContainer", node.virtualSerial().toString(),
                "epoch", epoch,
                "activeAddress", active.isEmpty() ? null : active,
                "lease", obj("held", held, "epoch", held ? peers.epoch() : null, "grants", peers.grantsHeld()),
                // A single node's journal is its own: nothing to replicate.
                "replication", twin.map(NodeRoutes::replication)
                        .orElseGet(() -> obj("state", "none", "standby", null, "lagSeconds", null)),
                "backends", obj("total", peers.size(), "up", up, "down", peers.size() - up),
                "openHandles", status.openHandles(),
                "failovers", status.takeovers(),
                "integrityWarnings", status.integrityWarnings(),
                "startedAt", instant(node.startedAt()),
                "uptimeSeconds", Duration.between(node.startedAt(), now).toSeconds());
        twin.ifPresent(t -> body.put("twin", obj("peer", t.twin(), "incarnation", t.incarnation())));
        // Every virtual container that runs (docs/several-containers.md §2): the first, then one per further CmActId.
        List<Map<String, Object>> containers = new ArrayList<>();
        io.opentmr.tmr.Quorums.Discovered discovered = node.discovered();
        containers.add(obj("serial", node.virtualSerial().toString(),
                "cmActId", discovered == null ? null : discovered.groupCmActId(), "serving", status.serving(),
                "leaseEpoch", held ? peers.epoch() : null, "openHandles", status.openHandles()));
        for (io.opentmr.tmr.TmrNode.Group group : node.otherContainers()) {
            boolean groupHeld = group.peers().holdsLease();
            containers.add(obj("serial", group.serial().toString(), "cmActId", group.cmActId(),
                    "serving", group.status().serving(), "leaseEpoch", groupHeld ? group.peers().epoch() : null,
                    "openHandles", group.status().openHandles()));
        }
        body.put("virtualContainers", containers);
        return ok(body);
    }

    /** A twin node's journal: on the active, its standby and how far behind it is; on a standby, what it follows. */
    private static Map<String, Object> replication(TwinReplication twin) {
        ReplicationLeader.Monitor leader = twin.leader();
        ReplicationFollower.Monitor follower = twin.follower();
        boolean leading = leader.leading();
        return obj("state", twin.state().label(),
                "standby", leading && !leader.follower().isEmpty()
                        ? obj("name", leader.follower(), "connected", leader.followerConnected()) : null,
                "lagSeconds", leading ? leader.lagSeconds() : null,
                "lagRecords", leading ? leader.lagRecords() : null,
                "logPosition", twin.logPosition(),
                "acknowledgedPosition", leading ? leader.replicatedPosition() : null,
                "reason", leading ? leader.reason() : null,
                "catchUps", leader.catchUps(),
                "degradations", leader.degradations(),
                "following", leading ? null : obj("active", follower.leader().isEmpty() ? null : follower.leader(),
                        "epoch", follower.leaderEpoch() < 0 ? null : follower.leaderEpoch(),
                        "sessions", follower.sessions()),
                "truncations", follower.truncations(),
                "truncatedRecords", follower.truncatedRecords());
    }

    @Override
    CompletionStage<HttpResponse> backends() {
        PeerGroup peers = node.peerGroup();
        return backendViews().thenApplyAsync(views -> {
            List<Map<String, Object>> backends = new ArrayList<>();
            for (Quorums.BackendView view : views.backends()) {
                int i = view.backend();
                long grant = peers.grantEpoch(i);
                ContainerInfo container = view.container();
                backends.add(obj("backend", i + 1,
                        "address", address(node.settings().backends().get(i)),
                        "up", peers.isLinked(i),
                        "inventoried", container != null,
                        "name", view.name(),
                        "container", container == null ? null : container.serial().toString(),
                        "cmActId", container == null ? null : container.cmActId(),
                        "grantEpoch", grant < 0 ? null : grant,
                        "copies", view.copies(),
                        "differing", view.differing().stream().map(LicenseKey::toString).toList(),
                        "down", view.down()));
            }
            return json(200, obj("backends", backends));
        }, executor);
    }

    @Override
    CompletionStage<HttpResponse> containers() {
        return overviews().thenCombineAsync(backendViews(), (all, views) -> {
            List<Map<String, Object>> backing = new ArrayList<>();
            for (Quorums.BackendView view : views.backends()) {
                backing.add(obj("backend", view.backend() + 1,
                        "container", view.container() == null ? null : view.container().serial().toString()));
            }
            List<Map<String, Object>> containers = new ArrayList<>();
            for (VirtualContainer.Overview overview : all) {
                long listed = overview.licenses().stream().filter(VirtualContainer.LicenseView::listed).count();
                containers.add(obj("serial", overview.serial().toString(),
                        "kind", "virtual",
                        "cmActId", overview.cmActId() == 0 ? null : overview.cmActId(),
                        "licenses", overview.licenses().size(),
                        "listed", listed,
                        "reconciled", overview.reconciled(),
                        "inventoried", overview.inventoried().stream().map(b -> b + 1).toList(),
                        // The first container's backing, as its watchers see it; a further one's containers on the
                        // same backends are those of its CmActId.
                        "backing", containers.isEmpty() ? backing : null));
            }
            return json(200, obj("containers", containers));
        }, executor);
    }

    @Override
    CompletionStage<HttpResponse> licenses() {
        Map<LicenseKey, NodeStatus.LicenseReading> readings = node.status().licenses();
        return overviews().thenApplyAsync(all -> {
            List<Map<String, Object>> licenses = new ArrayList<>();
            for (VirtualContainer.Overview overview : all) {
                for (VirtualContainer.LicenseView view : overview.licenses()) {
                    LicenseKey key = view.key();
                    ProductInfo agreed = view.agreed();
                    NodeStatus.LicenseReading reading = readings.get(key);
                    Map<String, Object> license = obj("license", key.toString(),
                            "virtualContainer", overview.serial().toString(),
                            "firmCode", key.firmCode(), "productCode", key.productCode(), "tmrId", key.tmrId(),
                            "listed", view.listed(),
                            "seats", obj("used", view.inUse(), "total", agreed == null ? null : agreed.quantity()),
                            "handles", view.handles(),
                            "copies", obj("counted", view.counted().size(),
                                    "backends", view.counted().stream().map(b -> b + 1).toList(),
                                    "usable", view.usable()),
                            "recovered", view.recovered(),
                            "integrityWarnings", reading == null ? 0 : reading.integrityWarnings());
                    if (agreed != null) {
                        license.putAll(terms(agreed));
                        if (agreed.hasUnitCounter()) {
                            license.put("units", obj("counter", true, "left", view.units() < 0 ? null : view.units()));
                        }
                    } else {
                        license.put("text", null);
                        license.put("units", null);
                    }
                    licenses.add(license);
                }
            }
            return json(200, obj("virtualContainer", all.get(0).serial().toString(), "licenses", licenses));
        }, executor);
    }

    @Override
    CompletionStage<HttpResponse> handles(HandleQuery query) {
        return overviews().thenComposeAsync(running -> {
            List<CompletableFuture<TmrLicense.Handles>> asked = new ArrayList<>();
            Map<LicenseKey, Serial> serials = new HashMap<>();
            for (VirtualContainer.Overview overview : running) {
                for (VirtualContainer.LicenseView view : overview.licenses()) {
                    if (view.license() != null && query.matchesLicense(view.key().toString())) {
                        serials.put(view.key(), overview.serial());
                        asked.add(AskPattern.<TmrLicense.Command, TmrLicense.Handles>ask(view.license(),
                                TmrLicense.ListHandles::new, timeout(), node.actorSystem().scheduler())
                                .toCompletableFuture());
                    }
                }
            }
            return CompletableFuture.allOf(asked.toArray(CompletableFuture[]::new)).thenApplyAsync(done -> {
                List<Map<String, Object>> rows = new ArrayList<>();
                List<TmrLicense.HandleView> all = new ArrayList<>();
                Map<TmrLicense.HandleView, LicenseKey> keys = new HashMap<>();
                for (CompletableFuture<TmrLicense.Handles> answer : asked) {
                    TmrLicense.Handles handles = answer.join();
                    for (TmrLicense.HandleView view : handles.handles()) {
                        Seat seat = view.seat();
                        String host = seat.host() == null ? seat.station() : seat.host();
                        if (query.matches(handles.key().toString(), seat.user(), host, seat.station())) {
                            all.add(view);
                            keys.put(view, handles.key());
                        }
                    }
                }
                all.sort(Comparator.comparing((TmrLicense.HandleView v) -> v.seat().handleId(),
                        Long::compareUnsigned));
                for (TmrLicense.HandleView view : page(all, query)) {
                    Seat seat = view.seat();
                    rows.add(obj("id", id(seat.handleId()),
                            "kind", "handle",
                            "license", keys.get(view).toString(),
                            "virtualContainer", serials.get(keys.get(view)).toString(),
                            "mode", seat.mode().name(),
                            "user", seat.user(),
                            "host", seat.host() == null ? seat.station() : seat.host(),
                            "station", seat.station(),
                            "pid", seat.pid(),
                            "session", view.sessionId() == 0 ? null : Long.toUnsignedString(view.sessionId()),
                            "openedAt", instant(seat.grantedAtMillis()),
                            "lastActivityAt", instant(view.lastActivityMillis()),
                            "epoch", seat.epoch(),
                            "releasing", view.releasing()));
                }
                return json(200, pageBody(all.size(), query, rows));
            }, executor);
        }, executor);
    }

    @Override
    CompletionStage<HttpResponse> release(long handleId, String by) {
        return forceRelease(running(), 0, handleId, by).thenApplyAsync(reply -> {
                    if (reply instanceof TmrLicense.Released) {
                        return json(200, obj("released", id(handleId)));
                    } else if (reply instanceof TmrLicense.NotServing notServing) {
                        return error(503, "the node does not serve now: " + notServing.why(), null);
                    } else if (reply instanceof TmrLicense.Refused refused) {
                        return error(statusOf(refused.code()), refused.text(), refused.code());
                    }
                    return error(500, "unexpected answer " + reply, null);
                }, executor);
    }

    /** Asks the running virtual containers from {@code index} on until one knows the handle (not 106). */
    private CompletionStage<TmrLicense.Reply> forceRelease(List<ActorRef<VirtualContainer.Command>> containers,
                                                           int index, long handleId, String by) {
        return AskPattern.<VirtualContainer.Command, TmrLicense.Reply>ask(containers.get(index),
                        replyTo -> new VirtualContainer.ToHandle(handleId,
                                new TmrLicense.ForceRelease(handleId, by, replyTo), replyTo),
                        timeout(), node.actorSystem().scheduler())
                .thenComposeAsync(reply -> reply instanceof TmrLicense.Refused refused
                        && refused.code() == CmError.INVALID_HANDLE.code() && index + 1 < containers.size()
                        ? forceRelease(containers, index + 1, handleId, by)
                        : CompletableFuture.completedFuture(reply), executor);
    }

    /** 200 once handed over (the node then restarts as the standby); 503 with 130 without a standby in sync. */
    @Override
    CompletionStage<HttpResponse> stepDown() {
        return node.stepDown().thenApplyAsync(done -> json(200, obj("steppedDown", node.settings().nodeName(),
                "active", node.activeAddress())), executor);
    }

    @Override
    CompletionStage<HttpResponse> licenseImport(List<byte[]> files, String by) {
        return backendViews().thenComposeAsync(views -> {
            Map<Serial, Integer> byContainer = new HashMap<>();
            for (Quorums.BackendView view : views.backends()) {
                if (view.container() != null) {
                    byContainer.put(view.container().serial(), view.backend());
                }
            }
            return importEach(files, (file, content, target) -> {
                Integer backend = byContainer.get(target);
                if (backend == null) {
                    return CompletableFuture.completedFuture(imported(file, target, null,
                            new CmFailure(CmError.BOX_NOT_FOUND, "no backend of this node holds container " + target
                                    + " now (the backends hold " + byContainer.keySet() + ")"), null));
                }
                InetSocketAddress address = node.settings().backends().get(backend);
                return CompletableFuture.supplyAsync(() -> importOn(address, content), executor)
                        .handle((ok, failed) -> {
                            if (failed == null) {
                                LOG.info("License file {} imported into container {} on backend {} for {}", file,
                                        target, backend + 1, by);
                            } else {
                                LOG.warn("License file {} for container {} refused by backend {}: {}", file, target,
                                        backend + 1, failed.getMessage());
                            }
                            return imported(file, target, backend + 1, failed, ok);
                        });
            });
        }, executor);
    }

    /** One file to one backend over the admin protocol, with the installation's admin token. */
    private Message.LicenseUpdateOk importOn(InetSocketAddress backend, byte[] file) {
        TmrClientOptions options = TmrClientOptions.builder().addresses(address(backend))
                .clientName("opentmr-node-import").connectTimeout(timeout()).requestTimeout(timeout()).build();
        try (AdminClient admin = AdminClient.connect(options, token.map(AdminToken::value).orElse(""))) {
            return admin.importLicense(file);
        }
    }
}
