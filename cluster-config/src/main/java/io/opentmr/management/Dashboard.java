package io.opentmr.management;

import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.pekko.http.javadsl.model.ContentType;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpHeader;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.model.headers.RawHeader;

/**
 * The operators' dashboard: a page and its two assets (plain HTML, CSS and JavaScript over the JSON routes, nothing
 * fetched from elsewhere), read from the jar once and answered from memory. Only the files listed here are served,
 * so no path from a request ever reaches the class path. Each answer carries an ETag and {@code Cache-Control:
 * no-cache} (a browser revalidates and gets 304 until an upgrade changes the file) and a Content-Security-Policy that
 * lets the page talk to its own server only.
 */
final class Dashboard {

    /** Where the files are, beside this class. */
    static final String RESOURCES = "dashboard/";
    static final String INDEX = "index.html";
    /** The files served under {@code /dashboard/}, and their types. */
    static final Map<String, ContentType> FILES = files();

    static final String CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; "
            + "connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

    /** One file, as served. */
    record Asset(String name, ContentType type, byte[] body, String etag) {
    }

    private static final Dashboard INSTANCE = load();

    private final Map<String, Asset> assets;

    private Dashboard(Map<String, Asset> assets) {
        this.assets = assets;
    }

    /** The dashboard of this jar, read once. */
    static Dashboard get() {
        return INSTANCE;
    }

    private static Map<String, ContentType> files() {
        Map<String, ContentType> files = new LinkedHashMap<>();
        files.put(INDEX, ContentTypes.TEXT_HTML_UTF8);
        files.put("dashboard.css", ContentTypes.parse("text/css; charset=UTF-8"));
        files.put("dashboard.js", ContentTypes.parse("text/javascript; charset=UTF-8"));
        return Map.copyOf(files);
    }

    /**
     * Reads every listed file from the class path.
     *
     * @throws IllegalStateException when one is missing: a jar built without them
     */
    static Dashboard load() {
        Map<String, Asset> assets = new LinkedHashMap<>();
        for (Map.Entry<String, ContentType> file : FILES.entrySet()) {
            String name = file.getKey();
            try (InputStream in = Dashboard.class.getResourceAsStream(RESOURCES + name)) {
                if (in == null) {
                    throw new IllegalStateException("the dashboard's " + name + " is missing from the jar ("
                            + Dashboard.class.getPackageName().replace('.', '/') + "/" + RESOURCES + name + ")");
                }
                byte[] body = in.readAllBytes();
                assets.put(name, new Asset(name, file.getValue(), body, etag(body)));
            } catch (IOException e) {
                throw new IllegalStateException("cannot read the dashboard's " + name + ": " + e, e);
            }
        }
        return new Dashboard(Map.copyOf(assets));
    }

    /** A strong entity tag: the first 16 bytes of the content's SHA-256, quoted. */
    static String etag(byte[] body) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(body);
            return "\"" + HexFormat.of().formatHex(digest, 0, 16) + "\"";
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
    }

    Optional<Asset> asset(String name) {
        return Optional.ofNullable(assets.get(name));
    }

    /** The answer to a GET of {@code name}: the file, 304 when the browser has it already, or a JSON 404. */
    HttpResponse answer(String name, HttpRequest request) {
        Asset asset = assets.get(name);
        if (asset == null) {
            return ManagementRoutes.error(404, "the dashboard has no file '" + name + "' (it has "
                    + String.join(", ", assets.keySet().stream().sorted().toList()) + ")", null);
        }
        List<HttpHeader> headers = List.of(
                RawHeader.create("ETag", asset.etag()),
                RawHeader.create("Cache-Control", "no-cache"),
                RawHeader.create("X-Content-Type-Options", "nosniff"),
                RawHeader.create("Referrer-Policy", "no-referrer"),
                RawHeader.create("Content-Security-Policy", CONTENT_SECURITY_POLICY));
        if (notModified(request, asset.etag())) {
            return HttpResponse.create().withStatus(StatusCodes.NOT_MODIFIED).addHeaders(headers);
        }
        return HttpResponse.create().withEntity(asset.type(), asset.body()).addHeaders(headers);
    }

    /** Whether {@code If-None-Match} names {@code etag} (or is {@code *}); weak tags compare as strong ones. */
    static boolean notModified(HttpRequest request, String etag) {
        Optional<String> header = request.getHeader("If-None-Match").map(HttpHeader::value);
        if (header.isEmpty()) {
            return false;
        }
        for (String tag : header.get().split(",")) {
            String t = tag.strip();
            if (t.startsWith("W/")) {
                t = t.substring(2);
            }
            if (t.equals("*") || t.equals(etag)) {
                return true;
            }
        }
        return false;
    }
}
