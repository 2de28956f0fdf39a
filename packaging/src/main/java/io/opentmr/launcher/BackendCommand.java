package io.opentmr.launcher;

import io.opentmr.backend.Backend;
import io.opentmr.backend.BackendSettings;
import io.opentmr.management.Management;
import io.opentmr.management.ManagementSettings;
import io.opentmr.protocol.AdminToken;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code tmr backend}: a backend license server in the foreground until SIGTERM or Ctrl-C. */
@Command(name = "backend", mixinStandardHelpOptions = true,
        description = {"Run a backend license server on port 22350.",
                "Every flag is also a HOCON key under opentmr.backend (see --config)."})
final class BackendCommand implements Callable<Integer> {

    @Option(names = "--address", description = "IP address to listen on (opentmr.backend.address).")
    String address;

    @Option(names = "--port", description = "Port (opentmr.backend.port), default 22350.")
    Integer port;

    @Option(names = "--data-dir", description = "Journal, container identity, tracking log (opentmr.backend.data-dir).")
    Path dataDir;

    @Option(names = "--vendor-key", description = "A vendor public key file (vendor.pub) whose licenses to accept; "
            + "repeat for several (opentmr.backend.vendor-keys).")
    List<Path> vendorKeys;

    @Option(names = "--cm-act-id", description = "CmActId of the container created on first start "
            + "(opentmr.backend.cm-act-id).")
    Long cmActId;

    @Option(names = "--additional-container", paramLabel = "CMACTID", description = "CmActId of a further container "
            + "this backend holds, with its own serial, keys and licenses; repeat for several "
            + "(opentmr.backend.additional-containers).")
    List<Long> additionalContainers;

    @Option(names = "--secret-file", description = "The cluster secret shared with the TMR nodes "
            + "(opentmr.cluster.secret-file); without it TMR nodes are refused.")
    Path secretFile;

    @Option(names = "--admin-token-file", description = "File (mode 0600) with the installation's admin token: "
            + "admin messages from other hosts and management HTTP writes need it (" + AdminToken.TOKEN_FILE_KEY + ").")
    Path adminTokenFile;

    @Option(names = "--management-port", description = "Port of management HTTP on the backend's address "
            + "(opentmr.management.port), default 7626; 0: a free port.")
    Integer managementPort;

    @Option(names = "--config", description = "HOCON file with opentmr.backend.* and other settings.")
    Path config;

    @Override
    public Integer call() throws Exception {
        Map<String, Object> flags = new HashMap<>();
        String p = BackendSettings.PATH + ".";
        if (address != null) {
            flags.put(p + "address", address);
        }
        if (port != null) {
            flags.put(p + "port", port);
        }
        if (dataDir != null) {
            flags.put(p + "data-dir", dataDir.toAbsolutePath().toString());
        }
        if (vendorKeys != null) {
            flags.put(p + "vendor-keys", vendorKeys.stream().map(k -> k.toAbsolutePath().toString()).toList());
        }
        if (cmActId != null) {
            flags.put(p + "cm-act-id", cmActId);
        }
        if (additionalContainers != null) {
            flags.put(p + "additional-containers", additionalContainers);
        }
        if (secretFile != null) {
            flags.put(io.opentmr.protocol.PeerAuth.SECRET_FILE_KEY, secretFile.toAbsolutePath().toString());
        }
        if (adminTokenFile != null) {
            flags.put(AdminToken.TOKEN_FILE_KEY, adminTokenFile.toAbsolutePath().toString());
        }
        if (managementPort != null) {
            flags.put(ManagementSettings.PATH + ".port", managementPort);
        }
        var resolved = LauncherConfig.resolve(flags, config, p + "data-dir");
        BackendSettings settings = BackendSettings.from(resolved);
        ManagementSettings management = ManagementSettings.from(resolved, settings.address());
        java.nio.file.Files.createDirectories(settings.dataDir());
        TrackingLogFile.install(settings.dataDir());
        Backend backend = Backend.start(management.enabled() ? management.pekkoConfig(false).withFallback(resolved)
                : resolved);
        Management http;
        try {
            http = management.enabled() ? Management.forBackend(backend, management) : null;
        } catch (RuntimeException e) {
            backend.close();
            throw e;
        }
        java.util.concurrent.atomic.AtomicBoolean asked = new java.util.concurrent.atomic.AtomicBoolean();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            asked.set(true);
            if (http != null) {
                http.close();
            }
            backend.close();
        }, "opentmr-backend-shutdown"));
        System.out.println("Backend " + backend.identity().serial() + " (CmActId " + backend.identity().cmActId()
                + ") listening on " + backend.address().getAddress().getHostAddress() + ":" + backend.address().getPort());
        for (var more : backend.containers().all().subList(1, backend.containers().size())) {
            System.out.println("  also container " + more.identity().serial() + " (CmActId " + more.identity().cmActId()
                    + ")");
        }
        if (http != null) {
            System.out.println("Management HTTP on " + http.url());
        }
        backend.whenTerminated().toCompletableFuture().join();
        if (!asked.get()) {
            // Not a SIGTERM or Ctrl-C: the backend failed, and a supervisor (systemd) must see it.
            System.err.println("tmr: the backend stopped without being asked to; see the log above");
            return Output.CM_ERROR;
        }
        return Output.OK;
    }
}
