package io.opentmr.management;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.opentmr.license.LicenseRefusedException;
import io.opentmr.license.LicenseUpdateFile;
import io.opentmr.protocol.AdminToken;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.opentmr.metrics.ServerMetrics;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;
import java.util.function.Supplier;
import org.apache.pekko.http.javadsl.model.ContentType;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpHeader;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.AttributeKeys;
import org.apache.pekko.http.javadsl.model.RemoteAddress;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.javadsl.unmarshalling.Unmarshaller;
import org.apache.pekko.pattern.AskTimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the routes of a backend and a node share: {@code /metrics}, the read allow-list, the admin token check of
 * every write (before the body is read), JSON answers and errors, paging, the license import's request body.
 * A subclass supplies each {@code /tmr} route's answer; every answer is built on the management executor
 * ({@code opentmr.management.dispatcher}), never on the component's own threads.
 */
abstract class ManagementRoutes extends AllDirectives {

    static final Logger LOG = LoggerFactory.getLogger("io.opentmr.management");
    static final ObjectMapper JSON = new ObjectMapper();
    private static final ContentType METRICS_TYPE = ContentTypes.parse(PrometheusTextFormatWriter.CONTENT_TYPE);

    final ManagementSettings settings;
    final Optional<AdminToken> token;
    final ServerMetrics metrics;
    final Executor executor;
    private final PrometheusTextFormatWriter metricsWriter = PrometheusTextFormatWriter.create();

    ManagementRoutes(ManagementSettings settings, Optional<AdminToken> token, ServerMetrics metrics,
                     Executor executor) {
        this.settings = settings;
        this.token = token;
        this.metrics = metrics;
        this.executor = executor;
    }

    /** The dashboard ({@code /}, {@code /dashboard/FILE}), {@code /metrics} and every {@code /tmr} route. */
    final Route route() {
        return extractRequest(request -> concat(
                // The page and its assets are reads like any other: read-allow applies to them.
                pathSingleSlash(() -> get(() -> readable(request,
                        () -> complete(Dashboard.get().answer(Dashboard.INDEX, request))))),
                path(PathMatchers.segment("dashboard").slash(PathMatchers.segment()), file -> get(() ->
                        readable(request, () -> complete(Dashboard.get().answer(file, request))))),
                path("metrics", () -> get(() -> readable(request, () -> completeWithFuture(
                        CompletableFuture.supplyAsync(this::metrics, executor))))),
                pathPrefix("tmr", () -> tmr(request))));
    }

    private Route tmr(HttpRequest request) {
        return concat(
                path("status", () -> get(() -> readable(request, () -> answer(this::status)))),
                path("backends", () -> get(() -> readable(request, () -> answer(this::backends)))),
                path("containers", () -> get(() -> readable(request, () -> answer(this::containers)))),
                path("licenses", () -> get(() -> readable(request, () -> answer(this::licenses)))),
                path(PathMatchers.segment("licenses").slash("import"), () -> post(() ->
                        writable(request, "license import", () -> entity(Unmarshaller.entityToString(),
                                body -> answer(() -> licenseImport(importFiles(body), who(request))))))),
                path("handles", () -> get(() -> readable(request,
                        () -> answer(() -> handles(HandleQuery.of(request, settings)))))),
                path(PathMatchers.segment("handles").slash(PathMatchers.segment()), id -> delete(() ->
                        writable(request, "force release of handle " + id,
                                () -> answer(() -> release(handleId(id), who(request)))))),
                path(PathMatchers.segment("node").slash("step-down"), () -> post(() ->
                        writable(request, "step-down", () -> answer(this::stepDown)))),
                // Anything else under /tmr: a JSON 404, as the dashboard expects.
                extractUnmatchedPath(rest -> complete(error(404, "no route " + request.getUri().path()
                        + " (" + request.method().value() + ")", null))));
    }

    // --- what a component answers --------------------------------------------------------------------------

    abstract CompletionStage<HttpResponse> status();

    abstract CompletionStage<HttpResponse> backends();

    abstract CompletionStage<HttpResponse> containers();

    abstract CompletionStage<HttpResponse> licenses();

    abstract CompletionStage<HttpResponse> handles(HandleQuery query);

    abstract CompletionStage<HttpResponse> release(long handleId, String by);

    /** A planned switch-over of a twin's active node ({@code tmr node step-down}); a backend has none. */
    CompletionStage<HttpResponse> stepDown() {
        return CompletableFuture.completedFuture(error(404, "a backend has no active role to hand over: ask the "
                + "active TMR node", null));
    }

    /** @param files the update files of the request, each as its bytes */
    abstract CompletionStage<HttpResponse> licenseImport(List<byte[]> files, String by);

    // --- reads and writes ----------------------------------------------------------------------------------

    private Route readable(HttpRequest request, Supplier<Route> inner) {
        InetAddress client = client(request);
        if (!settings.readAllow().allows(client)) {
            LOG.warn("Refused {} {} from {}: not in {}.read-allow ({})", request.method().value(),
                    request.getUri().path(), client == null ? "an unknown address" : client.getHostAddress(),
                    ManagementSettings.PATH, settings.readAllow());
            return complete(error(403, "this address may not use the management routes ("
                    + ManagementSettings.PATH + ".read-allow)", null));
        }
        return inner.get();
    }

    /**
     * The admin token first, before anything of the request's body is read: 401 without
     * {@code Authorization: Bearer …}, 403 with another token (or none configured). Both are logged.
     */
    private Route writable(HttpRequest request, String what, Supplier<Route> inner) {
        return readable(request, () -> {
            Optional<String> header = request.getHeader("Authorization").map(HttpHeader::value);
            String presented = header.filter(h -> h.regionMatches(true, 0, "Bearer ", 0, 7))
                    .map(h -> h.substring(7).strip()).orElse(null);
            String from = who(request);
            if (presented == null || presented.isEmpty()) {
                LOG.warn("Refused {} from {}: no admin token (Authorization: Bearer …)", what, from);
                return complete(error(401, "this route needs the admin token: Authorization: Bearer TOKEN", null)
                        .addHeader(HttpHeader.parse("WWW-Authenticate", "Bearer realm=\"opentmr\"")));
            }
            if (token.isEmpty() || !token.get().matches(presented)) {
                LOG.warn("Refused {} from {}: {}", what, from, token.isEmpty()
                        ? "this server has no admin token (" + AdminToken.TOKEN_FILE_KEY + ")" : "wrong admin token");
                return complete(error(403, token.isEmpty() ? "this server has no admin token ("
                        + AdminToken.TOKEN_FILE_KEY + "): writes over HTTP are off" : "wrong admin token", null));
            }
            LOG.info("{} asked by {}", what, from);
            return inner.get();
        });
    }

    private static InetAddress client(HttpRequest request) {
        return request.getAttribute(AttributeKeys.remoteAddress).flatMap(RemoteAddress::getAddress).orElse(null);
    }

    /** Who asked, for the logs and the tracking log: the client's address. */
    static String who(HttpRequest request) {
        InetAddress client = client(request);
        return "management HTTP client " + (client == null ? "?" : client.getHostAddress());
    }

    /**
     * Runs {@code answer} on the management executor, every failure turned into a JSON error ({@link BadRequest}:
     * 400).
     */
    private Route answer(Answer answer) {
        CompletionStage<HttpResponse> response = CompletableFuture.supplyAsync(() -> {
                    try {
                        return answer.get();
                    } catch (BadRequest e) {
                        return CompletableFuture.completedFuture(error(400, e.getMessage(), null));
                    }
                }, executor)
                .thenCompose(Function.identity())
                .exceptionally(ManagementRoutes::failure);
        return completeWithFuture(response);
    }

    @FunctionalInterface
    interface Answer {
        CompletionStage<HttpResponse> get() throws BadRequest;
    }

    /** A handle id of a path: decimal, unsigned 64 bits. */
    static long handleId(String text) throws BadRequest {
        try {
            return Long.parseUnsignedLong(text);
        } catch (NumberFormatException e) {
            throw new BadRequest("'" + text + "' is not a handle id (a decimal number)");
        }
    }

    private HttpResponse metrics() {
        ByteArrayOutputStream out = new ByteArrayOutputStream(16 * 1024);
        try {
            metricsWriter.write(out, metrics.scrape());
        } catch (IOException e) {
            throw new IllegalStateException("writing to memory does not fail", e);
        }
        return HttpResponse.create().withEntity(METRICS_TYPE, out.toByteArray());
    }

    // --- JSON ----------------------------------------------------------------------------------------------

    /** What the route needs does not run now (a twin's standby has no virtual container): answered 503. */
    static final class Unavailable extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Unavailable(String message) {
            super(message);
        }
    }

    /** A request the route cannot take: answered 400 with its message. */
    static final class BadRequest extends Exception {
        private static final long serialVersionUID = 1L;

        BadRequest(String message) {
            super(message);
        }
    }

    /** An ordered JSON object from key, value, key, value, … */
    static Map<String, Object> obj(Object... keysAndValues) {
        Map<String, Object> object = new LinkedHashMap<>();
        for (int i = 0; i < keysAndValues.length; i += 2) {
            object.put((String) keysAndValues[i], keysAndValues[i + 1]);
        }
        return object;
    }

    static HttpResponse json(int status, Object body) {
        try {
            return HttpResponse.create().withStatus(status)
                    .withEntity(ContentTypes.APPLICATION_JSON, JSON.writeValueAsBytes(body));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("maps, lists and plain values always serialise", e);
        }
    }

    static CompletionStage<HttpResponse> ok(Object body) {
        return CompletableFuture.completedFuture(json(200, body));
    }

    /**
     * {@code {"error": {"status": 404, "message": "…", "code": 106}}}; {@code code} is the CodeMeter error number
     * when one applies.
     */
    static HttpResponse error(int status, String message, Integer code) {
        Map<String, Object> error = obj("status", status, "message", message);
        if (code != null) {
            error.put("code", code);
        }
        return json(status, obj("error", error));
    }

    /** A failed answer as a JSON error: a CodeMeter refusal by its number, a timeout 503, anything else 500. */
    static HttpResponse failure(Throwable failed) {
        Throwable cause = failed;
        while ((cause instanceof CompletionException || cause instanceof java.util.concurrent.ExecutionException)
                && cause.getCause() != null) {
            cause = cause.getCause();
        }
        if (cause instanceof CmFailure refused) {
            return error(statusOf(refused.code()), refused.text(), refused.code());
        }
        if (cause instanceof Unavailable unavailable) {
            return error(503, unavailable.getMessage(), null);
        }
        if (cause instanceof TimeoutException || cause instanceof AskTimeoutException) {
            return error(503, "the server did not answer in time: " + cause.getMessage(), null);
        }
        LOG.error("A management route failed", cause);
        return error(500, "the route failed: " + cause, null);
    }

    /** The HTTP status of a CodeMeter refusal. */
    static int statusOf(int code) {
        if (code == CmError.INVALID_HANDLE.code() || code == CmError.ENTRY_NOT_FOUND.code()
                || code == CmError.BOX_NOT_FOUND.code()) {
            return 404;
        }
        if (code == CmError.INVALID_PARAMETER.code()) {
            return 400;
        }
        if (code == CmError.REQUEST_OVERLOAD.code() || code == CmError.REDUNDANCY_SERVER_MISSING.code()
                || code == CmError.TMR_LEASE_REFUSED.code()) {
            return 503;
        }
        if (code == CmError.NETWORK_FAULT.code()) {
            return 502;
        }
        return 422;
    }

    // --- shared shapes -------------------------------------------------------------------------------------

    /** The page of {@code all} (sorted already) that {@code query} asks for. */
    static <T> List<T> page(List<T> all, HandleQuery query) {
        int from = (int) Math.min(all.size(), (long) query.offset());
        int to = (int) Math.min(all.size(), (long) from + query.limit());
        return all.subList(from, to);
    }

    /** {@code {"total": N, "offset": …, "limit": …, "handles": […]}}. */
    static Map<String, Object> pageBody(int total, HandleQuery query, List<Map<String, Object>> rows) {
        return obj("total", total, "offset", query.offset(), "limit", query.limit(), "handles", rows);
    }

    static String instant(long epochMillis) {
        return epochMillis <= 0 ? null : Instant.ofEpochMilli(epochMillis).toString();
    }

    static String instant(Instant at) {
        return at == null ? null : at.toString();
    }

    /** A handle id as JSON: a string, since ids use all 64 bits and JavaScript numbers hold 53. */
    static String id(long handleId) {
        return Long.toUnsignedString(handleId);
    }

    /** What a product item's terms look like in {@code /tmr/licenses}. */
    static Map<String, Object> terms(ProductInfo product) {
        return obj("text", product.text(),
                "featureMap", product.featureMap(),
                "units", product.hasUnitCounter() ? obj("counter", true, "left", product.units())
                        : obj("counter", false, "left", null),
                "expiresAt", instant(product.expiresAtMillis()),
                "activatesAt", instant(product.activatesAtMillis()),
                "usagePeriodSeconds", product.usagePeriodSeconds() == 0 ? null : product.usagePeriodSeconds(),
                "usageStartedAt", instant(product.usageStartedAtMillis()),
                "borrowMaxSeconds", product.borrowMaxSeconds() == 0 ? null : product.borrowMaxSeconds());
    }

    /**
     * The files of {@code POST /tmr/licenses/import}: {@code {"files": [FILE, …]}}, each FILE a license update file
     * as JSON (the content of a {@code .json} file {@code tmr license issue} wrote) or that content as a string.
     */
    static List<byte[]> importFiles(String body) throws BadRequest {
        JsonNode root;
        try {
            root = JSON.readTree(body);
        } catch (JsonProcessingException e) {
            throw new BadRequest("the body is not JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject() || !root.path("files").isArray() || root.path("files").isEmpty()) {
            throw new BadRequest("expected {\"files\": [FILE, …]}: one or more license update files");
        }
        List<byte[]> files = new ArrayList<>();
        for (JsonNode file : root.path("files")) {
            if (file.isTextual()) {
                files.add(file.asText().getBytes(StandardCharsets.UTF_8));
            } else if (file.isObject()) {
                try {
                    files.add(JSON.writeValueAsBytes(file));
                } catch (JsonProcessingException e) {
                    throw new BadRequest("file " + files.size() + " cannot be written back: " + e.getMessage());
                }
            } else {
                throw new BadRequest("file " + files.size() + " is neither a JSON object nor a string");
            }
        }
        return files;
    }

    /** The container a license update file is for, read from its body without checking its signature. */
    static Serial target(byte[] file) {
        try {
            return LicenseUpdateFile.target(file);
        } catch (LicenseRefusedException e) {
            throw new CmFailure(e.error(), e.getMessage());
        }
    }

    /** One file's outcome in an import's answer. */
    static Map<String, Object> imported(int file, Serial target, Integer backend, Throwable failed,
                                        io.opentmr.protocol.Message.LicenseUpdateOk ok) {
        Map<String, Object> result = obj("file", file, "target", target == null ? null : target.toString());
        if (backend != null) {
            result.put("backend", backend);
        }
        if (failed == null) {
            result.put("ok", true);
            result.put("firmCode", ok.firmCode());
            result.put("firmUpdateCounter", ok.firmUpdateCounter());
        } else {
            Throwable cause = failed instanceof CompletionException && failed.getCause() != null
                    ? failed.getCause() : failed;
            int code = cause instanceof CmFailure refused ? refused.code()
                    : cause instanceof io.opentmr.client.CmException sdk ? sdk.code() : CmError.NETWORK_FAULT.code();
            String text = cause instanceof CmFailure refused ? refused.text() : cause.getMessage();
            result.put("ok", false);
            result.put("error", obj("code", code, "message", text));
        }
        return result;
    }

    /** Where one file of an import goes, once the container it names is read from it. */
    @FunctionalInterface
    interface FileImport {
        CompletionStage<Map<String, Object>> apply(int file, byte[] content, Serial target);
    }

    /**
     * Imports {@code files} each through {@code each} (a file whose target cannot be read gets its error without
     * it), all side by side; the answer lists every file's outcome ({@link #importAnswer}).
     */
    static CompletionStage<HttpResponse> importEach(List<byte[]> files, FileImport each) {
        List<CompletableFuture<Map<String, Object>>> results = new java.util.ArrayList<>();
        for (int i = 0; i < files.size(); i++) {
            byte[] content = files.get(i);
            Serial target;
            try {
                target = target(content);
            } catch (CmFailure malformed) {
                results.add(CompletableFuture.completedFuture(imported(i, null, null, malformed, null)));
                continue;
            }
            results.add(each.apply(i, content, target).toCompletableFuture());
        }
        return CompletableFuture.allOf(results.toArray(CompletableFuture[]::new))
                .thenApply(done -> importAnswer(results.stream().map(CompletableFuture::join).toList()));
    }

    /** An import's answer: 200 when every file was imported, 422 when one or more were refused. */
    static HttpResponse importAnswer(List<Map<String, Object>> results) {
        long imported = results.stream().filter(r -> Boolean.TRUE.equals(r.get("ok"))).count();
        return json(imported == results.size() ? 200 : 422, obj("imported", imported,
                "refused", results.size() - imported, "results", results));
    }
}
