package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.ProductItemSpec;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.license.VendorState;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.testing.RawConnection;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Three backends on 127.0.0.1 sharing one CmActId, one vendor and one cluster secret: a TMR group whose
 * containers' keys are the group keys of the TMR licenses issued to it. A {@link Node} is a TMR node's
 * authenticated peer connection to one of them.
 */
final class TmrGroup implements AutoCloseable {

    static final long FIRM = 6_000_010;
    static final String SECRET = "a-cluster-secret-of-more-than-32-characters";

    private final Clock clock;
    private final KeyPair vendor;
    private final List<Backend> backends = new ArrayList<>();
    private final PeerAuth auth;
    private VendorState vendorState = VendorState.empty();

    TmrGroup(Path dir, Clock clock) throws Exception {
        this.clock = clock;
        this.vendor = VendorKeyFiles.generate(dir.resolve("vendor"));
        Path secret = dir.resolve("secret");
        Files.writeString(secret, SECRET);
        this.auth = PeerAuth.fromFile(secret);
        for (int i = 1; i <= 3; i++) {
            Map<String, Object> settings = new HashMap<>(Map.of(
                    "opentmr.backend.address", "127.0.0.1",
                    "opentmr.backend.port", 0,
                    "opentmr.backend.data-dir", dir.resolve("b" + i).toString(),
                    "opentmr.backend.vendor-keys", List.of(dir.resolve("vendor/vendor.pub").toString()),
                    "opentmr.backend.cm-act-id", 7,
                    PeerAuth.SECRET_FILE_KEY, secret.toString(),
                    "pekko.persistence.journal.plugin", "pekko.persistence.journal.inmem",
                    "pekko.persistence.snapshot-store.plugin", "pekko.persistence.no-snapshot-store"));
            Config config = ConfigFactory.parseMap(settings).withFallback(ConfigFactory.load());
            try {
                backends.add(Backend.start(config, clock));
            } catch (Exception e) {
                close();
                throw e;
            }
        }
    }

    Backend backend(int i) {
        return backends.get(i);
    }

    /** Issues a TMR license to the three containers and imports each copy; returns the item as issued. */
    ProductItemSpec issueTmr(LicenseIssuer.Request request) throws Exception {
        return issue(request, backends);
    }

    /** Issues an ordinary license to backend {@code i} alone. */
    ProductItemSpec issueOrdinary(int i, LicenseIssuer.Request request) throws Exception {
        return issue(request, List.of(backends.get(i)));
    }

    private ProductItemSpec issue(LicenseIssuer.Request request, List<Backend> to) throws Exception {
        List<ContainerContext> contexts = new ArrayList<>();
        for (Backend backend : to) {
            try (RawConnection admin = new RawConnection(backend.address())) {
                admin.hello();
                Message context = admin.request(new Message.LicenseContext("", Serial.NONE));
                contexts.add(ContainerContext.parse(((Message.LicenseContextOk) context).context().toArray()));
            }
        }
        LicenseIssuer.Result result = new LicenseIssuer(vendor.getPrivate(), vendor.getPublic(), clock,
                new SecureRandom()).issue(vendorState, contexts, request);
        vendorState = result.state();
        for (int i = 0; i < to.size(); i++) {
            try (RawConnection admin = new RawConnection(to.get(i).address())) {
                admin.hello();
                Message applied = admin.request(new Message.LicenseUpdate("", Bytes.of(result.files().get(i).file()
                        .toJson())));
                assertInstanceOf(Message.LicenseUpdateOk.class, applied, applied.toString());
            }
        }
        return result.files().get(0).update().items().get(0);
    }

    /** A TMR node's connection to backend {@code i}, past the challenge. */
    Node node(String name, int i) throws IOException {
        RawConnection connection = new RawConnection(backends.get(i).address());
        try {
            byte[] nodeNonce = new byte[PeerAuth.NONCE_BYTES];
            new SecureRandom().nextBytes(nodeNonce);
            Message.PeerChallenge challenge = (Message.PeerChallenge) connection.request(
                    new Message.PeerHello(name, Bytes.of(nodeNonce)));
            Message answer = connection.request(new Message.PeerProof(Bytes.of(auth.nodeProof(
                    challenge.backendNonce().toArray(), nodeNonce, name))));
            assertInstanceOf(Message.Ok.class, answer, answer.toString());
            return new Node(name, connection);
        } catch (IOException | RuntimeException | Error e) {
            connection.close();
            throw e;
        }
    }

    @Override
    public void close() {
        backends.forEach(Backend::close);
    }

    /** One authenticated peer connection of a TMR node. */
    record Node(String name, RawConnection connection) implements AutoCloseable {

        Message request(Message message) throws IOException {
            return connection.request(message);
        }

        Message acquire(String lease, long proposedEpoch, long ttlMillis) throws IOException {
            return request(new Message.LeaseAcquire(lease, name, proposedEpoch, ttlMillis));
        }

        /** Acquires the active lease; the grant, or an AssertionError with the refusal. */
        LeaseGrant grant(long proposedEpoch, long ttlMillis) throws IOException {
            Message answer = acquire(LeaseGrant.ACTIVE_LEASE, proposedEpoch, ttlMillis);
            return assertInstanceOf(Message.LeaseGranted.class, answer, answer.toString()).grant();
        }

        @Override
        public void close() throws IOException {
            connection.close();
        }
    }
}
