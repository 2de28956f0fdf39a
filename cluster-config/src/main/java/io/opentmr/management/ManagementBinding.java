package io.opentmr.management;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Extension;
import org.apache.pekko.actor.typed.ExtensionId;
import org.apache.pekko.http.javadsl.server.Route;

/**
 * Where pekko-management, which creates its route providers and health checks by class name, finds the component
 * they serve: {@link Management} binds the component's routes and readiness here before it starts pekko-management.
 */
public final class ManagementBinding implements Extension {

    private static final class Id extends ExtensionId<ManagementBinding> {
        @Override
        public ManagementBinding createExtension(ActorSystem<?> system) {
            return new ManagementBinding();
        }
    }

    private static final Id ID = new Id();

    private volatile Supplier<Route> routes;
    private volatile Supplier<CompletionStage<Boolean>> readiness = () -> CompletableFuture.completedFuture(false);

    public static ManagementBinding get(ActorSystem<?> system) {
        return ID.apply(system);
    }

    void bind(Supplier<Route> routes, Supplier<CompletionStage<Boolean>> readiness) {
        this.routes = routes;
        this.readiness = readiness;
    }

    Route routes() {
        Supplier<Route> bound = routes;
        if (bound == null) {
            throw new IllegalStateException("no OpenTMR component is bound to this actor system's management HTTP");
        }
        return bound.get();
    }

    CompletionStage<Boolean> ready() {
        return readiness.get();
    }
}
