package io.opentmr.management;

import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.management.javadsl.ManagementRouteProvider;
import org.apache.pekko.management.javadsl.ManagementRouteProviderSettings;

/** OpenTMR's routes ({@code /tmr/...}, {@code /metrics}) as pekko-management loads them: by class name. */
public final class TmrRouteProvider implements ManagementRouteProvider {

    private final ExtendedActorSystem system;

    public TmrRouteProvider(ExtendedActorSystem system) {
        this.system = system;
    }

    @Override
    public Route routes(ManagementRouteProviderSettings settings) {
        return ManagementBinding.get(Adapter.toTyped(system)).routes();
    }
}
