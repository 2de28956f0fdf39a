package io.opentmr.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.backend.Backend;
import io.opentmr.client.AdminClient;
import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.license.VendorState;
import io.opentmr.protocol.AdminToken;
import io.opentmr.protocol.Serial;
import java.math.BigInteger;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.Date;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Management HTTP of a backend on its own (no node): its container's licenses and client handles, the import of its
 * own license file (and the refusal of another container's), force-release freeing the seat for the next client;
 * and, on another backend, HTTPS from PEM files with reads limited to listed addresses.
 */
@Timeout(120)
class BackendManagementTest {

    private static final long FIRM = 6_000_010;

    @TempDir
    Path dir;

    private Config backendConfig(Path data, Path tokenFile, ManagementSettings management) {
        Map<String, Object> settings = new HashMap<>(Map.of(
                "opentmr.backend.address", "127.0.0.1",
                "opentmr.backend.port", 0,
                "opentmr.backend.data-dir", data.toString(),
                "opentmr.backend.vendor-keys", List.of(dir.resolve("vendor/vendor.pub").toString()),
                "opentmr.backend.cm-act-id", 7,
                AdminToken.TOKEN_FILE_KEY, tokenFile.toString(),
                "pekko.persistence.journal.plugin", "pekko.persistence.journal.inmem",
                "pekko.persistence.snapshot-store.plugin", "pekko.persistence.no-snapshot-store"));
        return management.pekkoConfig(false).withFallback(ConfigFactory.parseMap(settings))
                .withFallback(ConfigFactory.load()).resolve();
    }

    @Test
    void aBackendImportsItsOwnFileShowsItsHandlesAndReleasesOne() throws Exception {
        KeyPair vendor = VendorKeyFiles.generate(dir.resolve("vendor"));
        Path tokenFile = dir.resolve("admin.token");
        String token = AdminToken.createIfMissing(tokenFile).value();
        ManagementSettings settings = ManagementFixture.settings("127.0.0.1", Map.of());
        Backend backend = Backend.start(backendConfig(dir.resolve("b"), tokenFile, settings), Clock.systemUTC());
        try (Management management = Management.forBackend(backend, settings)) {
            HttpProbe http = new HttpProbe(management.url());
            assertEquals(200, http.get("/health/ready").status());
            assertEquals(200, http.get("/health/alive").status());

            String address = "127.0.0.1:" + backend.address().getPort();
            ContainerContext context;
            try (AdminClient admin = AdminClient.connect(TmrClientOptions.builder().addresses(address).build(), "")) {
                context = ContainerContext.parse(admin.licenseContext(Serial.NONE));
            }
            LicenseIssuer issuer = new LicenseIssuer(vendor.getPrivate(), vendor.getPublic(), Clock.systemUTC(),
                    new SecureRandom());
            LicenseIssuer.Result own = issuer.issue(VendorState.empty(), List.of(context),
                    new LicenseIssuer.Request(FIRM, 42, 1, false, null, null, null, null, null, 0, "one seat"));
            ContainerContext stranger = ContainerContext.of(new Serial(130, 12_345_678), 7, Map.of(),
                    Base64.getDecoder().decode(context.publicKey()));
            LicenseIssuer.Result other = issuer.issue(VendorState.empty(), List.of(stranger),
                    new LicenseIssuer.Request(FIRM, 43, 1, false, null, null, null, null, null, 0, "elsewhere"));
            String body = "{\"files\": [" + new String(own.files().get(0).file().toJson(), StandardCharsets.UTF_8)
                    + ", " + HttpProbe.JSON.writeValueAsString(new String(other.files().get(0).file().toJson(),
                    StandardCharsets.UTF_8)) + "]}";

            assertEquals(401, http.send("POST", "/tmr/licenses/import", null, body).status());
            HttpProbe.Answer imported = http.send("POST", "/tmr/licenses/import", token, body);
            assertEquals(422, imported.status(), imported.body());
            JsonNode results = imported.json().path("results");
            assertTrue(results.get(0).path("ok").asBoolean(), results.toString());
            assertEquals(backend.identity().serial().toString(), results.get(0).path("target").asText());
            assertEquals(1, results.get(0).path("firmUpdateCounter").asLong());
            assertFalse(results.get(1).path("ok").asBoolean());
            assertEquals(201, results.get(1).path("error").path("code").asInt());

            JsonNode license = http.get("/tmr/licenses").json().path("licenses").get(0);
            assertEquals(FIRM + ":42#0", license.path("license").asText());
            assertEquals(1, license.path("seats").path("total").asLong());
            assertEquals(0, license.path("seats").path("used").asLong());
            JsonNode container = http.get("/tmr/containers").json().path("containers").get(0);
            assertEquals(backend.identity().serial().toString(), container.path("serial").asText());
            assertEquals(1, container.path("productItems").asInt());

            try (TmrClient first = TmrClient.connect(TmrClientOptions.builder().addresses(address).user("frank")
                    .host("ws-9").requestTimeout(Duration.ofSeconds(10)).build());
                 TmrClient second = TmrClient.connect(TmrClientOptions.builder().addresses(address).user("gina")
                         .requestTimeout(Duration.ofSeconds(10)).build())) {
                LicenseHandle held = first.access(FIRM, 42);
                assertEquals(212, assertThrows(CmException.class, () -> second.access(FIRM, 42)).code());
                assertEquals(1, http.get("/tmr/licenses").json().path("licenses").get(0).path("seats").path("used")
                        .asLong());
                JsonNode handles = http.get("/tmr/handles?user=frank").json();
                assertEquals(1, handles.path("total").asInt());
                JsonNode handle = handles.path("handles").get(0);
                assertEquals("handle", handle.path("kind").asText());
                assertEquals("ws-9", handle.path("host").asText());
                assertEquals(Long.toUnsignedString(held.handleId()), handle.path("id").asText());
                assertEquals(0, http.get("/tmr/handles?user=gina").json().path("total").asInt());

                String id = handle.path("id").asText();
                assertEquals(403, http.send("DELETE", "/tmr/handles/" + id, "0123456789abcdef0123", null).status());
                assertEquals(404, http.send("DELETE", "/tmr/handles/999999", token, null).status());
                HttpProbe.Answer released = http.send("DELETE", "/tmr/handles/" + id, token, null);
                assertEquals(200, released.status(), released.body());
                assertEquals(FIRM + ":42#0", released.json().path("license").asText());
                // The seat is free: the next client gets it.
                second.access(FIRM, 42).close();
            }
            String scrape = http.get("/metrics").body();
            assertEquals(1.0, NodeManagementTest.value(scrape,
                    "opentmr_denials_total\\{error=\"212\",request=\"ACCESS\"}"));
            assertTrue(NodeManagementTest.value(scrape, "opentmr_accesses_total") >= 2);
            Promtool.checkMetrics(scrape);
        } finally {
            backend.close();
        }
    }

    @Test
    void httpsFromPemFilesAndReadsOnlyFromListedAddresses() throws Exception {
        VendorKeyFiles.generate(dir.resolve("vendor"));
        Path tokenFile = dir.resolve("admin.token");
        String token = AdminToken.createIfMissing(tokenFile).value();
        X509Certificate certificate = selfSigned(dir.resolve("tls.crt"), dir.resolve("tls.key"));
        ManagementSettings settings = ManagementFixture.settings("127.0.0.1", Map.of(
                ManagementSettings.PATH + ".https.certificate", dir.resolve("tls.crt").toString(),
                ManagementSettings.PATH + ".https.private-key", dir.resolve("tls.key").toString(),
                ManagementSettings.PATH + ".read-allow", List.of("10.1.2.0/24", "::1")));
        Backend backend = Backend.start(backendConfig(dir.resolve("b"), tokenFile, settings), Clock.systemUTC());
        try (Management management = Management.forBackend(backend, settings)) {
            assertTrue(management.url().startsWith("https://127.0.0.1:"), management.url());
            HttpProbe https = new HttpProbe(management.url(), trusting(certificate));
            assertEquals(200, https.get("/health/ready").status());
            HttpProbe.Answer refused = https.get("/tmr/status");
            assertEquals(403, refused.status());
            assertTrue(refused.json().path("error").path("message").asText().contains("read-allow"));
            assertEquals(403, https.get("/metrics").status());
            // The dashboard is a read like the others.
            assertEquals(403, https.get("/").status());
            assertEquals(403, https.get("/dashboard/dashboard.js").status());
            assertEquals(403, https.send("DELETE", "/tmr/handles/1", token, null).status());
            // Plain HTTP gets no answer from an HTTPS port.
            assertThrows(java.io.IOException.class, () -> new HttpProbe(management.url().replace("https", "http"))
                    .get("/health/ready"));
        } finally {
            backend.close();
        }
    }

    /** A self-signed certificate for 127.0.0.1 and its key, as PEM files. */
    private static X509Certificate selfSigned(Path certificateFile, Path keyFile) throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(256);
        KeyPair pair = generator.generateKeyPair();
        X500Name name = new X500Name("CN=opentmr-management-test");
        Instant now = Instant.now();
        JcaX509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(name, BigInteger.valueOf(now.toEpochMilli()),
                Date.from(now.minusSeconds(60)), Date.from(now.plus(Duration.ofDays(1))), name, pair.getPublic());
        builder.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(
                new GeneralName(GeneralName.iPAddress, InetAddress.getLoopbackAddress().getHostAddress())));
        X509Certificate certificate = new JcaX509CertificateConverter().getCertificate(
                builder.build(new JcaContentSignerBuilder("SHA256withECDSA").build(pair.getPrivate())));
        Base64.Encoder pem = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII));
        Files.writeString(certificateFile, "-----BEGIN CERTIFICATE-----\n" + pem.encodeToString(certificate.getEncoded())
                + "\n-----END CERTIFICATE-----\n");
        Files.writeString(keyFile, "-----BEGIN PRIVATE KEY-----\n" + pem.encodeToString(pair.getPrivate().getEncoded())
                + "\n-----END PRIVATE KEY-----\n");
        Files.setPosixFilePermissions(keyFile, PosixFilePermissions.fromString("rw-------"));
        return certificate;
    }

    private static SSLContext trusting(X509Certificate certificate) throws Exception {
        KeyStore store = KeyStore.getInstance("PKCS12");
        store.load(null, null);
        store.setCertificateEntry("server", certificate);
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(store);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, trust.getTrustManagers(), null);
        return context;
    }
}
