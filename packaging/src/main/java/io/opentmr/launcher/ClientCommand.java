package io.opentmr.launcher;

import io.opentmr.client.BorrowedLicense;
import io.opentmr.client.CmException;
import io.opentmr.client.HelloProbe;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.protocol.AccessMode;
import io.opentmr.license.Ed25519;
import io.opentmr.license.VendorKeyFiles;
import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ServerKind;
import io.opentmr.protocol.ProductInfo;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.locks.LockSupport;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.ScopeType;

/** {@code tmr client}: talk to a backend or a TMR node the way an application does, through the SDK. */
@Command(name = "client", mixinStandardHelpOptions = true,
        description = "Use a license server as a client application does.",
        subcommands = {ClientCommand.Status.class, ClientCommand.ListContainers.class, ClientCommand.Access.class,
                ClientCommand.Info.class, ClientCommand.Crypt.class, ClientCommand.Units.class,
                ClientCommand.Release.class, ClientCommand.Borrow.class, ClientCommand.Return.class})
final class ClientCommand {

    @Option(names = "--server", required = true, split = ",", scope = ScopeType.INHERIT,
            description = "HOST:PORT of the server; several, comma-separated, are tried in turn.")
    List<String> servers;

    @Option(names = "--json", scope = ScopeType.INHERIT, description = "One JSON object on stdout.")
    boolean json;

    @Option(names = "--timeout", scope = ScopeType.INHERIT, defaultValue = "5s",
            description = "Bound on connecting and on each request (default ${DEFAULT-VALUE}).")
    Duration timeout;

    TmrClient connect() {
        return TmrClient.connect(TmrClientOptions.builder().addresses(servers.toArray(String[]::new))
                .clientName("tmr-cli").connectTimeout(timeout).requestTimeout(timeout).build());
    }

    Output output() {
        return new Output(json, System.out, System.err);
    }

    /** Runs {@code body} with a connected client; a CodeMeter error becomes exit code 1. */
    int withClient(ClientBody body) {
        Output output = output();
        try (TmrClient client = connect()) {
            return body.run(client, output);
        } catch (CmException e) {
            return output.cmError(e);
        }
    }

    interface ClientBody {
        int run(TmrClient client, Output output);
    }

    /** Options naming the product item to use. */
    static class ProductOptions {
        @Option(names = "--firm", required = true, description = "Firm code.")
        long firm;

        @Option(names = "--product", required = true, description = "Product code.")
        long product;

        @Option(names = "--features", defaultValue = "0", description = "Feature bits required (default 0).")
        long features;

        @Option(names = "--mode", defaultValue = "userlimit",
                description = "userlimit, nouserlimit, exclusive or stationshare (default ${DEFAULT-VALUE}).")
        String mode;

        AccessMode accessMode() {
            try {
                return AccessMode.valueOf(mode.toUpperCase(java.util.Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--mode must be userlimit, nouserlimit, exclusive or stationshare, not "
                        + mode);
            }
        }

        LicenseHandle access(TmrClient client) {
            return client.access(firm, product, features, accessMode());
        }
    }

    @Command(name = "status", description = "What kind of server answers (BACKEND, TMR_ACTIVE, TMR_STANDBY).")
    static final class Status implements Callable<Integer> {
        @ParentCommand
        ClientCommand parent;

        @Override
        public Integer call() {
            Integer standby = standbyOf(parent);
            if (standby != null) {
                return standby;
            }
            return parent.withClient((client, out) -> {
                // The server that answers: a standby, or a node still starting, sends the client on to the active
                // node, which then is the one described here.
                java.net.InetSocketAddress at = client.connectedAddress();
                String address = at == null ? null : at.getHostString() + ":" + at.getPort();
                Map<String, Object> fields = new LinkedHashMap<>();
                fields.put("kind", client.serverKind().name());
                fields.put("server", client.serverName());
                fields.put("address", address);
                fields.put("session", Long.toUnsignedString(client.sessionId()));
                out.result(client.serverKind() + " " + client.serverName() + (address == null ? "" : " at " + address),
                        fields);
                return Output.OK;
            });
        }
    }

    /**
     * When the first server answers HELLO with NOT_ACTIVE (a TMR node that does not serve: a standby, or one
     * without the lease), that is its status; null otherwise (the SDK then connects as usual).
     */
    private static Integer standbyOf(ClientCommand parent) {
        Message answer;
        try {
            java.net.InetSocketAddress server = io.opentmr.client.TmrClientOptions.parseAddress(parent.servers.get(0));
            answer = HelloProbe.hello(new java.net.InetSocketAddress(server.getHostString(), server.getPort()),
                    parent.timeout);
        } catch (java.io.IOException | IllegalArgumentException e) {
            return null;
        }
        if (!(answer instanceof Message.NotActive notActive)) {
            return null;
        }
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("kind", ServerKind.TMR_STANDBY.name());
        fields.put("server", parent.servers.get(0));
        fields.put("active", notActive.activeAddress().isEmpty() ? null : notActive.activeAddress());
        parent.output().result(ServerKind.TMR_STANDBY + " " + parent.servers.get(0) + " (active node: "
                + (notActive.activeAddress().isEmpty() ? "unknown" : notActive.activeAddress()) + ")", fields);
        return Output.OK;
    }

    @Command(name = "list", description = "The containers and product items the server shows.")
    static final class ListContainers implements Callable<Integer> {
        @ParentCommand
        ClientCommand parent;

        @Override
        public Integer call() {
            return parent.withClient((client, out) -> {
                List<ContainerInfo> containers = client.listContainers();
                StringBuilder text = new StringBuilder();
                List<Map<String, Object>> json = new ArrayList<>();
                for (ContainerInfo container : containers) {
                    text.append("Container ").append(container.serial()).append(" (CmActId ")
                            .append(container.cmActId()).append(")\n");
                    List<Map<String, Object>> products = new ArrayList<>();
                    for (ProductInfo p : container.products()) {
                        text.append(String.format("  %d:%d  %-24s seats %d/%d%s%s%n", p.firmCode(), p.productCode(),
                                p.text(), p.inUse(), p.quantity(), p.tmrId() != 0 ? "  TMR-Id " + p.tmrId() : "",
                                p.hasUnitCounter() ? "  units " + p.units() : ""));
                        products.add(product(p));
                    }
                    Map<String, Object> c = new LinkedHashMap<>();
                    c.put("serial", container.serial().toString());
                    c.put("cmActId", container.cmActId());
                    c.put("products", products);
                    json.add(c);
                }
                out.result(text.toString().stripTrailing(), Map.of("containers", json));
                return Output.OK;
            });
        }
    }

    static Map<String, Object> product(ProductInfo p) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("firm", p.firmCode());
        m.put("product", p.productCode());
        m.put("text", p.text());
        m.put("quantity", p.quantity());
        m.put("inUse", p.inUse());
        m.put("tmrId", p.tmrId());
        m.put("featureMap", p.featureMap());
        if (p.hasUnitCounter()) {
            m.put("units", p.units());
        }
        if (p.expiresAtMillis() != 0) {
            m.put("expiresAt", java.time.Instant.ofEpochMilli(p.expiresAtMillis()).toString());
        }
        if (p.usagePeriodSeconds() != 0) {
            m.put("usagePeriodSeconds", p.usagePeriodSeconds());
        }
        return m;
    }

    @Command(name = "access", description = {"Open a handle; with --hold keep it that long (keep-alive running), "
            + "then release it.", "Without --hold the handle is released at once: a check that access works."})
    static final class Access implements Callable<Integer> {
        @ParentCommand
        ClientCommand parent;

        @picocli.CommandLine.Mixin
        ProductOptions product;

        @Option(names = "--hold", defaultValue = "0", description = "How long to hold the handle (seconds or 8s, 2m…).")
        Duration hold;

        @Override
        public Integer call() {
            return parent.withClient((client, out) -> {
                try (LicenseHandle handle = product.access(client)) {
                    Map<String, Object> fields = new LinkedHashMap<>();
                    fields.put("handle", handle.handleId());
                    fields.put("token", handle.resumeToken().toHex());
                    fields.put("firm", product.firm);
                    fields.put("product", product.product);
                    fields.put("mode", product.accessMode().name());
                    fields.put("heldSeconds", hold.toSeconds());
                    out.result("Handle " + handle.handleId() + " on " + product.firm + ":" + product.product
                            + (hold.isZero() ? "" : ", held for " + hold + "; release it from elsewhere with: "
                            + "release --handle " + handle.handleId() + " --token " + handle.resumeToken().toHex()),
                            fields);
                    System.out.flush();
                    // Ctrl-C or SIGTERM while holding: release the seat on the way out instead of leaving
                    // it to the server's cleanup timeout.
                    Thread release = new Thread(handle::close, "tmr-release-on-exit");
                    Runtime.getRuntime().addShutdownHook(release);
                    holdFor(hold);
                    Runtime.getRuntime().removeShutdownHook(release);
                }
                return Output.OK;
            });
        }
    }

    /** Waits out {@code --hold}; the SDK keeps the handle alive meanwhile. Ctrl-C ends it early. */
    static void holdFor(Duration hold) {
        long deadline = System.nanoTime() + hold.toNanos();
        while (System.nanoTime() - deadline < 0 && !Thread.currentThread().isInterrupted()) {
            LockSupport.parkNanos(Math.min(deadline - System.nanoTime(), 1_000_000_000L));
        }
    }

    @Command(name = "release", description = "Release a handle held elsewhere, by its id and resume token.")
    static final class Release implements Callable<Integer> {
        @ParentCommand
        ClientCommand parent;

        @Option(names = "--handle", required = true, description = "The handle id that access printed.")
        long handleId;

        @Option(names = "--token", required = true, description = "The resume token that access printed (hex).")
        String token;

        @Override
        public Integer call() {
            io.opentmr.protocol.Bytes resumeToken = io.opentmr.protocol.Bytes.fromHex(token);
            return parent.withClient((client, out) -> {
                LicenseHandle handle = client.resume(handleId, resumeToken);
                handle.close();
                out.result("Released handle " + handleId, Map.of("handle", handleId, "released", true));
                return Output.OK;
            });
        }
    }

    @Command(name = "info", description = "Access, show the handle's product item, release.")
    static final class Info implements Callable<Integer> {
        @ParentCommand
        ClientCommand parent;

        @picocli.CommandLine.Mixin
        ProductOptions product;

        @Override
        public Integer call() {
            return parent.withClient((client, out) -> {
                try (LicenseHandle handle = product.access(client)) {
                    Message.Info info = handle.info();
                    Map<String, Object> fields = new LinkedHashMap<>(product(info.product()));
                    fields.put("container", info.container().toString());
                    fields.put("mode", info.accessMode().name());
                    out.result(info.container() + " " + fields, fields);
                }
                return Output.OK;
            });
        }
    }

    @Command(name = "crypt", description = "Access, encrypt or decrypt hex data with the product item, release.")
    static final class Crypt implements Callable<Integer> {
        @ParentCommand
        ClientCommand parent;

        @picocli.CommandLine.Mixin
        ProductOptions product;

        @Option(names = "--code", defaultValue = "0", description = "Encryption code (u32).")
        long code;

        @Option(names = "--data", required = true, description = "Data in hex.")
        String data;

        @Option(names = "--decrypt", description = "Decrypt instead of encrypt.")
        boolean decrypt;

        @Override
        public Integer call() {
            byte[] bytes = HexFormat.of().parseHex(data);
            return parent.withClient((client, out) -> {
                try (LicenseHandle handle = product.access(client)) {
                    byte[] result = handle.crypt(decrypt ? CryptDirection.DECRYPT : CryptDirection.ENCRYPT, code, bytes);
                    String hex = HexFormat.of().formatHex(result);
                    out.result(hex, Map.of("data", hex));
                }
                return Output.OK;
            });
        }
    }

    @Command(name = "units", description = "Access, decrement the unit counter, release.")
    static final class Units implements Callable<Integer> {
        @ParentCommand
        ClientCommand parent;

        @picocli.CommandLine.Mixin
        ProductOptions product;

        @Option(names = "--decrement", defaultValue = "0", description = "Units to subtract (0 reads the counter).")
        long decrement;

        @Override
        public Integer call() {
            return parent.withClient((client, out) -> {
                try (LicenseHandle handle = product.access(client)) {
                    long remaining = handle.decrementUnits(decrement);
                    out.result(remaining + " units left", Map.of("remaining", remaining));
                }
                return Output.OK;
            });
        }
    }

    @Command(name = "borrow", description = "Access and borrow the seat for offline use; writes the signed ticket.")
    static final class Borrow implements Callable<Integer> {
        @ParentCommand
        ClientCommand parent;

        @picocli.CommandLine.Mixin
        ProductOptions product;

        @Option(names = "--duration", required = true, description = "Borrow period (8h, 7d, P7D…).")
        Duration duration;

        @Option(names = "--out", description = "File to write the ticket to (JSON).")
        Path out;

        @Option(names = "--vendor-key", description = "The vendor's public key file (vendor.pub). A TMR node's "
                + "ticket is checked against it as a program checks it offline: the vendor's statement of the group's "
                + "keys and two backend signatures; a ticket that fails is returned and the command fails with 231.")
        Path vendorKey;

        @Override
        public Integer call() {
            Bytes trusted;
            try {
                trusted = vendorKey == null ? null
                        : Bytes.of(Ed25519.raw(VendorKeyFiles.readPublic(vendorKey)));
            } catch (java.io.IOException | IllegalArgumentException e) {
                System.err.println("tmr: cannot read the vendor key " + vendorKey + ": " + e.getMessage());
                return Output.USAGE;
            }
            return parent.withClient((client, output) -> {
                LicenseHandle handle = product.access(client);
                BorrowTicket ticket = handle.borrow(duration);
                String checked = null;
                if (trusted != null && ticket.issuer().mask() == BorrowedLicense.VIRTUAL_MASK) {
                    try {
                        BorrowedLicense.of(ticket, trusted);
                        checked = "vendor key " + Ed25519.fingerprint(trusted.toArray());
                    } catch (CmException refused) {
                        try {
                            client.returnBorrow(ticket.ticketId());
                        } catch (CmException returnFailed) {
                            refused.addSuppressed(returnFailed);
                        }
                        throw refused;
                    }
                }
                Map<String, Object> fields = new LinkedHashMap<>();
                fields.put("ticket", ticket.ticketId());
                fields.put("firm", ticket.firmCode());
                fields.put("product", ticket.productCode());
                fields.put("client", ticket.clientId());
                fields.put("expiresAt", java.time.Instant.ofEpochMilli(ticket.expiresAtMillis()).toString());
                fields.put("issuer", ticket.issuer().toString());
                fields.put("signature", ticket.signature().toHex());
                if (checked != null) {
                    fields.put("checkedWith", checked);
                }
                if (out != null) {
                    try {
                        Files.writeString(out, Output.toJson(fields) + "\n");
                    } catch (java.io.IOException e) {
                        throw new IllegalStateException("cannot write the ticket to " + out + ": " + e.getMessage(), e);
                    }
                }
                output.result("Borrowed ticket " + ticket.ticketId() + " until " + fields.get("expiresAt"), fields);
                return Output.OK;
            });
        }
    }

    @Command(name = "return", description = "Return a borrowed seat early.")
    static final class Return implements Callable<Integer> {
        @ParentCommand
        ClientCommand parent;

        @Option(names = "--ticket", required = true, description = "The ticket id from borrow.")
        long ticket;

        @Override
        public Integer call() {
            return parent.withClient((client, out) -> {
                client.returnBorrow(ticket);
                out.result("Returned ticket " + ticket, Map.of("ticket", ticket, "returned", true));
                return Output.OK;
            });
        }
    }
}
