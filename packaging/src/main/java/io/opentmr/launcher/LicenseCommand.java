package io.opentmr.launcher;

import io.opentmr.license.ContainerContext;
import io.opentmr.license.Ed25519;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.license.LicenseRefusedException;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.license.VendorState;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code tmr license}: the vendor's tools (keygen, issue) and the operator's (context, import). */
@Command(name = "license", mixinStandardHelpOptions = true, description = "Vendor keys and signed license files.",
        subcommands = {LicenseCommand.Keygen.class, LicenseCommand.Issue.class, LicenseAdminCommands.Context.class,
                LicenseAdminCommands.Import.class})
final class LicenseCommand {

    @Command(name = "keygen", mixinStandardHelpOptions = true,
            description = "Create a vendor key pair: DIR/vendor.key (private, mode 0600) and DIR/vendor.pub.")
    static final class Keygen implements Callable<Integer> {
        @Option(names = "--out", required = true, description = "Directory for the key files.")
        Path out;

        @Option(names = "--if-missing", description = "Keep an existing key pair in DIR instead of failing "
                + "(for provisioning scripts that run more than once).")
        boolean ifMissing;

        @Option(names = "--json", description = "One JSON object on stdout.")
        boolean json;

        @Override
        public Integer call() throws Exception {
            boolean exists = Files.exists(out.resolve(VendorKeyFiles.PUBLIC_FILE))
                    && Files.exists(out.resolve(VendorKeyFiles.PRIVATE_FILE));
            PublicKey publicKey = ifMissing && exists ? VendorKeyFiles.readPublic(out.resolve(VendorKeyFiles.PUBLIC_FILE))
                    : VendorKeyFiles.generate(out).getPublic();
            String fingerprint = Ed25519.fingerprint(Ed25519.raw(publicKey));
            Map<String, Object> fields = new LinkedHashMap<>();
            fields.put("privateKey", out.resolve(VendorKeyFiles.PRIVATE_FILE).toString());
            fields.put("publicKey", out.resolve(VendorKeyFiles.PUBLIC_FILE).toString());
            fields.put("fingerprint", fingerprint);
            new Output(json, System.out, System.err).result("Vendor key " + fingerprint
                    + (ifMissing && exists ? " kept in " : " written to ")
                    + fields.get("privateKey") + " (keep it secret) and " + fields.get("publicKey")
                    + " (give it to every backend: --vendor-key)", fields);
            return Output.OK;
        }
    }

    @Command(name = "issue", mixinStandardHelpOptions = true,
            description = {"Issue signed license update files from container contexts.",
                    "With --tmr: three files for the three contexts of one TMR group, with the next TMR-Id."})
    static final class Issue implements Callable<Integer> {
        @Option(names = "--vendor-key", required = true, description = "The vendor's private key (vendor.key); "
                + "vendor.pub must sit beside it.")
        Path vendorKey;

        @Option(names = "--state", required = true, description = "The vendor's state file (next TMR-Id per firm); "
                + "created when missing.")
        Path state;

        @Option(names = "--context", required = true, description = "A container context file; 3 with --tmr.")
        List<Path> contexts;

        @Option(names = "--firm", required = true, description = "Firm code.")
        long firm;

        @Option(names = "--product", required = true, description = "Product code.")
        long product;

        @Option(names = "--quantity", required = true, description = "License quantity (seats).")
        long quantity;

        @Option(names = "--tmr", description = "Issue a TMR license: three identical copies.")
        boolean tmr;

        @Option(names = "--units", description = "Initial unit counter.")
        Long units;

        @Option(names = "--expires", description = "Expiration time (ISO-8601).")
        Instant expires;

        @Option(names = "--activates", description = "Activation time (ISO-8601).")
        Instant activates;

        @Option(names = "--usage-period", description = "Usage period of an emergency license (P7D, 12h…), "
                + "started at first access.")
        Duration usagePeriod;

        @Option(names = "--borrow-max", description = "Longest borrow allowed (P14D, 8h…); none: no borrowing.")
        Duration borrowMax;

        @Option(names = "--feature-map", defaultValue = "0", description = "Feature bits (default 0).")
        long featureMap;

        @Option(names = "--text", defaultValue = "", description = "Product item text.")
        String text;

        @Option(names = "--out", required = true, description = "Directory for the update files.")
        Path out;

        @Option(names = "--json", description = "One JSON object on stdout.")
        boolean json;

        @Override
        public Integer call() throws Exception {
            PrivateKey privateKey = VendorKeyFiles.readPrivate(vendorKey);
            Path publicFile = vendorKey.resolveSibling(VendorKeyFiles.PUBLIC_FILE);
            PublicKey publicKey = VendorKeyFiles.readPublic(publicFile);
            try {
                List<ContainerContext> parsed = new ArrayList<>();
                for (Path context : contexts) {
                    parsed.add(ContainerContext.parse(Files.readAllBytes(context)));
                }
                LicenseIssuer.Result result = new LicenseIssuer(privateKey, publicKey, Clock.systemUTC(),
                        new SecureRandom()).issue(VendorState.load(state), parsed, new LicenseIssuer.Request(firm,
                        product, quantity, tmr, units, expires, activates, usagePeriod, borrowMax, featureMap, text));
                // The state first: files written but a TMR-Id not recorded would hand the same id out again.
                result.state().save(state);
                List<Path> written = result.writeTo(out);
                long tmrId = result.files().get(0).update().items().get(0).tmrId();
                Map<String, Object> fields = new LinkedHashMap<>();
                fields.put("files", written.stream().map(Path::toString).toList());
                fields.put("tmrId", tmrId);
                new Output(json, System.out, System.err).result("Issued " + written.size() + " file(s)"
                        + (tmr ? " with TMR-Id " + tmrId : "") + ":\n  " + String.join("\n  ",
                        written.stream().map(Path::toString).toList()), fields);
                return Output.OK;
            } catch (LicenseRefusedException e) {
                System.err.println("tmr: cannot issue: " + e.getMessage());
                return Output.USAGE;
            }
        }
    }
}
