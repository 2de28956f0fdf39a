package io.opentmr.management;

import io.opentmr.backend.Backend;
import io.opentmr.backend.Container;
import io.opentmr.backend.Handle;
import io.opentmr.backend.TmrAllocation;
import io.opentmr.license.LicenseUpdate;
import io.opentmr.protocol.AdminToken;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import org.apache.pekko.http.javadsl.model.HttpResponse;

/**
 * The routes of a backend: the same read routes as a node's for its one container (its product items, client
 * handles and the seats it holds for TMR nodes), force-release of a client handle, and the import of license update
 * files for its container. It has no backends of its own ({@code /tmr/backends} is a 404).
 */
final class BackendRoutes extends ManagementRoutes {

    private final Backend backend;

    BackendRoutes(Backend backend, ManagementSettings settings, Optional<AdminToken> token, Executor executor) {
        super(settings, token, backend.metrics(), executor);
        this.backend = backend;
    }

    private CompletionStage<Container.Overview> overview() {
        return backend.ask(Container.GetOverview::new, settings.askTimeout());
    }

    private String address() {
        return backend.address().getAddress().getHostAddress() + ":" + backend.address().getPort();
    }

    @Override
    CompletionStage<HttpResponse> status() {
        return overview().thenApplyAsync(overview -> {
            Container.LeaseView active = overview.leases().stream()
                    .filter(l -> l.name().equals(LeaseGrant.ACTIVE_LEASE)).findFirst().orElse(null);
            List<Map<String, Object>> leases = new ArrayList<>();
            for (Container.LeaseView lease : overview.leases()) {
                leases.add(obj("name", lease.name(), "holder", lease.holder(), "epoch", lease.epoch(),
                        "issuedAt", instant(lease.issuedAt()), "expiresAt", instant(lease.expiresAt()),
                        "connection", lease.connection()));
            }
            Instant now = Instant.now();
            return json(200, obj("component", "backend",
                    "container", overview.serial().toString(),
                    "cmActId", overview.cmActId(),
                    "address", address(),
                    "ready", true,
                    "peers", obj("enabled", backend.settings().peerAuth().isPresent()),
                    "lease", obj("epoch", overview.highestEpochs().getOrDefault(LeaseGrant.ACTIVE_LEASE, 0L),
                            "holder", active == null ? null : active.holder(), "live", leases),
                    "openHandles", overview.handles().size(),
                    "allocations", overview.allocations().size(),
                    "borrows", overview.borrows().size(),
                    "startedAt", instant(backend.startedAt()),
                    "uptimeSeconds", Duration.between(backend.startedAt(), now).toSeconds()));
        }, executor);
    }

    @Override
    CompletionStage<HttpResponse> backends() {
        return CompletableFuture.completedFuture(error(404, "a backend has no backends: ask a TMR node", null));
    }

    @Override
    CompletionStage<HttpResponse> containers() {
        return overview().thenApplyAsync(overview -> json(200, obj("containers", List.of(obj(
                "serial", overview.serial().toString(),
                "kind", "backend",
                "cmActId", overview.cmActId(),
                "productItems", overview.products().size(),
                "publicKey", Base64.getEncoder().encodeToString(backend.identity().rawPublicKey()))))), executor);
    }

    @Override
    CompletionStage<HttpResponse> licenses() {
        return overview().thenApplyAsync(overview -> {
            Map<LicenseKey, Integer> handles = new HashMap<>();
            overview.handles().forEach(h -> handles.merge(h.item(), 1, Integer::sum));
            Map<LicenseKey, Integer> allocations = new HashMap<>();
            overview.allocations().forEach(a -> allocations.merge(a.item(), 1, Integer::sum));
            List<Map<String, Object>> licenses = new ArrayList<>();
            for (ProductInfo product : overview.products()) {
                LicenseKey key = new LicenseKey(product.firmCode(), product.productCode(), product.tmrId());
                Map<String, Object> license = obj("license", key.toString(),
                        "firmCode", key.firmCode(), "productCode", key.productCode(), "tmrId", key.tmrId(),
                        "seats", obj("used", product.inUse(), "total", product.quantity()),
                        "handles", handles.getOrDefault(key, 0),
                        "allocations", allocations.getOrDefault(key, 0));
                license.putAll(terms(product));
                licenses.add(license);
            }
            return json(200, obj("container", overview.serial().toString(), "licenses", licenses));
        }, executor);
    }

    @Override
    CompletionStage<HttpResponse> handles(HandleQuery query) {
        return overview().thenApplyAsync(overview -> {
            List<Map<String, Object>> all = new ArrayList<>();
            List<Handle> handles = new ArrayList<>(overview.handles());
            handles.sort(Comparator.comparing(Handle::id, Long::compareUnsigned));
            for (Handle handle : handles) {
                if (query.matches(handle.item().toString(), handle.owner().user(), handle.owner().host(),
                        handle.station())) {
                    Instant seen = overview.sessionsLastSeen().get(handle.owner().sessionId());
                    all.add(obj("id", id(handle.id()), "kind", "handle", "license", handle.item().toString(),
                            "mode", handle.mode().name(), "user", handle.owner().user(), "host", handle.owner().host(),
                            "station", handle.station(), "pid", handle.owner().pid(),
                            "session", Long.toUnsignedString(handle.owner().sessionId()),
                            "openedAt", instant(handle.openedAt()),
                            "lastActivityAt", instant(seen == null ? handle.openedAt() : seen)));
                }
            }
            List<TmrAllocation> allocations = new ArrayList<>(overview.allocations());
            allocations.sort(Comparator.comparing(TmrAllocation::tmrHandleId, Long::compareUnsigned));
            Map<Long, Instant> borrowedUntil = new HashMap<>();
            overview.tmrBorrows().forEach(b -> borrowedUntil.put(b.tmrHandleId(), b.expiresAt()));
            for (TmrAllocation allocation : allocations) {
                if (query.matches(allocation.item().toString(), allocation.owner().user(), allocation.owner().host(),
                        allocation.owner().host())) {
                    all.add(obj("id", id(allocation.tmrHandleId()), "kind", "allocation",
                            "license", allocation.item().toString(), "mode", allocation.mode().name(),
                            "user", allocation.owner().user(), "host", allocation.owner().host(),
                            "station", allocation.owner().host(), "pid", allocation.owner().pid(),
                            "session", Long.toUnsignedString(allocation.owner().sessionId()),
                            "openedAt", instant(allocation.at()), "lastActivityAt", null,
                            "epoch", allocation.epoch(), "borrowedUntil",
                            borrowedUntil.containsKey(allocation.tmrHandleId())
                                    ? instant(borrowedUntil.get(allocation.tmrHandleId())) : null));
                }
            }
            return json(200, pageBody(all.size(), query, page(all, query)));
        }, executor);
    }

    @Override
    CompletionStage<HttpResponse> release(long handleId, String by) {
        return overview().thenComposeAsync(overview -> {
            boolean handle = overview.handles().stream().anyMatch(h -> h.id() == handleId);
            boolean allocation = overview.allocations().stream().anyMatch(a -> a.tmrHandleId() == handleId);
            if (!handle && allocation) {
                return CompletableFuture.completedFuture(error(409, "handle " + id(handleId) + " is a seat this "
                        + "backend holds for a TMR node: release it on the node, which frees it on every backend",
                        null));
            }
            return backend.<Handle>ask(reply -> new Container.AdminRelease(handleId, by, reply), settings.askTimeout())
                    .thenApplyAsync(released -> json(200, obj("released", id(released.id()),
                            "license", released.item().toString())), executor);
        }, executor);
    }

    @Override
    CompletionStage<HttpResponse> licenseImport(List<byte[]> files, String by) {
        return importEach(files, (file, content, target) -> {
            if (!target.equals(backend.identity().serial())) {
                return CompletableFuture.completedFuture(imported(file, target, null, new CmFailure(
                        CmError.BOX_NOT_FOUND, "this backend holds container " + backend.identity().serial()
                        + ", not " + target + ": import the file on its backend, or the three files of a TMR "
                        + "issue on the node"), null));
            }
            return backend.<LicenseUpdate>ask(reply -> new Container.ImportLicense(Bytes.of(content), reply),
                            settings.askTimeout())
                    .handleAsync((update, failed) -> {
                        if (failed == null) {
                            LOG.info("License file {} imported into container {} for {}", file, target, by);
                        }
                        return imported(file, target, null, failed, failed == null ? new Message.LicenseUpdateOk(
                                target, update.firmCode(), update.firmUpdateCounter()) : null);
                    }, executor);
        });
    }
}
