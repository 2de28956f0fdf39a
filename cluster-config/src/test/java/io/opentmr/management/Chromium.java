package io.opentmr.management;

import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Assumptions;

/**
 * Debian's headless Chromium driven over the DevTools protocol (a WebSocket of the JDK's HTTP client, JSON by
 * Jackson): navigate, evaluate, click with real mouse events, type, take screenshots. Outside CI a machine without
 * chromium skips the test and says what to install; in CI ({@code CI=true}, where {@code .ci/run} installs it) a
 * missing chromium fails the test. Every wait is bounded; {@link #close} ends the browser and its child processes.
 * Public for the multi-process tests (it-tests), which load the demo's pages.
 */
public final class Chromium implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(30);

    private final Process process;
    private final WebSocket socket;
    private final String version;
    private final AtomicInteger ids = new AtomicInteger();
    private final Map<Integer, CompletableFuture<JsonNode>> pending = new ConcurrentHashMap<>();
    /** JavaScript exceptions and console/security errors the page reported. */
    private final List<String> errors = new CopyOnWriteArrayList<>();

    private Chromium(Process process, String webSocketUrl, String version) throws Exception {
        this.process = process;
        this.version = version;
        this.socket = HttpClient.newHttpClient().newWebSocketBuilder().connectTimeout(Duration.ofSeconds(10))
                .buildAsync(URI.create(webSocketUrl), new Listener()).get(20, TimeUnit.SECONDS);
    }

    /** chromium on the PATH, if there is one. */
    public static Optional<Path> find() {
        for (String name : List.of("chromium", "chromium-browser")) {
            for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
                Path candidate = Path.of(dir.isEmpty() ? "." : dir, name);
                if (Files.isExecutable(candidate)) {
                    return Optional.of(candidate);
                }
            }
        }
        return Optional.empty();
    }

    /**
     * chromium on the PATH; missing: skipped outside CI (saying what to install), failed in CI. Call it from each test
     * (or a {@code @BeforeEach}): a class skipped in {@code @BeforeAll} shows in Surefire's report as no test at all.
     */
    public static Path require() {
        Optional<Path> found = find();
        if (found.isPresent()) {
            return found.get();
        }
        String message = "chromium is not installed: apt-get install chromium (Debian's package; the dashboard's "
                + "browser test drives it headless)";
        if ("true".equalsIgnoreCase(System.getenv("CI"))) {
            fail(message + "; .ci/run installs it, so CI must have it");
        }
        Assumptions.abort(message);
        throw new AssertionError("unreachable");
    }

    /**
     * Starts headless Chromium with a fresh profile in {@code profile}, its output in {@code log}, a window of
     * {@code width} x {@code height}, and connects to its first page.
     */
    public static Chromium start(Path profile, Path log, int width, int height) throws Exception {
        Path binary = require();
        Files.createDirectories(profile);
        Files.createDirectories(log.getParent());
        List<String> command = List.of(binary.toString(),
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--user-data-dir=" + profile, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                "--window-size=" + width + "," + height, "about:blank");
        Process process = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.to(log.toFile())).start();
        try {
            // Chromium writes the port it chose (and the browser's path) to this file once DevTools listens.
            Path portFile = profile.resolve("DevToolsActivePort");
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (!Files.exists(portFile) || Files.readAllLines(portFile).isEmpty()) {
                if (!process.isAlive()) {
                    throw new IllegalStateException("chromium exited with " + process.exitValue() + " before "
                            + "DevTools listened; its output: " + Files.readString(log));
                }
                if (System.nanoTime() - deadline > 0) {
                    throw new IllegalStateException("chromium's DevTools did not listen within 30 s; its output: "
                            + Files.readString(log));
                }
                Thread.sleep(100);
            }
            int port = Integer.parseInt(Files.readAllLines(portFile).get(0).strip());
            HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
            JsonNode info = get(http, port, "/json/version");
            String pageSocket = null;
            long pageDeadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
            while (pageSocket == null) {
                for (JsonNode target : get(http, port, "/json/list")) {
                    if ("page".equals(target.path("type").asText())) {
                        pageSocket = target.path("webSocketDebuggerUrl").asText();
                        break;
                    }
                }
                if (pageSocket == null) {
                    if (System.nanoTime() - pageDeadline > 0) {
                        throw new IllegalStateException("chromium opened no page within 20 s");
                    }
                    Thread.sleep(100);
                }
            }
            Chromium chromium = new Chromium(process, pageSocket, info.path("Browser").asText());
            chromium.send("Runtime.enable", Map.of());
            chromium.send("Log.enable", Map.of());
            chromium.send("Page.enable", Map.of());
            chromium.send("Emulation.setDeviceMetricsOverride", Map.of("width", width, "height", height,
                    "deviceScaleFactor", 1, "mobile", false));
            return chromium;
        } catch (Exception | Error e) {
            kill(process);
            throw e;
        }
    }

    private static JsonNode get(HttpClient http, int port, String path) throws IOException, InterruptedException {
        HttpResponse<String> response = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
        return JSON.readTree(response.body());
    }

    /** What the browser says it is, e.g. {@code Chrome/156.0.8078.114}. */
    public String version() {
        return version;
    }

    /** JavaScript exceptions and console or security (CSP) errors the pages reported so far. */
    public List<String> errors() {
        return List.copyOf(errors);
    }

    /** Forgets the errors reported so far (after a test provoked them on purpose). */
    public void clearErrors() {
        errors.clear();
    }

    /** One DevTools command; its result. */
    public JsonNode send(String method, Map<String, ?> params) throws Exception {
        int id = ids.incrementAndGet();
        CompletableFuture<JsonNode> answer = new CompletableFuture<>();
        pending.put(id, answer);
        ObjectNode message = JSON.createObjectNode().put("id", id).put("method", method);
        message.set("params", JSON.valueToTree(params));
        synchronized (socket) {
            socket.sendText(JSON.writeValueAsString(message), true).get(10, TimeUnit.SECONDS);
        }
        try {
            JsonNode reply = answer.get(COMMAND_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            if (reply.has("error")) {
                throw new IllegalStateException(method + " failed: " + reply.path("error"));
            }
            return reply.path("result");
        } catch (TimeoutException e) {
            throw new IllegalStateException(method + " got no answer within " + COMMAND_TIMEOUT, e);
        } finally {
            pending.remove(id);
        }
    }

    /** Loads {@code url} and waits (bounded) until its document has loaded. */
    public void navigate(String url) throws Exception {
        JsonNode result = send("Page.navigate", Map.of("url", url));
        if (result.hasNonNull("errorText")) {
            throw new IllegalStateException("cannot load " + url + ": " + result.path("errorText").asText());
        }
        await("the page " + url + " has loaded", "document.readyState === 'complete' && location.href === "
                + JSON.writeValueAsString(url), Duration.ofSeconds(20));
    }

    /** The value of a JavaScript expression (a promise is awaited); a thrown exception fails the test. */
    public JsonNode evaluate(String expression) throws Exception {
        JsonNode result = send("Runtime.evaluate", Map.of("expression", expression, "returnByValue", true,
                "awaitPromise", true));
        if (result.has("exceptionDetails")) {
            throw new AssertionError("the page threw on " + expression + ": " + result.path("exceptionDetails"));
        }
        return result.path("result").path("value");
    }

    /** Waits until {@code condition} (JavaScript) is true, at most {@code bound}. */
    public void await(String what, String condition, Duration bound) throws Exception {
        long deadline = System.nanoTime() + bound.toNanos();
        while (!evaluate("Boolean(" + condition + ")").asBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("not within " + bound.toSeconds() + " s: " + what + " (" + condition + ")");
            }
            Thread.sleep(100);
        }
    }

    /** A real click (mouse moved, pressed, released) at the middle of the element {@code selector} finds. */
    public void click(String selector) throws Exception {
        String json = JSON.writeValueAsString(selector);
        JsonNode box = evaluate("(() => { const e = document.querySelector(" + json + "); if (!e) return null;"
                + " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
                + " return {x: r.left + r.width / 2, y: r.top + r.height / 2, w: r.width, h: r.height}; })()");
        if (box.isNull() || box.isMissingNode()) {
            throw new AssertionError("nothing on the page matches " + selector);
        }
        if (box.path("w").asDouble() == 0 || box.path("h").asDouble() == 0) {
            throw new AssertionError(selector + " is not visible");
        }
        double x = box.path("x").asDouble();
        double y = box.path("y").asDouble();
        send("Input.dispatchMouseEvent", Map.of("type", "mouseMoved", "x", x, "y", y));
        send("Input.dispatchMouseEvent", Map.of("type", "mousePressed", "x", x, "y", y, "button", "left",
                "clickCount", 1));
        send("Input.dispatchMouseEvent", Map.of("type", "mouseReleased", "x", x, "y", y, "button", "left",
                "clickCount", 1));
    }

    /** Types {@code text} into the focused element. */
    public void type(String text) throws Exception {
        send("Input.insertText", Map.of("text", text));
    }

    /** The whole page as a PNG in {@code file}. */
    public void screenshot(Path file) throws Exception {
        JsonNode size = send("Page.getLayoutMetrics", Map.of()).path("cssContentSize");
        JsonNode shot = send("Page.captureScreenshot", Map.of("format", "png", "captureBeyondViewport", true,
                "clip", Map.of("x", 0, "y", 0, "width", size.path("width").asDouble(),
                        "height", size.path("height").asDouble(), "scale", 1)));
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.write(file, Base64.getDecoder().decode(shot.path("data").asText()));
    }

    @Override
    public void close() {
        try {
            socket.sendClose(WebSocket.NORMAL_CLOSURE, "done").get(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException | TimeoutException | RuntimeException e) {
            // the browser is ended below whatever the socket does
        }
        kill(process);
    }

    /** Ends the browser and every process it started, bounded. */
    private static void kill(Process process) {
        List<ProcessHandle> children = new ArrayList<>(process.descendants().toList());
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
        children.forEach(ProcessHandle::destroyForcibly);
    }

    private final class Listener implements WebSocket.Listener {
        private final StringBuilder text = new StringBuilder();

        @Override
        public CompletionStage<?> onText(WebSocket webSocket, CharSequence data, boolean last) {
            text.append(data);
            if (last) {
                String message = text.toString();
                text.setLength(0);
                onMessage(message);
            }
            webSocket.request(1);
            return null;
        }

        private void onMessage(String message) {
            JsonNode node;
            try {
                node = JSON.readTree(message);
            } catch (IOException e) {
                errors.add("DevTools sent no JSON: " + message);
                return;
            }
            if (node.has("id")) {
                CompletableFuture<JsonNode> answer = pending.get(node.path("id").asInt());
                if (answer != null) {
                    answer.complete(node);
                }
                return;
            }
            String method = node.path("method").asText();
            JsonNode params = node.path("params");
            if (method.equals("Runtime.exceptionThrown")) {
                JsonNode details = params.path("exceptionDetails");
                errors.add("exception: " + details.path("exception").path("description").asText(
                        details.path("text").asText()));
            } else if (method.equals("Log.entryAdded") && "error".equals(params.path("entry").path("level").asText())
                    && !"network".equals(params.path("entry").path("source").asText())) {
                // Network errors are what the test provokes (a backend killed); the others are the page's faults.
                errors.add(params.path("entry").path("source").asText() + ": "
                        + params.path("entry").path("text").asText());
            } else if (method.equals("Runtime.consoleAPICalled") && "error".equals(params.path("type").asText())) {
                errors.add("console.error: " + params.path("args"));
            }
        }

        @Override
        public void onError(WebSocket webSocket, Throwable error) {
            pending.values().forEach(answer -> answer.completeExceptionally(error));
        }

        @Override
        public CompletionStage<?> onClose(WebSocket webSocket, int statusCode, String reason) {
            pending.values().forEach(answer -> answer.completeExceptionally(
                    new IOException("DevTools closed the connection: " + statusCode + " " + reason)));
            return null;
        }
    }
}
