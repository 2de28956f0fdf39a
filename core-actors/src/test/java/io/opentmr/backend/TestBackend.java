package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.Ed25519;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.license.VendorState;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.protocol.Serial;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** A backend on 127.0.0.1 with Pekko's in-memory journal, a fresh vendor key, and license issuing for it. */
final class TestBackend implements AutoCloseable {

    static final long FIRM = 6_000_010;

    private final Clock clock;
    private final KeyPair vendor;
    private final Backend backend;
    private VendorState vendorState = VendorState.empty();

    /** A backend on {@code dir}: a second one on the same directory (after close) goes on from its data. */
    TestBackend(Path dir, Clock clock, Map<String, Object> overrides) throws Exception {
        this.clock = clock;
        Path keys = dir.resolve("vendor");
        this.vendor = java.nio.file.Files.exists(keys.resolve(VendorKeyFiles.PRIVATE_FILE))
                ? new KeyPair(VendorKeyFiles.readPublic(keys.resolve(VendorKeyFiles.PUBLIC_FILE)),
                        VendorKeyFiles.readPrivate(keys.resolve(VendorKeyFiles.PRIVATE_FILE)))
                : VendorKeyFiles.generate(keys);
        Map<String, Object> settings = new HashMap<>(Map.of(
                "opentmr.backend.address", "127.0.0.1",
                "opentmr.backend.port", 0,
                "opentmr.backend.data-dir", dir.resolve("data").toString(),
                "opentmr.backend.vendor-keys", List.of(dir.resolve("vendor/vendor.pub").toString()),
                "opentmr.backend.cm-act-id", 7,
                "pekko.persistence.journal.plugin", "pekko.persistence.journal.inmem",
                "pekko.persistence.snapshot-store.plugin", "pekko.persistence.no-snapshot-store"));
        settings.putAll(overrides);
        Config config = ConfigFactory.parseMap(settings).withFallback(ConfigFactory.load());
        this.backend = Backend.start(config, clock);
    }

    /** Overrides for the durable journal and snapshot store in {@code dir}, as a real backend keeps them. */
    static Map<String, Object> durable(Path dir) {
        return Map.of("pekko.persistence.journal.plugin", "opentmr.persistence.journal",
                "pekko.persistence.snapshot-store.plugin", "opentmr.persistence.snapshot-store",
                "opentmr.persistence.dir", dir.resolve("data/journal").toString(),
                "opentmr.persistence.fsync", "never");
    }

    InetSocketAddress address() {
        return backend.address();
    }

    ContainerIdentity identity() {
        return backend.identity();
    }

    Backend backend() {
        return backend;
    }

    /** Issues a license for this backend's container (with --tmr: and two other containers) and imports it. */
    void issueAndImport(LicenseIssuer.Request request) throws Exception {
        issueAndImport(Serial.NONE, request);
    }

    /** As {@link #issueAndImport(LicenseIssuer.Request)}, for the backend's container {@code container}. */
    void issueAndImport(Serial container, LicenseIssuer.Request request) throws Exception {
        try (RawConnection admin = new RawConnection(backend.address())) {
            admin.hello();
            Message context = admin.request(new Message.LicenseContext("", container));
            ContainerContext own = ContainerContext.parse(((Message.LicenseContextOk) context).context().toArray());
            List<ContainerContext> contexts = request.tmr()
                    ? List.of(own, other(2, own.cmActId()), other(3, own.cmActId())) : List.of(own);
            LicenseIssuer.Result result = new LicenseIssuer(vendor.getPrivate(), vendor.getPublic(), clock,
                    new SecureRandom()).issue(vendorState, contexts, request);
            vendorState = result.state();
            Message applied = admin.request(new Message.LicenseUpdate("", Bytes.of(result.files().get(0).file()
                    .toJson())));
            assertInstanceOf(Message.LicenseUpdateOk.class, applied, applied.toString());
        }
    }

    private static ContainerContext other(long number, long cmActId) {
        return ContainerContext.of(new Serial(129, number), cmActId, Map.of(),
                Ed25519.raw(Ed25519.generate().getPublic()));
    }

    @Override
    public void close() {
        backend.close();
    }
}
