package io.opentmr.tmr;

import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import io.opentmr.client.TmrClient;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tracking.TrackingLine;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The node's access list, with clients connecting from other loopback addresses (127.0.3.7, 127.0.4.7, ...):
 * refused at HELLO with 231 and a tracking line, and reloaded without touching the handles of clients still
 * allowed, while a client no longer allowed loses its handles and its connection.
 */
@Timeout(120)
@ExtendWith(NoLeaks.class)
class NodeAccessListTest {

    private static final long PRODUCT = 42;

    @TempDir
    Path dir;

    private TmrTestGroup group;

    @BeforeEach
    void start() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(PRODUCT, 2));
        group.startNode(Map.of("opentmr.node.access-list.deny", List.of("127.0.3.0/24"),
                "opentmr.node.access-list.allow", List.of("127.0.0.0/8")));
        try (TmrClient probe = TmrClient.connect(group.nodeAddress())) {
            Await.until("license listed", () -> !probe.listContainers().get(0).products().isEmpty());
        }
    }

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    private RawConnection from(String address) throws Exception {
        return new RawConnection(group.nodeAddress(), InetAddress.getByName(address));
    }

    private static Config accessList(List<String> allow, List<String> deny) {
        return ConfigFactory.parseMap(Map.of("opentmr.node.access-list.allow", allow,
                "opentmr.node.access-list.deny", deny));
    }

    private List<JsonNode> tracked(String event) throws Exception {
        group.node().trackingLog().written().get(10, TimeUnit.SECONDS);
        List<JsonNode> lines = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve("node/tracking.log"))) {
            JsonNode json = TrackingLine.json().readTree(line);
            if (json.path("event").asText().equals(event)) {
                lines.add(json);
            }
        }
        return lines;
    }

    private static long access(RawConnection client) throws Exception {
        Message granted = client.request(new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
        return assertInstanceOf(Message.AccessOk.class, granted, granted.toString()).handleId();
    }

    @Test
    void aDeniedClientHears231WithTheRuleAndIsTrackedWhileOthersAreServed() throws Exception {
        try (RawConnection denied = from("127.0.3.7")) {
            Message refused = denied.hello();
            Message.Error error = assertInstanceOf(Message.Error.class, refused, refused.toString());
            assertEquals(CmError.ACCESS_DENIED.code(), error.code());
            assertTrue(error.text().contains("127.0.3.0/24") && error.text().contains("127.0.3.7"), error.text());
            assertTrue(denied.closedByServer(), "the connection ends with the refusal");
        }
        try (RawConnection allowed = from("127.0.4.7")) {
            assertInstanceOf(Message.HelloOk.class, allowed.hello());
            access(allowed);
        }
        JsonNode denial = tracked("denial").get(0);
        assertEquals(CmError.ACCESS_DENIED.code(), denial.path("error").asInt());
        assertEquals("HELLO", denial.path("request").asText());
        assertEquals("127.0.3.7", denial.path("owner").path("address").asText());
        assertEquals("tester", denial.path("owner").path("user").asText());
        assertEquals(1, tracked("access").size());
    }

    @Test
    void aReloadKeepsTheHandlesOfClientsStillAllowedAndReleasesThoseOfClientsNoLongerAllowed() throws Exception {
        try (RawConnection kept = from("127.0.4.7"); RawConnection dropped = from("127.0.5.7")) {
            kept.hello();
            dropped.hello();
            long keptHandle = access(kept);
            long droppedHandle = access(dropped);

            group.node().reloadAccessList(accessList(List.of("127.0.0.0/8"), List.of("127.0.3.0/24", "127.0.5.0/24")));

            assertTrue(dropped.closedByServer(), "the client no longer allowed is disconnected");
            Message info = kept.request(new Message.GetInfo(keptHandle));
            assertInstanceOf(Message.Info.class, info, "the allowed client keeps its handle: " + info);
            // Its seat is free again: a third client gets it (the license has 2).
            try (RawConnection third = from("127.0.6.7")) {
                third.hello();
                long thirdHandle = access(third);
                for (int backend = 0; backend < 3; backend++) {
                    int b = backend;
                    Await.until("backend " + (b + 1) + " holds the kept and the third handle only", () -> Await
                            .unchecked(() -> group.allocations(b)).stream().map(a -> a.tmrHandleId())
                            .sorted().toList().equals(List.of(keptHandle, thirdHandle).stream().sorted().toList()));
                }
            }
            JsonNode released = tracked("release").stream()
                    .filter(l -> l.path("handle").asLong() == droppedHandle).findFirst().orElseThrow();
            assertTrue(released.path("reason").asText().startsWith("access list: denied by rule '127.0.5.0/24'"),
                    released.toString());
            try (RawConnection again = from("127.0.5.7")) {
                Message refused = again.hello();
                assertEquals(CmError.ACCESS_DENIED.code(), assertInstanceOf(Message.Error.class, refused).code());
            }

            // A bad list is refused and changes nothing.
            ConfigException bad = assertThrows(ConfigException.class, () -> group.node().reloadAccessList(
                    accessList(List.of("127.0.0.0/33"), List.of())));
            assertTrue(bad.getMessage().contains("opentmr.node.access-list"), bad.getMessage());
            assertInstanceOf(Message.Info.class, kept.request(new Message.GetInfo(keptHandle)));
            try (RawConnection still = from("127.0.5.8")) {
                assertInstanceOf(Message.Error.class, still.hello(), "the old list is still in force");
            }

            // An allow list that leaves out an address: deny wins, and an address outside every allow rule is out.
            group.node().reloadAccessList(accessList(List.of("127.0.4.0/24", "127.0.6.0/24"), List.of("127.0.4.8")));
            assertInstanceOf(Message.Info.class, kept.request(new Message.GetInfo(keptHandle)),
                    "127.0.4.7 is still allowed and keeps its handle");
            try (RawConnection outside = from("127.0.7.7"); RawConnection deniedOne = from("127.0.4.8")) {
                Message.Error noRule = assertInstanceOf(Message.Error.class, outside.hello());
                assertTrue(noRule.text().contains("matches no allow rule"), noRule.text());
                Message.Error denyWins = assertInstanceOf(Message.Error.class, deniedOne.hello());
                assertTrue(denyWins.text().contains("127.0.4.8"), denyWins.text());
            }
        }
    }
}
