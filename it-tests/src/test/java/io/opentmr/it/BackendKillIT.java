package io.opentmr.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.client.AdminClient;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.license.VendorState;
import io.opentmr.protocol.Serial;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A backend process killed with SIGKILL while clients hold handles and have used units: restarted on
 * the same data directory it has them all, and the SDK resumes its handles without the application
 * noticing.
 */
@Timeout(180)
class BackendKillIT {

    private static final long FIRM = 6_000_010;

    @TempDir
    Path dir;

    @Test
    void handlesAndUnitsSurviveKillNineAndTheClientResumes() throws Exception {
        KeyPair vendor = VendorKeyFiles.generate(dir.resolve("vendor"));
        int port;
        try (ServerSocket probe = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            port = probe.getLocalPort();
        }
        String[] backend = {"backend", "--address", "127.0.0.1", "--port", String.valueOf(port),
                "--data-dir", dir.resolve("data").toString(), "--vendor-key", dir.resolve("vendor/vendor.pub").toString(),
                "--cm-act-id", "7", "--management-port", "0"};
        String address = "127.0.0.1:" + port;

        TmrProcess first = TmrProcess.start(dir.resolve("first.log"), "listening on", backend);
        TmrClient client = null;
        try {
            first.awaitReady(Duration.ofSeconds(60));
            try (AdminClient admin = AdminClient.connect(TmrClientOptions.builder().addresses(address).build(), "")) {
                ContainerContext context = ContainerContext.parse(admin.licenseContext(Serial.NONE));
                byte[] file = new LicenseIssuer(vendor.getPrivate(), vendor.getPublic(), Clock.systemUTC(),
                        new SecureRandom()).issue(VendorState.empty(), List.of(context), new LicenseIssuer.Request(FIRM,
                        42, 3, false, 100L, null, null, null, null, 0, "kill test")).files().get(0).file().toJson();
                admin.importLicense(file);
            }
            client = TmrClient.connect(TmrClientOptions.builder().addresses(address)
                    .requestTimeout(Duration.ofSeconds(60)).build());
            LicenseHandle a = client.access(FIRM, 42);
            LicenseHandle b = client.access(FIRM, 42);
            assertEquals(75, a.decrementUnits(25));

            first.kill();
            try (TmrProcess second = TmrProcess.start(dir.resolve("second.log"), "listening on", backend)) {
                second.awaitReady(Duration.ofSeconds(60));
                // The SDK reconnects and resumes both handles; the acknowledged decrement was durable.
                assertEquals(70, b.decrementUnits(5));
                assertEquals(2, client.listContainers().get(0).products().get(0).inUse());
                a.close();
                b.close();
                assertEquals(0, client.listContainers().get(0).products().get(0).inUse());
                assertTrue(second.output().contains("2 open handle(s)"), "recovered the two handles:\n"
                        + second.output());
            }
        } finally {
            if (client != null) {
                client.close();
            }
            first.close();
        }
    }
}
