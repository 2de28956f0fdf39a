package io.opentmr.tmr;

import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tracking.TrackingLine;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Several TMR licenses (TMR-Ids) of one product on the three backends, through the node: an ACCESS takes a seat
 * from the first license by TMR-Id that has one free and serves the feature bits, LIST shows each license.
 */
@Timeout(120)
@ExtendWith(NoLeaks.class)
class NodeSeveralLicensesTest {

    private static final long PRODUCT = 42;

    @TempDir
    Path dir;

    private TmrTestGroup group;

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    /** Two licenses of PRODUCT, issued in this order (so with rising TMR-Ids); returns their TMR-Ids. */
    private long[] start(LicenseIssuer.Request first, LicenseIssuer.Request second) throws Exception {
        return start(first, second, Map.of());
    }

    private long[] start(LicenseIssuer.Request first, LicenseIssuer.Request second, Map<String, Object> node)
            throws Exception {
        group = new TmrTestGroup(dir);
        long lower = group.issueTmr(first).tmrId();
        long higher = group.issueTmr(second).tmrId();
        assertTrue(lower < higher, lower + " < " + higher);
        startNode(node);
        return new long[] {lower, higher};
    }

    private void startNode(Map<String, Object> settings) throws Exception {
        group.startNode(settings);
        Await.until("the node serves", group.node()::serving);
        try (RawConnection client = connect(99)) {
            Await.until("both licenses listed", () -> listed(client).size() == 2);
        }
    }

    private static LicenseIssuer.Request seats(long quantity, long featureMap) {
        return new LicenseIssuer.Request(FIRM, PRODUCT, quantity, true, null, null, null, null, null, featureMap,
                "seats");
    }

    /** A client of its own process ({@code pid}): request ids of two clients never look like one re-sent. */
    private RawConnection connect(long pid) throws IOException {
        RawConnection connection = new RawConnection(group.nodeAddress());
        Message hello = connection.request(new Message.Hello("several-licenses-test", "ws-" + pid, "tester", pid));
        assertInstanceOf(Message.HelloOk.class, hello, hello.toString());
        return connection;
    }

    private static List<ProductInfo> listed(RawConnection client) {
        return TmrTestGroup.listed(client).products().stream().filter(p -> p.productCode() == PRODUCT).toList();
    }

    private static Message.AccessOk access(RawConnection client, long featureBits) throws IOException {
        Message answer = client.request(new Message.Access(FIRM, PRODUCT, featureBits, AccessMode.USERLIMIT));
        return assertInstanceOf(Message.AccessOk.class, answer, answer.toString());
    }

    private static Message.Error refused(RawConnection client, long featureBits) throws IOException {
        Message answer = client.request(new Message.Access(FIRM, PRODUCT, featureBits, AccessMode.USERLIMIT));
        return assertInstanceOf(Message.Error.class, answer, answer.toString());
    }

    /** The TMR-Id of the license a handle holds a seat of. */
    private static long licenseOf(RawConnection client, long handleId) throws IOException {
        Message info = client.request(new Message.GetInfo(handleId));
        return assertInstanceOf(Message.Info.class, info, info.toString()).product().tmrId();
    }

    @Test
    void anAccessFallsThroughToTheNextLicenseByTmrIdAndComesBackWhenTheFirstHasASeatAgain() throws Exception {
        long[] tmrIds = start(seats(1, 0xFF), seats(1, 0xFF));
        try (RawConnection client = connect(1); RawConnection other = connect(2)) {
            Message.AccessOk first = access(client, 0);
            assertEquals(tmrIds[0], licenseOf(client, first.handleId()));
            // The first license is full: the next ACCESS, on the same connection, lands on the second.
            Message.AccessOk second = access(client, 0);
            assertEquals(tmrIds[1], licenseOf(client, second.handleId()));
            // Both full: the seats-exhausted error, naming each license.
            Message.Error full = refused(other, 0);
            assertEquals(CmError.NO_MORE_LICENSES.code(), full.code(), full.text());
            assertTrue(full.text().contains("#" + tmrIds[0]) && full.text().contains("#" + tmrIds[1]), full.text());
            // LIST shows each license with its seats.
            List<ProductInfo> products = listed(other);
            assertEquals(List.of(tmrIds[0], tmrIds[1]), products.stream().map(ProductInfo::tmrId).toList());
            assertEquals(List.of(1L, 1L), products.stream().map(ProductInfo::inUse).toList());
            // A seat of the first free again: the next ACCESS takes it, not a seat of the second.
            assertInstanceOf(Message.Ok.class, client.request(new Message.Release(first.handleId())));
            Message.AccessOk again = access(other, 0);
            assertEquals(tmrIds[0], licenseOf(other, again.handleId()));
            assertEquals(CmError.NO_MORE_LICENSES.code(), refused(client, 0).code());
            // Each refused ACCESS is one denial of the product (every license refused it) in the tracking log, with
            // the seats-exhausted number; an ACCESS that fell through to another license is none.
            group.node().trackingLog().written().get(10, TimeUnit.SECONDS);
            List<JsonNode> denials = new ArrayList<>();
            for (String line : Files.readAllLines(dir.resolve("node/tracking.log"))) {
                JsonNode json = TrackingLine.json().readTree(line);
                if (json.path("event").asText().equals("denial")) {
                    denials.add(json);
                }
            }
            assertEquals(List.of(212, 212), denials.stream().map(d -> d.path("error").asInt()).toList(),
                    denials.toString());
            assertEquals(List.of(FIRM + ":" + PRODUCT, FIRM + ":" + PRODUCT), denials.stream()
                    .map(d -> d.path("item").asText()).toList(), denials.toString());
            // The seats are on the backends where the licenses say: one allocation of each TMR-Id on each.
            for (int backend = 0; backend < 3; backend++) {
                int b = backend;
                Await.equal("backend " + (b + 1) + " holds one seat of each license", List.of(tmrIds[0], tmrIds[1]),
                        () -> {
                            try {
                                return group.allocations(b).stream().map(a -> a.key().tmrId()).sorted().toList();
                            } catch (Exception e) {
                                throw new IllegalStateException(e);
                            }
                        });
            }
        }
    }

    @Test
    void anAccessFallsThroughALicenseWithoutTheFeatureBits() throws Exception {
        long[] tmrIds = start(seats(5, 0x1), seats(1, 0x3));
        try (RawConnection client = connect(1)) {
            // Bit 0x2 only the second serves; bit 0x1 the first does, and it comes first.
            assertEquals(tmrIds[1], licenseOf(client, access(client, 0x2).handleId()));
            assertEquals(tmrIds[0], licenseOf(client, access(client, 0x1).handleId()));
            // The one license with bit 0x2 is full: that, not the feature bits of the other, is what the client hears.
            assertEquals(CmError.NO_MORE_LICENSES.code(), refused(client, 0x2).code());
            // No license serves 0x4: the same number as a backend gives for feature bits it lacks.
            Message.Error none = refused(client, 0x4);
            assertEquals(CmError.ENTRY_NOT_FOUND.code(), none.code(), none.text());
        }
    }

    /**
     * RESUME_MANY over handles of two licenses: one answer, in the items' order; the handles of both licenses are
     * bound to the new session, a released handle and a wrong token get 106, and nothing else changes.
     */
    @Test
    void oneResumeManyResumesHandlesOfTwoLicensesAndAnswersAGoneHandleWith106() throws Exception {
        long[] tmrIds = start(seats(2, 0xFF), seats(2, 0xFF));
        List<Message.AccessOk> held = new ArrayList<>();
        try (RawConnection client = connect(1)) {
            for (int i = 0; i < 4; i++) {
                held.add(access(client, 0));
            }
            assertEquals(List.of(tmrIds[0], tmrIds[0], tmrIds[1], tmrIds[1]),
                    List.of(licenseOf(client, held.get(0).handleId()), licenseOf(client, held.get(1).handleId()),
                            licenseOf(client, held.get(2).handleId()), licenseOf(client, held.get(3).handleId())));
            assertInstanceOf(Message.Ok.class, client.request(new Message.Release(held.get(1).handleId())));
        }
        try (RawConnection again = connect(1)) {
            List<Message.Resume> items = List.of(
                    new Message.Resume(held.get(2).handleId(), held.get(2).resumeToken()),
                    new Message.Resume(held.get(0).handleId(), held.get(0).resumeToken()),
                    new Message.Resume(held.get(1).handleId(), held.get(1).resumeToken()),
                    new Message.Resume(held.get(3).handleId(), io.opentmr.protocol.Bytes.of(new byte[16])),
                    new Message.Resume(0x7777_0000_0000_0001L, held.get(0).resumeToken()));
            Message answer = again.request(new Message.ResumeMany(items));
            Message.ResumedMany many = assertInstanceOf(Message.ResumedMany.class, answer, answer.toString());
            int gone = CmError.INVALID_HANDLE.code();
            assertEquals(List.of(
                    new Message.ResumedMany.Outcome(held.get(2).handleId(), Message.ResumedMany.RESUMED),
                    new Message.ResumedMany.Outcome(held.get(0).handleId(), Message.ResumedMany.RESUMED),
                    new Message.ResumedMany.Outcome(held.get(1).handleId(), gone),
                    new Message.ResumedMany.Outcome(held.get(3).handleId(), gone),
                    new Message.ResumedMany.Outcome(0x7777_0000_0000_0001L, gone)), many.items());
            // Bound to this session: usable here, each on its own license.
            assertEquals(tmrIds[1], licenseOf(again, held.get(2).handleId()));
            assertEquals(tmrIds[0], licenseOf(again, held.get(0).handleId()));
            Message notOurs = again.request(new Message.GetInfo(held.get(3).handleId()));
            assertEquals(gone, assertInstanceOf(Message.Error.class, notOurs, notOurs.toString()).code());
            Message empty = again.request(new Message.ResumeMany(List.of()));
            assertEquals(new Message.ResumedMany(List.of()), empty);
            // The handle with the wrong token was not taken: its owner's token still resumes it.
            Message right = again.request(new Message.ResumeMany(List.of(
                    new Message.Resume(held.get(3).handleId(), held.get(3).resumeToken()))));
            assertEquals(new Message.ResumedMany(List.of(new Message.ResumedMany.Outcome(held.get(3).handleId(),
                    Message.ResumedMany.RESUMED))), right);
            assertEquals(List.of(1L, 2L), listed(again).stream().map(ProductInfo::inUse).sorted().toList(),
                    "seats in use: one of the first license (one released), two of the second");
        }
    }

    /**
     * The SDK against a restarted node: 70 handles over two licenses, no request waiting, are resumed in RESUME_MANYs
     * (one handle to learn the node takes them, then the others), each on its own license, not one RESUME each.
     */
    @Test
    void theSdkResumesManyHandlesOfTwoLicensesOnARestartedNodeInResumeManys() throws Exception {
        Map<String, Object> node = TmrTestGroup.restartableNode(dir.resolve("node-journal"));
        long[] tmrIds = start(seats(40, 0xFF), seats(40, 0xFF), node);
        try (TmrClient client = TmrClient.connect(TmrClientOptions.builder().addresses(group.nodeAddress())
                .requestTimeout(Duration.ofSeconds(30)).build())) {
            List<LicenseHandle> handles = new ArrayList<>();
            for (int i = 0; i < 70; i++) {
                handles.add(client.access(FIRM, PRODUCT));
            }
            group.stopNode();
            startNode(node);
            Await.until("every handle resumed on the restarted node", () -> resumes().getOrDefault(
                    MessageType.RESUME_MANY.name(), 0L) >= 2 && client.openHandles() == 70);
            for (int i = 0; i < handles.size(); i++) {
                LicenseHandle handle = handles.get(i);
                assertEquals(i < 40 ? tmrIds[0] : tmrIds[1], handle.info().product().tmrId(), handle.toString());
            }
            Map<String, Long> resumes = resumes();
            assertEquals(2L, resumes.get(MessageType.RESUME_MANY.name()), resumes.toString());
            assertEquals(0L, resumes.getOrDefault(MessageType.RESUME.name(), 0L), resumes.toString());
            try (RawConnection other = connect(3)) {
                assertEquals(List.of(30L, 40L), listed(other).stream().map(ProductInfo::inUse).sorted().toList(),
                        "resumed, not granted again");
            }
        }
    }

    /** RESUME and RESUME_MANY requests the node answered since it started, by type. */
    private Map<String, Long> resumes() {
        Map<String, Long> counts = new java.util.TreeMap<>();
        for (var snapshot : group.node().metrics().registry().scrape()) {
            if (snapshot instanceof io.prometheus.metrics.model.snapshots.HistogramSnapshot histogram
                    && histogram.getMetadata().getName().equals("opentmr_request_duration_seconds")) {
                histogram.getDataPoints().forEach(point -> {
                    String type = point.getLabels().get("request");
                    if (type.startsWith("RESUME") && point.getCount() > 0) {
                        counts.put(type, point.getCount());
                    }
                });
            }
        }
        return counts;
    }

    @Test
    void aRestartedNodeKeepsEachLicensesSeatsAndAReSentAccessStillFindsItsLicense() throws Exception {
        Map<String, Object> node = Map.of(
                // The node's own journal in its data directory, so that a restarted node comes back on it.
                "pekko.persistence.journal.plugin", "opentmr.persistence.journal",
                "pekko.persistence.snapshot-store.plugin", "opentmr.persistence.snapshot-store",
                "opentmr.persistence.dir", dir.resolve("node/journal").toString(),
                "opentmr.persistence.fsync", "never");
        long[] tmrIds = start(seats(1, 0xFF), seats(1, 0xFF), node);
        Message.AccessOk first;
        Message.AccessOk second;
        try (RawConnection client = connect(1)) {
            first = access(client, 0);
            assertEquals(tmrIds[0], licenseOf(client, first.handleId()));
            client.send(40, new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
            second = assertInstanceOf(Message.AccessOk.class, client.read().message());
            assertEquals(tmrIds[1], licenseOf(client, second.handleId()));
        }
        group.stopNode();
        startNode(node);

        try (RawConnection other = connect(2)) {
            assertEquals(List.of(1L, 1L), listed(other).stream().map(ProductInfo::inUse).toList());
            assertEquals(CmError.NO_MORE_LICENSES.code(), refused(other, 0).code(), "both still full");
            // The first seat's handle, resumed and released: its license has a seat free again.
            Message resumed = other.request(new Message.Resume(first.handleId(), first.resumeToken()));
            assertInstanceOf(Message.AccessOk.class, resumed, resumed.toString());
            assertInstanceOf(Message.Ok.class, other.request(new Message.Release(first.handleId())));
        }
        // The client that opened the second seat sends that ACCESS again: its handle, not the free seat.
        try (RawConnection again = connect(1)) {
            again.send(40, new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
            Message answer = again.read().message();
            assertEquals(second.handleId(), assertInstanceOf(Message.AccessOk.class, answer, answer.toString())
                    .handleId());
            assertEquals(tmrIds[0], licenseOf(again, access(again, 0).handleId()));
        }
    }

    @Test
    void aReSentAccessGetsItsHandleAgainNotASeatOfALicenseFreedMeanwhile() throws Exception {
        long[] tmrIds = start(seats(1, 0xFF), seats(1, 0xFF));
        try (RawConnection holder = connect(1)) {
            Message.AccessOk held = access(holder, 0);
            Message.AccessOk first;
            try (RawConnection before = connect(2)) {
                before.send(77, new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
                first = (Message.AccessOk) before.read().message();
                assertEquals(tmrIds[1], licenseOf(before, first.handleId()));
            }
            // The first license has a seat again when the same client process sends its ACCESS again.
            assertInstanceOf(Message.Ok.class, holder.request(new Message.Release(held.handleId())));
            try (RawConnection after = connect(2)) {
                after.send(77, new Message.Access(FIRM, PRODUCT, 0, AccessMode.USERLIMIT));
                Message again = after.read().message();
                assertEquals(first.handleId(), assertInstanceOf(Message.AccessOk.class, again, again.toString())
                        .handleId());
            }
            assertEquals(List.of(0L, 1L), listed(holder).stream().map(ProductInfo::inUse).toList());
        }
    }
}
