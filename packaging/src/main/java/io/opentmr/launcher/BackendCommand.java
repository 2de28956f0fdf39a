package io.opentmr.launcher;

import io.opentmr.backend.Backend;
import io.opentmr.backend.BackendSettings;
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

    @Option(names = "--secret-file", description = "The cluster secret shared with the TMR nodes "
            + "(opentmr.cluster.secret-file); without it TMR nodes are refused.")
    Path secretFile;

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
        if (secretFile != null) {
            flags.put(io.opentmr.protocol.PeerAuth.SECRET_FILE_KEY, secretFile.toAbsolutePath().toString());
        }
        var resolved = LauncherConfig.resolve(flags, config, p + "data-dir");
        BackendSettings settings = BackendSettings.from(resolved);
        java.nio.file.Files.createDirectories(settings.dataDir());
        TrackingLogFile.install(settings.dataDir());
        Backend backend = Backend.start(resolved);
        java.util.concurrent.atomic.AtomicBoolean asked = new java.util.concurrent.atomic.AtomicBoolean();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            asked.set(true);
            backend.close();
        }, "opentmr-backend-shutdown"));
        System.out.println("Backend " + backend.identity().serial() + " (CmActId " + backend.identity().cmActId()
                + ") listening on " + backend.address().getAddress().getHostAddress() + ":" + backend.address().getPort());
        backend.whenTerminated().toCompletableFuture().join();
        if (!asked.get()) {
            // Not a SIGTERM or Ctrl-C: the backend failed, and a supervisor (systemd) must see it.
            System.err.println("tmr: the backend stopped without being asked to; see the log above");
            return Output.CM_ERROR;
        }
        return Output.OK;
    }
}
