package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import com.typesafe.config.Config;
import io.opentmr.backend.Backend;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.license.VendorState;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.testing.RawConnection;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A backend on our own journal, stopped and started again on the same data directory: open handles,
 * used units and the license survive, and a connected SDK client resumes its handle by itself.
 */
@Timeout(90)
class BackendRestartTest {

    private static final long FIRM = 6_000_010;

    @TempDir
    Path dir;

    private Config config(int port) {
        Map<String, Object> flags = new HashMap<>();
        flags.put("opentmr.backend.address", "127.0.0.1");
        flags.put("opentmr.backend.port", port);
        flags.put("opentmr.backend.data-dir", dir.resolve("data").toString());
        flags.put("opentmr.backend.vendor-keys", List.of(dir.resolve("vendor/vendor.pub").toString()));
        flags.put("opentmr.backend.cm-act-id", 7);
        // Snapshots on our snapshot store, and the events they cover deleted from our journal.
        flags.put("opentmr.backend.snapshot-every", 2);
        return LauncherConfig.resolve(flags, null, "opentmr.backend.data-dir");
    }

    @Test
    void handlesUnitsAndLicensesSurviveARestartAndTheClientResumes() throws Exception {
        KeyPair vendor = VendorKeyFiles.generate(dir.resolve("vendor"));
        Backend first = Backend.start(config(0));
        int port = first.address().getPort();
        importLicense(first.address(), vendor);

        TmrClient client = TmrClient.connect(TmrClientOptions.builder().addresses(first.address())
                .requestTimeout(Duration.ofSeconds(10)).build());
        LicenseHandle handle = client.access(FIRM, 42);
        assertEquals(70, handle.decrementUnits(30));
        first.close();

        try (Backend second = Backend.start(config(port)); client) {
            assertEquals(first.identity().serial(), second.identity().serial(), "the same container");
            // The SDK reconnects, says HELLO and RESUMEs the handle with its token; the units were journaled.
            assertEquals(60, handle.decrementUnits(10));
            assertEquals(1, client.listContainers().get(0).products().get(0).inUse());
            handle.close();
            assertEquals(0, client.listContainers().get(0).products().get(0).inUse());
        }
    }

    private static void importLicense(InetSocketAddress address, KeyPair vendor) throws Exception {
        try (RawConnection admin = new RawConnection(address)) {
            admin.hello();
            Message context = admin.request(new Message.LicenseContext("", Serial.NONE));
            ContainerContext own = ContainerContext.parse(((Message.LicenseContextOk) context).context().toArray());
            byte[] file = new LicenseIssuer(vendor.getPrivate(), vendor.getPublic(), Clock.systemUTC(),
                    new SecureRandom()).issue(VendorState.empty(), List.of(own), new LicenseIssuer.Request(FIRM, 42, 2,
                    false, 100L, null, null, null, null, 0, "restart test")).files().get(0).file().toJson();
            assertInstanceOf(Message.LicenseUpdateOk.class, admin.request(new Message.LicenseUpdate("",
                    Bytes.of(file))));
        }
    }

}
