package io.opentmr.management;

import com.typesafe.config.ConfigException;
import io.opentmr.backend.Backend;
import io.opentmr.backend.Container;
import io.opentmr.protocol.AdminToken;
import io.opentmr.tmr.TmrNode;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import javax.net.ssl.SSLContext;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.http.javadsl.ConnectionContext;
import org.apache.pekko.http.javadsl.model.Uri;
import org.apache.pekko.management.javadsl.PekkoManagement;

/**
 * Management HTTP of one component (DESIGN §7): pekko-management in the component's own actor system, with its
 * health routes ({@code /health/alive}, {@code /health/ready} with the component's readiness), OpenTMR's JSON routes
 * under {@code /tmr} and {@code /metrics}. The component's actor system must have been created with
 * {@link ManagementSettings#pekkoConfig} laid over its config.
 */
public final class Management implements AutoCloseable {

    private final ActorSystem<?> system;
    private final Uri uri;

    private Management(ActorSystem<?> system, Uri uri) {
        this.system = system;
        this.uri = uri;
    }

    /**
     * Serves a TMR node's management HTTP; ready while the node serves (it holds the lease and has reconciled).
     *
     * @throws IllegalStateException when it cannot listen
     * @throws ConfigException       for bad HTTPS files
     */
    public static Management forNode(TmrNode node, ManagementSettings settings) {
        // The admin token the node read from its settings: one file read, one token for the wire and HTTP.
        Optional<AdminToken> token = node.settings().adminToken();
        Executor executor = executor(node.actorSystem());
        NodeRoutes routes = new NodeRoutes(node, settings, token, executor);
        return start(node.actorSystem(), settings, routes::route,
                () -> CompletableFuture.completedFuture(node.serving()));
    }

    /**
     * Serves a backend's management HTTP; ready while its container answers.
     *
     * @throws IllegalStateException when it cannot listen
     */
    public static Management forBackend(Backend backend, ManagementSettings settings) {
        String given = backend.settings().adminToken();
        Optional<AdminToken> token = given.isEmpty() ? Optional.empty() : Optional.of(AdminToken.of(given));
        Executor executor = executor(backend.actorSystem());
        BackendRoutes routes = new BackendRoutes(backend, settings, token, executor);
        return start(backend.actorSystem(), settings, routes::route,
                () -> backend.ask(Container.Describe::new, settings.askTimeout()).thenApply(described -> true));
    }

    private static Executor executor(ActorSystem<?> system) {
        return system.dispatchers().lookup(DispatcherSelector.fromConfig(ManagementSettings.DISPATCHER));
    }

    private static Management start(ActorSystem<?> system, ManagementSettings settings,
                                    Supplier<org.apache.pekko.http.javadsl.server.Route> routes,
                                    Supplier<CompletionStage<Boolean>> readiness) {
        ManagementBinding.get(system).bind(routes, readiness);
        PekkoManagement management = PekkoManagement.get(system);
        CompletionStage<Uri> started;
        if (settings.https().isPresent()) {
            SSLContext context;
            try {
                context = Https.context(settings.https().get());
            } catch (IllegalArgumentException e) {
                throw new ConfigException.BadValue(ManagementSettings.PATH + ".https", e.getMessage());
            }
            started = management.start(s -> s.withHttpsConnectionContext(ConnectionContext.httpsServer(context)));
        } else {
            started = management.start();
        }
        try {
            Uri uri = started.toCompletableFuture().get(30, TimeUnit.SECONDS);
            // The port is given up first when the component's actor system stops (service-unbind, before the cluster
            // and remoting phases): a twin node restarting in its process binds it again at once, even while its old
            // actor system still terminates (Pekko 1.2's Artery over TLS can keep one alive for minutes), and a
            // stopped incarnation never answers for the node meanwhile.
            CoordinatedShutdown.get(system).addTask(CoordinatedShutdown.PhaseServiceUnbind(),
                    "opentmr-management-unbind", management::stop);
            ManagementRoutes.LOG.info("Management HTTP on {} (reads from {}; writes with the admin token)", uri,
                    settings.readAllow());
            return new Management(system, uri);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while starting management HTTP", e);
        } catch (Exception e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            while (cause.getCause() != null && cause.getMessage() != null
                    && cause.getMessage().startsWith("Failed to start")) {
                cause = cause.getCause();
            }
            throw new IllegalStateException("cannot serve management HTTP on " + settings.address() + ":"
                    + settings.port() + ": " + cause, e);
        }
    }

    /** Where it listens, e.g. {@code http://127.0.2.1:7626}. */
    public Uri uri() {
        return uri;
    }

    /** {@code http(s)://ADDRESS:PORT}, without a trailing slash. */
    public String url() {
        return uri.scheme() + "://" + uri.host().address() + ":" + uri.port();
    }

    public int port() {
        return uri.port();
    }

    @Override
    public void close() {
        try {
            PekkoManagement.get(system).stop().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            ManagementRoutes.LOG.warn("Management HTTP did not stop within 10 s: {}", e.toString());
        }
    }
}
