package io.opentmr.launcher;

import io.opentmr.client.AdminClient;
import io.opentmr.client.HelloProbe;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.protocol.AdminToken;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ServerKind;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code tmr node step-down}: a planned switch-over of a twin (patching the active node's host). The active node
 * stops serving, waits until its standby has every journal record, gives the backends' lease back and restarts as
 * the standby; the standby takes over and clients follow with their handles (they see a delay, not an error). The
 * command then waits, bounded, until the twin serves and says which node is active.
 */
@Command(name = "step-down", mixinStandardHelpOptions = true,
        description = {"Hand the active role of a twin over to its standby (planned switch-over, e.g. to patch the "
                + "active node's host).",
                "Refused, the node serving on, when no standby is in sync. Needs loopback or the admin token."})
final class NodeStepDownCommand implements Callable<Integer> {

    private static final Duration POLL = Duration.ofMillis(100);

    @Option(names = "--server", required = true, paramLabel = "HOST[:PORT]",
            description = "The active TMR node (its client address, port 22350 by default).")
    String server;

    @Option(names = "--admin-token-file", description = "File (mode 0600) with the admin token; needed unless on "
            + "loopback (" + AdminToken.TOKEN_FILE_KEY + ").")
    Path adminTokenFile;

    @Option(names = "--timeout", defaultValue = "30s",
            description = "How long to wait for the step-down and for the twin to serve, default 30s.")
    Duration timeout;

    @Option(names = "--json", description = "One JSON object on stdout.")
    boolean json;

    @Override
    public Integer call() throws Exception {
        Output out = new Output(json, System.out, System.err);
        InetSocketAddress parsed = TmrClientOptions.parseAddress(server);
        InetSocketAddress address = new InetSocketAddress(parsed.getHostString(), parsed.getPort());
        String token = adminTokenFile == null ? "" : AdminToken.fromFile(adminTokenFile).value();
        // One HELLO first, not followed: the SDK would follow a standby's NOT_ACTIVE and step the active one down.
        Message hello = HelloProbe.hello(address, timeout);
        if (hello instanceof Message.NotActive notActive) {
            System.err.println("tmr: " + server + " is not the active node (active: " + (notActive.activeAddress()
                    .isEmpty() ? "unknown" : notActive.activeAddress()) + "); step the active node down");
            return Output.CM_ERROR;
        }
        if (hello instanceof Message.Error error) {
            System.err.println("tmr: error " + error.code() + ": " + error.text());
            return Output.CM_ERROR;
        }
        if (!(hello instanceof Message.HelloOk ok) || ok.serverKind() != ServerKind.TMR_ACTIVE) {
            System.err.println("tmr: " + server + " is not a TMR node of a twin (" + hello.type() + ")");
            return Output.CM_ERROR;
        }
        long asked = System.nanoTime();
        try (AdminClient admin = AdminClient.connect(TmrClientOptions.builder().addresses(address)
                .clientName("tmr-admin").connectTimeout(Duration.ofSeconds(5)).requestTimeout(timeout).build(),
                token)) {
            admin.stepDown();
        }
        long steppedDown = (System.nanoTime() - asked) / 1_000_000;
        System.err.println(server + " stepped down after " + steppedDown + " ms: it handed the active role over and "
                + "restarts as the standby; waiting for its twin to serve");
        String active = newActive(address, asked + timeout.toNanos());
        long took = (System.nanoTime() - asked) / 1_000_000;
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("steppedDown", server);
        fields.put("steppedDownMs", steppedDown);
        fields.put("active", active);
        fields.put("activeAfterMs", active == null ? null : took);
        if (active == null) {
            out.result("No node serves " + timeout.toSeconds() + " s after the step-down: see both nodes' logs ("
                    + server + " asks for the lease again " + "after its hold-off)", fields);
            return Output.CM_ERROR;
        }
        if (active.equals(address.getHostString() + ":" + address.getPort())) {
            out.result(server + " is the active node again " + took + " ms after the step-down: its twin did not take "
                    + "over within the hold-off; see the twin's log", fields);
            return Output.CM_ERROR;
        }
        out.result(active + " is the active node (serving " + took + " ms after the step-down was asked); "
                + server + " is its standby", fields);
        return Output.OK;
    }

    /**
     * The node that serves after the step-down: the twin {@code stepped} names in NOT_ACTIVE, once it answers HELLO
     * as the active node; {@code null} when none did before {@code deadline}.
     */
    private static String newActive(InetSocketAddress stepped, long deadline) throws InterruptedException {
        String twin = "";
        while (System.nanoTime() < deadline) {
            Message answer = probe(stepped);
            if (answer instanceof Message.NotActive notActive && !notActive.activeAddress().isEmpty()) {
                twin = notActive.activeAddress();
            } else if (answer instanceof Message.HelloOk) {
                return stepped.getHostString() + ":" + stepped.getPort();
            }
            if (!twin.isEmpty()) {
                InetSocketAddress parsed = TmrClientOptions.parseAddress(twin);
                if (probe(new InetSocketAddress(parsed.getHostString(), parsed.getPort())) instanceof Message.HelloOk) {
                    return twin;
                }
            }
            Thread.sleep(POLL.toMillis());
        }
        return null;
    }

    private static Message probe(InetSocketAddress address) {
        try {
            return HelloProbe.hello(address, Duration.ofSeconds(2));
        } catch (IOException e) {
            return null;
        }
    }
}
