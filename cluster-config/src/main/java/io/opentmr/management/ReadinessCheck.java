package io.opentmr.management;

import java.util.concurrent.CompletionStage;
import java.util.function.Supplier;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;

/**
 * The readiness check of {@code /health/ready}, as pekko-management loads it (by class name): the bound
 * component's own (a node: it holds the lease and serves; a backend: its container answers). pekko-management
 * answers 200 when every check is true, and 500 ("Not Healthy: …") when one is false or fails.
 */
public final class ReadinessCheck implements Supplier<CompletionStage<Boolean>> {

    private final ActorSystem system;

    public ReadinessCheck(ActorSystem system) {
        this.system = system;
    }

    @Override
    public CompletionStage<Boolean> get() {
        return ManagementBinding.get(Adapter.toTyped(system)).ready();
    }
}
