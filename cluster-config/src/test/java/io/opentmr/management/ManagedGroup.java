package io.opentmr.management;

import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.protocol.AdminToken;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.TmrNode;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A real TMR node ({@code 127.0.2.1}) over three real backends ({@code 127.0.1.1..3}), each with its management HTTP
 * on a free port, the installation's admin token, and the TMR licenses asked for; {@link #http} talks to the node's.
 */
record ManagedGroup(TmrTestGroup group, TmrNode node, Management nodeHttp, Management[] backendHttp, String token,
                    HttpProbe http) implements AutoCloseable {

    /** Starts it all in {@code dir} and waits (bounded) until the node is ready. */
    static ManagedGroup start(Path dir, List<LicenseIssuer.Request> licenses) throws Exception {
        return start(dir, Map.of(), group -> {
            for (LicenseIssuer.Request license : licenses) {
                group.issueTmr(license);
            }
        });
    }

    /** What a test issues into the backends once they run. */
    interface Issue {
        void into(TmrTestGroup group) throws Exception;
    }

    /**
     * Starts it all in {@code dir} with {@code config} on every backend and the node, and waits (bounded) until the
     * node is ready.
     */
    static ManagedGroup start(Path dir, Map<String, Object> config, Issue issue) throws Exception {
        Path tokenFile = dir.resolve("admin.token");
        String token = AdminToken.createIfMissing(tokenFile).value();
        Map<String, Object> common = new HashMap<>(config);
        common.put(AdminToken.TOKEN_FILE_KEY, tokenFile.toString());
        TmrTestGroup group = new TmrTestGroup(dir.resolve("group"), Clock.systemUTC(), common,
                i -> ManagementFixture.flatten(ManagementFixture.settings(backendAddress(i), Map.of())
                        .pekkoConfig(false)));
        Management[] backendHttp = new Management[3];
        Management nodeHttp = null;
        try {
            for (int i = 0; i < 3; i++) {
                backendHttp[i] = Management.forBackend(group.backend(i),
                        ManagementFixture.settings(backendAddress(i), Map.of()));
            }
            issue.into(group);
            ManagementSettings settings = ManagementFixture.settings("127.0.2.1", Map.of());
            Map<String, Object> overrides = new HashMap<>(ManagementFixture.flatten(settings.pekkoConfig(false)));
            overrides.putAll(common);
            TmrNode node = group.startNode(overrides);
            nodeHttp = Management.forNode(node, settings);
            HttpProbe http = new HttpProbe(nodeHttp.url());
            NodeManagementTest.await("the node is ready", () -> http.get("/health/ready").status() == 200);
            return new ManagedGroup(group, node, nodeHttp, backendHttp, token, http);
        } catch (Exception | Error e) {
            new ManagedGroup(group, null, nodeHttp, backendHttp, token, null).close();
            throw e;
        }
    }

    /** The address of backend {@code i} (0..2). */
    static String backendAddress(int i) {
        return "127.0.1." + (i + 1);
    }

    /** A client of the node. */
    TmrClient client(String user, String host, String clientName) {
        return TmrClient.connect(TmrClientOptions.builder().addresses(group.nodeAddress()).user(user).host(host)
                .clientName(clientName).requestTimeout(Duration.ofSeconds(10)).build());
    }

    @Override
    public void close() {
        if (nodeHttp != null) {
            nodeHttp.close();
        }
        for (Management backend : backendHttp) {
            if (backend != null) {
                backend.close();
            }
        }
        group.close();
    }
}
