package io.opentmr.management;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.TmrNode;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Management HTTP of a node over backends that each hold two containers (CmActIds 7 and 8), a license in each: the
 * node's routes show both virtual containers, the licenses and handles of both (each naming its virtual container),
 * and force-release finds a handle of the second (docs/several-containers.md §2).
 */
@Timeout(180)
class NodeManagementSeveralContainersTest {

    private static final long OTHER_CM_ACT_ID = 8;
    private static final long FIRST_PRODUCT = 301;
    private static final long OTHER_PRODUCT = 302;

    @TempDir
    Path dir;

    @Test
    void theRoutesShowBothVirtualContainersAndReleaseAHandleOfTheSecond() throws Exception {
        try (ManagedGroup managed = ManagedGroup.start(dir, Map.of("opentmr.backend.additional-containers",
                List.of(OTHER_CM_ACT_ID)), group -> {
                    group.issueTmr(TmrTestGroup.seats(FIRST_PRODUCT, 2));
                    group.issueTmr(OTHER_CM_ACT_ID, TmrTestGroup.seats(OTHER_PRODUCT, 2));
                })) {
            HttpProbe http = managed.http();
            TmrNode node = managed.node();
            NodeManagementTest.await("both virtual containers list their license", () -> {
                JsonNode containers = http.get("/tmr/containers").json().path("containers");
                return containers.size() == 2 && containers.get(0).path("licenses").asInt() == 1
                        && containers.get(1).path("licenses").asInt() == 1
                        && containers.get(1).path("reconciled").asBoolean();
            });
            String second = node.otherContainers().get(0).serial().toString();
            JsonNode containers = http.get("/tmr/containers").json().path("containers");
            assertEquals(node.virtualSerial().toString(), containers.get(0).path("serial").asText());
            assertEquals(second, containers.get(1).path("serial").asText());
            assertEquals(OTHER_CM_ACT_ID, containers.get(1).path("cmActId").asLong());

            JsonNode licenses = http.get("/tmr/licenses").json().path("licenses");
            Map<Long, String> containerOf = new java.util.HashMap<>();
            licenses.forEach(license -> containerOf.put(license.path("productCode").asLong(),
                    license.path("virtualContainer").asText()));
            assertEquals(Map.of(FIRST_PRODUCT, node.virtualSerial().toString(), OTHER_PRODUCT, second), containerOf,
                    licenses.toString());

            try (TmrClient client = managed.client("dora", "ws-8", "management-test")) {
                LicenseHandle held = client.access(TmrTestGroup.FIRM, OTHER_PRODUCT);
                String id = Long.toUnsignedString(held.handleId());
                JsonNode handles = http.get("/tmr/handles").json();
                assertEquals(1, handles.path("total").asInt(), handles.toString());
                JsonNode row = handles.path("handles").get(0);
                assertEquals(id, row.path("id").asText());
                assertEquals(second, row.path("virtualContainer").asText());
                assertTrue(row.path("license").asText().contains(":" + OTHER_PRODUCT + "#"), row.toString());

                HttpProbe.Answer released = http.send("DELETE", "/tmr/handles/" + id, managed.token(), null);
                assertEquals(200, released.status(), released.body());
                assertEquals(id, released.json().path("released").asText());
                assertEquals(0, http.get("/tmr/handles").json().path("total").asInt());
                for (int b = 0; b < 3; b++) {
                    int backend = b;
                    NodeManagementTest.await("backend " + (b + 1) + " frees " + id, () -> managed.group()
                            .allocations(backend, OTHER_CM_ACT_ID).stream()
                            .noneMatch(allocation -> allocation.tmrHandleId() == held.handleId()));
                }
                assertEquals(404, http.send("DELETE", "/tmr/handles/" + id, managed.token(), null).status());
            }
        }
    }
}
