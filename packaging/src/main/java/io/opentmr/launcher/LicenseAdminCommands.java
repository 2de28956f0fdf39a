package io.opentmr.launcher;

import io.opentmr.client.AdminClient;
import io.opentmr.client.CmException;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.license.ContainerContext;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.Serial;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** The operator's license commands: they talk to a server's admin side. */
final class LicenseAdminCommands {

    private LicenseAdminCommands() {
    }

    static AdminClient connect(String server, String adminToken) {
        return AdminClient.connect(TmrClientOptions.builder().addresses(server).clientName("tmr-admin")
                .connectTimeout(Duration.ofSeconds(5)).requestTimeout(Duration.ofSeconds(10)).build(), adminToken);
    }

    @Command(name = "context", mixinStandardHelpOptions = true,
            description = "Export a server's container context, for the vendor to issue update files from.")
    static final class Context implements Callable<Integer> {
        @Option(names = "--server", required = true, description = "HOST:PORT of the backend.")
        String server;

        @Option(names = "--out", required = true, description = "The context file to write.")
        Path out;

        @Option(names = "--container", description = "Serial of the container (a backend holding several); default "
                + "its first.")
        String container;

        @Option(names = "--admin-token", defaultValue = "", description = "Needed unless on loopback.")
        String adminToken;

        @Option(names = "--json", description = "One JSON object on stdout.")
        boolean json;

        @Override
        public Integer call() throws Exception {
            Output output = new Output(json, System.out, System.err);
            try (AdminClient admin = connect(server, adminToken)) {
                byte[] context = admin.licenseContext(container == null ? Serial.NONE : Serial.parse(container));
                ContainerContext parsed = ContainerContext.parse(context);
                Files.write(out, context);
                Map<String, Object> fields = new LinkedHashMap<>();
                fields.put("file", out.toString());
                fields.put("serial", parsed.serial());
                fields.put("cmActId", parsed.cmActId());
                output.result("Context of container " + parsed.serial() + " (CmActId " + parsed.cmActId()
                        + ") written to " + out, fields);
                return Output.OK;
            } catch (CmException e) {
                return output.cmError(e);
            }
        }
    }

    @Command(name = "import", mixinStandardHelpOptions = true,
            description = "Apply signed license update files to a server, in the order given.")
    static final class Import implements Callable<Integer> {
        @Option(names = "--server", required = true, description = "HOST:PORT of the backend.")
        String server;

        @Option(names = "--admin-token", defaultValue = "", description = "Needed unless on loopback.")
        String adminToken;

        @Option(names = "--json", description = "One JSON object on stdout.")
        boolean json;

        @Parameters(arity = "1..*", paramLabel = "FILE", description = "License update files.")
        List<Path> files;

        @Override
        public Integer call() throws Exception {
            Output output = new Output(json, System.out, System.err);
            List<Map<String, Object>> applied = new ArrayList<>();
            StringBuilder text = new StringBuilder();
            try (AdminClient admin = connect(server, adminToken)) {
                for (Path file : files) {
                    Message.LicenseUpdateOk ok = admin.importLicense(Files.readAllBytes(file));
                    Map<String, Object> fields = new LinkedHashMap<>();
                    fields.put("file", file.toString());
                    fields.put("container", ok.container().toString());
                    fields.put("firm", ok.firmCode());
                    fields.put("firmUpdateCounter", ok.firmUpdateCounter());
                    applied.add(fields);
                    text.append("Applied ").append(file).append(" to ").append(ok.container()).append(", firm ")
                            .append(ok.firmCode()).append(" now at firm update counter ")
                            .append(ok.firmUpdateCounter()).append('\n');
                }
                output.result(text.toString().stripTrailing(), Map.of("applied", applied));
                return Output.OK;
            } catch (CmException e) {
                if (!text.isEmpty()) {
                    System.err.print(text);
                }
                return output.cmError(e);
            }
        }
    }
}
