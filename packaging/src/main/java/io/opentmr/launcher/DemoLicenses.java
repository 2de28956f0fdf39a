package io.opentmr.launcher;

import io.opentmr.client.AdminClient;
import io.opentmr.license.ContainerContext;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.LicenseRefusedException;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.license.VendorState;
import io.opentmr.protocol.Serial;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * The demo's sample licenses, issued by the vendor tools' library and imported over the admin protocol
 * exactly as {@code tmr license context / issue / import} do. Each sample's files stay in
 * {@code DIR/licenses/NAME/}, and each imported file gets a {@code .imported} mark beside it: a second run
 * issues nothing, and a run cut short continues where it stopped instead of spending another TMR-Id.
 */
final class DemoLicenses {

    static final long FIRM = 6_000_010;

    /**
     * One sample license.
     *
     * @param name    its directory under DIR/licenses
     * @param tmr     three TMR copies, one per backend; else one ordinary license on the first backend
     */
    record Sample(String name, boolean tmr, LicenseIssuer.Request request) {

        long product() {
            return request.productCode();
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", name);
            m.put("firm", request.firmCode());
            m.put("product", request.productCode());
            m.put("tmr", tmr);
            m.put("text", request.text());
            return m;
        }
    }

    static final Sample SEATS = new Sample("seats", true, new LicenseIssuer.Request(FIRM, 101, 10, true, null, null,
            null, null, Duration.ofDays(7), 0, "Seat-limited, 10 seats"));
    static final Sample UNITS = new Sample("units", true, new LicenseIssuer.Request(FIRM, 102, 10, true, 1000L, null,
            null, null, null, 0, "Unit counter, 1000 units"));
    static final Sample EMERGENCY = new Sample("emergency", true, new LicenseIssuer.Request(FIRM, 103, 10, true, null,
            null, null, Duration.ofDays(7), null, 0, "Emergency, 7-day usage period"));
    /** The seat-limited license again, but ordinary: what {@code tmr bench} measures directly on a backend. */
    static final Sample DIRECT = new Sample("direct", false, new LicenseIssuer.Request(FIRM, 201, 10, false, null,
            null, null, null, null, 0, "Seat-limited, 10 seats, not TMR (bench reference)"));

    static final List<Sample> SAMPLES = List.of(SEATS, UNITS, EMERGENCY, DIRECT);
    static final List<Sample> TMR_SAMPLES = SAMPLES.stream().filter(Sample::tmr).toList();

    private final Path dir;
    private final Path vendorKey;
    private final PrintStream out;

    /**
     * @param dir       the demo directory: vendor key in {@code vendor/}, files in {@code licenses/}
     * @param vendorKey the vendor's private key; {@code vendor.pub} beside it
     */
    DemoLicenses(Path dir, Path vendorKey, PrintStream out) {
        this.dir = dir;
        this.vendorKey = vendorKey;
        this.out = out;
    }

    /** Issues what has not been issued and imports what has not been imported, into the backends given. */
    void ensure(List<String> backends) throws IOException, LicenseRefusedException {
        PrivateKey privateKey = VendorKeyFiles.readPrivate(vendorKey);
        PublicKey publicKey = VendorKeyFiles.readPublic(vendorKey.resolveSibling(VendorKeyFiles.PUBLIC_FILE));
        LicenseIssuer issuer = new LicenseIssuer(privateKey, publicKey, Clock.systemUTC(), new SecureRandom());
        Path state = vendorKey.resolveSibling("state.json");
        int issuedNow = 0;
        int importedNow = 0;
        for (Sample sample : SAMPLES) {
            List<String> targets = sample.tmr() ? backends : backends.subList(0, 1);
            Path sampleDir = dir.resolve("licenses").resolve(sample.name());
            List<Path> files = updateFiles(sampleDir);
            Map<String, String> serverOfSerial = new LinkedHashMap<>();
            List<ContainerContext> contexts = new ArrayList<>();
            for (String backend : targets) {
                try (AdminClient admin = LicenseAdminCommands.connect(backend, "")) {
                    ContainerContext context = ContainerContext.parse(admin.licenseContext(Serial.NONE));
                    contexts.add(context);
                    serverOfSerial.put(context.serial(), backend);
                }
            }
            if (files.isEmpty()) {
                // Contexts read just now: each import moves its container's firm update counter, and the
                // next sample must name the counter after it.
                LicenseIssuer.Result result = issuer.issue(VendorState.load(state), contexts, sample.request());
                // The state first: files written but a TMR-Id not recorded would hand the same id out again.
                result.state().save(state);
                files = result.writeTo(sampleDir);
                issuedNow++;
            }
            for (Path file : files) {
                Path mark = file.resolveSibling(file.getFileName() + ".imported");
                if (Files.exists(mark)) {
                    continue;
                }
                String name = file.getFileName().toString();
                String serial = name.substring(0, name.indexOf('_'));
                String backend = serverOfSerial.get(serial);
                if (backend == null) {
                    throw new IllegalStateException(file + " is for container " + serial + ", which none of "
                            + targets + " holds; remove " + dir + " to start the demo afresh");
                }
                try (AdminClient admin = LicenseAdminCommands.connect(backend, "")) {
                    admin.importLicense(Files.readAllBytes(file));
                }
                Files.createFile(mark);
                importedNow++;
            }
        }
        out.println(issuedNow == 0 && importedNow == 0 ? "Sample licenses already in place (" + dir.resolve("licenses")
                + ")" : "Sample licenses: " + issuedNow + " issued, " + importedNow + " file(s) imported ("
                + dir.resolve("licenses") + ")");
    }

    private static List<Path> updateFiles(Path sampleDir) throws IOException {
        if (!Files.isDirectory(sampleDir)) {
            return List.of();
        }
        try (Stream<Path> listing = Files.list(sampleDir)) {
            return listing.filter(p -> p.getFileName().toString().endsWith(".json")).sorted().toList();
        }
    }
}
