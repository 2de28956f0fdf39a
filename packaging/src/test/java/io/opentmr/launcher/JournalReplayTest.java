package io.opentmr.launcher;

import static io.opentmr.testing.Await.unchecked;
import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code tmr journal replay} beside a running TMR node (three in-JVM backends, the node on our journal with 4 KiB
 * segments and a snapshot of each license every 3 events, so segments roll, events are deleted and segments compacted
 * and removed while it runs): what it rebuilds is what the node shows through the means it has today (LIST for the
 * licenses' seats, the backends' allocations for the handles and their owners, the clients' own handles), also while
 * clients keep the node writing; {@code --at} shows what was held then, and before the oldest state kept says so.
 */
@Timeout(180)
class JournalReplayTest {

    private static final long SEATS = 101;
    private static final long UNITS = 102;
    private static final long SPARE = 103;

    @TempDir
    Path dir;

    private TmrTestGroup group;
    private TmrClient client;
    private Path journal;

    private static TmrRun tmr(String... args) {
        return TmrRun.of(args);
    }

    private JsonNode replay(String... more) throws Exception {
        List<String> args = new ArrayList<>(List.of("journal", "replay", "--dir", journal.toString(), "--json"));
        args.addAll(List.of(more));
        TmrRun run = tmr(args.toArray(String[]::new));
        assertEquals(0, run.exit(), run.err());
        return run.json();
    }

    @BeforeEach
    void start() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(SEATS, 10));
        group.issueTmr(TmrTestGroup.units(UNITS, 1000));
        group.issueTmr(TmrTestGroup.seats(SPARE, 2));
        journal = dir.resolve("node/journal");
        Map<String, Object> onOurJournal = new HashMap<>();
        onOurJournal.put("pekko.persistence.journal.plugin", "opentmr.persistence.journal");
        onOurJournal.put("pekko.persistence.snapshot-store.plugin", "opentmr.persistence.snapshot-store");
        onOurJournal.put("opentmr.persistence.dir", journal.toString());
        onOurJournal.put("opentmr.persistence.segment-size", "4 KiB");
        onOurJournal.put("opentmr.persistence.fsync", "never");
        onOurJournal.put("opentmr.node.snapshot-every", 3);
        group.startNode(onOurJournal);
        // The client's connect timeout is short; a node starting on a loaded machine may need longer to serve.
        Await.until("the node serves", group.node()::serving);
        client = TmrClient.connect(group.nodeAddress());
        Await.until("the three TMR licenses listed", () -> products().size() == 3);
    }

    @AfterEach
    void stop() {
        if (client != null) {
            client.close();
        }
        if (group != null) {
            group.close();
        }
    }

    private ContainerInfo container() {
        List<ContainerInfo> containers = client.listContainers();
        assertEquals(1, containers.size(), containers.toString());
        return containers.get(0);
    }

    private List<ProductInfo> products() {
        return container().products();
    }

    private Set<String> segments() throws IOException {
        try (var files = Files.list(journal)) {
            return files.map(f -> f.getFileName().toString()).filter(f -> f.endsWith(".seg"))
                    .collect(Collectors.toCollection(TreeSet::new));
        }
    }

    private long inUse(long product) {
        return products().stream().filter(p -> p.productCode() == product).findFirst().orElseThrow().inUse();
    }

    /** The handles backend {@code b} holds allocations of, by id. */
    private Map<Long, Allocation> allocations(int b) throws Exception {
        Map<Long, Allocation> byId = new TreeMap<>();
        group.allocations(b).forEach(a -> byId.put(a.tmrHandleId(), a));
        return byId;
    }

    private static List<JsonNode> list(JsonNode array) {
        return StreamSupport.stream(array.spliterator(), false).toList();
    }

    private static Set<Long> handleIds(JsonNode replay) {
        return list(replay.get("handles")).stream().map(h -> Long.parseUnsignedLong(h.get("id").asText()))
                .collect(Collectors.toCollection(TreeSet::new));
    }

    private static JsonNode license(JsonNode replay, long product) {
        return list(replay.get("licenses")).stream().filter(l -> l.get("productCode").asLong() == product)
                .findFirst().orElseThrow(() -> new AssertionError("no license " + product + " in " + replay));
    }

    @Test
    void theReplayBesideTheRunningNodeShowsWhatTheNodeShows() throws Exception {
        List<LicenseHandle> held = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            held.add(client.access(FIRM, SEATS));
        }
        // Two STATIONSHARE handles of one station share a seat; a NOUSERLIMIT handle takes none.
        held.add(client.access(FIRM, SEATS, 0, AccessMode.STATIONSHARE));
        held.add(client.access(FIRM, SEATS, 0, AccessMode.STATIONSHARE));
        held.add(client.access(FIRM, SEATS, 0, AccessMode.NOUSERLIMIT));
        LicenseHandle units = client.access(FIRM, UNITS);
        units.decrementUnits(5);
        held.add(units);
        held.remove(1).close();
        Set<Long> open = held.stream().map(LicenseHandle::handleId).collect(Collectors.toCollection(TreeSet::new));
        for (int b = 0; b < 3; b++) {
            int backend = b;
            Await.equal("backend " + (b + 1) + " holds the clients' handles", open,
                    () -> unchecked(() -> allocations(backend).keySet()));
        }

        // LIST learns the seats from the licenses' reports, a moment after the clients hear of them.
        Await.equal("the node lists 3 USERLIMIT seats and one station's", 4L, () -> inUse(SEATS));
        Await.equal("the node lists the units handle's seat", 1L, () -> inUse(UNITS));

        JsonNode replay = replay();
        ContainerInfo live = container();

        JsonNode containers = replay.get("containers");
        assertEquals(1, containers.size(), replay.toString());
        assertEquals(live.serial().toString(), containers.get(0).get("serial").asText());
        assertEquals(live.cmActId(), containers.get(0).get("cmActId").asLong());
        assertEquals(live.products().stream().map(p -> new LicenseKey(p.firmCode(), p.productCode(), p.tmrId())
                .toString()).toList(), list(containers.get(0).get("licenses")).stream().map(JsonNode::asText).toList());

        assertEquals(live.products().size(), replay.get("licenses").size(), replay.toString());
        for (ProductInfo product : live.products()) {
            JsonNode license = license(replay, product.productCode());
            assertEquals(new LicenseKey(product.firmCode(), product.productCode(), product.tmrId()).toString(),
                    license.get("license").asText());
            assertEquals(live.serial().toString(), license.get("container").asText());
            assertEquals(product.inUse(), license.get("seats").get("used").asLong(), "seats of " + product);
            // Not in the node's journal: the backends' copies hold them.
            assertTrue(license.get("seats").get("total").isNull() && license.get("units").isNull()
                    && license.get("copies").isNull(), license.toString());
        }
        assertEquals(4, license(replay, SEATS).get("seats").get("used").asLong(), "3 USERLIMIT, 1 station");
        assertEquals(6, license(replay, SEATS).get("handles").asLong());

        assertEquals(open, handleIds(replay));
        Map<Long, Allocation> onBackend = allocations(0);
        for (JsonNode handle : list(replay.get("handles"))) {
            Allocation allocation = onBackend.get(Long.parseUnsignedLong(handle.get("id").asText()));
            assertEquals(allocation.key().toString(), handle.get("license").asText());
            assertEquals(allocation.accessMode().name(), handle.get("mode").asText());
            JsonNode owner = handle.get("owner");
            assertEquals(allocation.owner().host(), owner.get("station").asText(), "a backend names the station");
            assertEquals(allocation.owner().user(), owner.get("user").asText());
            assertEquals(allocation.owner().pid(), owner.get("pid").asLong());
            assertEquals(allocation.owner().sessionId(), Long.parseLong(handle.get("session").asText()));
            assertEquals(allocation.epoch(), handle.get("epoch").asLong());
            assertTrue(handle.get("backends").isNull(), "not in the journal");
            assertTrue(handle.get("requestId").isNumber(), handle.toString());
        }

        TmrRun table = tmr("journal", "replay", "--dir", journal.toString());
        assertEquals(0, table.exit(), table.err());
        for (long id : open) {
            assertTrue(table.out().contains(Long.toUnsignedString(id)), table.out());
        }
        assertTrue(table.out().contains("Virtual container".toUpperCase()) && table.out().contains(live.serial()
                .toString()) && table.out().contains("STATIONSHARE"), table.out());
        held.forEach(LicenseHandle::close);
    }

    @Test
    void atATimeTheReplayShowsWhatWasHeldThenAndBeforeTheOldestStateKeptItSaysSo() throws Exception {
        // Before the license's first event (each access takes round trips to the backends after this).
        Instant beforeAll = Instant.now();
        // Enough events for snapshots to delete the oldest ones: 14 on the license.
        for (int i = 0; i < 6; i++) {
            client.access(FIRM, SEATS).close();
        }
        LicenseHandle a = client.access(FIRM, SEATS);
        LicenseHandle b = client.access(FIRM, SEATS);
        // When b's seat was journaled: the license's state then is a and b (a replay takes far longer than 1 ms).
        Instant bothHeld = Instant.parse(license(replay(), SEATS).get("journal").get("updatedAt").asText());
        a.close();
        LicenseHandle c = client.access(FIRM, SEATS);

        JsonNode now = replay();
        assertEquals(Set.of(b.handleId(), c.handleId()), handleIds(now));
        JsonNode seats = license(now, SEATS).get("journal");
        assertTrue(seats.get("deletedTo").asLong() > 0, "snapshots deleted the oldest events: " + seats);
        assertEquals("snapshot", seats.get("start").asText(), seats.toString());

        JsonNode then = replay("--at", bothHeld.toString());
        assertEquals(bothHeld.toString(), then.get("at").asText());
        assertEquals(Set.of(a.handleId(), b.handleId()), handleIds(then));
        assertEquals(2, license(then, SEATS).get("seats").get("used").asLong());
        assertTrue(license(then, SEATS).get("journal").get("sequenceNr").asLong()
                < license(then, SEATS).get("journal").get("highestSequenceNr").asLong());
        // In ms since the epoch, as journal dump prints timestamps, the same.
        assertEquals(handleIds(then), handleIds(replay("--at", Long.toString(bothHeld.toEpochMilli()))));

        JsonNode oldest = replay("--at", beforeAll.toString());
        assertEquals("oldest-snapshot", license(oldest, SEATS).get("journal").get("start").asText(),
                oldest.toString());
        assertTrue(list(oldest.get("notices")).stream().anyMatch(n -> n.asText().contains("before the oldest state")
                && n.asText().contains("tmr-license|" + FIRM + "-" + SEATS)), oldest.get("notices").toString());

        TmrRun beforeAny = tmr("journal", "replay", "--dir", journal.toString(), "--at", "2001-01-01");
        assertEquals(1, beforeAny.exit());
        assertTrue(beforeAny.err().contains("before the first event"), beforeAny.err());

        TmrRun one = tmr("journal", "replay", "--dir", journal.toString(), "--json", "--persistence-id",
                "tmr-license|" + FIRM + "-" + SEATS + "-" + license(now, SEATS).get("tmrId").asLong());
        assertEquals(0, one.exit(), one.err());
        assertEquals(1, one.json().get("licenses").size());
        assertEquals(0, one.json().get("containers").size());
        assertEquals(handleIds(now), handleIds(one.json()));
        b.close();
        c.close();
    }

    /**
     * Replays while clients keep the node writing (seats granted and released, snapshots, deletions, 4 KiB segments
     * rolled, compacted and removed): every replay succeeds and shows a state the node was in (each license's seats
     * are its handles, never more than its quantity, each handle one a client got, or was about to: a seat is
     * journaled before its client hears of it); once the clients stop, the replay is the node's state.
     */
    @Test
    void replaysBesideANodeThatKeepsWritingSucceedAndEndOnItsState() throws Exception {
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Set<Long> granted = ConcurrentHashMap.newKeySet();
        List<Thread> workers = new ArrayList<>();
        List<List<LicenseHandle>> kept = new ArrayList<>();
        for (int w = 0; w < 3; w++) {
            List<LicenseHandle> mine = Collections.synchronizedList(new ArrayList<>());
            kept.add(mine);
            Thread worker = new Thread(() -> {
                try {
                    for (int i = 0; !stop.get(); i++) {
                        LicenseHandle h = client.access(FIRM, SEATS);
                        granted.add(h.handleId());
                        if (i % 3 == 0) {
                            mine.add(h);
                        } else {
                            h.close();
                        }
                        if (mine.size() > 2) {
                            mine.remove(0).close();
                        }
                    }
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            }, "replay-test-client-" + w);
            workers.add(worker);
            worker.start();
        }
        int replays = 0;
        Set<Long> replayed = new TreeSet<>();
        Set<String> segmentsSeen = new TreeSet<>();
        try {
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (System.nanoTime() < deadline || replays < 5) {
                segmentsSeen.addAll(segments());
                JsonNode replay = replay();
                JsonNode seats = license(replay, SEATS);
                long used = seats.get("seats").get("used").asLong();
                assertEquals(seats.get("handles").asLong(), used, "USERLIMIT handles only: " + seats);
                assertTrue(used <= 10, seats.toString());
                Set<Long> ids = handleIds(replay);
                assertEquals(used, ids.size());
                // A seat is journaled before its client hears of it: checked once the clients are done.
                replayed.addAll(ids);
                replays++;
                assertEquals(null, failure.get());
            }
        } finally {
            stop.set(true);
            for (Thread worker : workers) {
                worker.join(20_000);
            }
        }
        assertEquals(null, failure.get());
        assertTrue(granted.containsAll(replayed), "every handle replayed was granted to a client");
        Set<Long> open = kept.stream().flatMap(List::stream).map(LicenseHandle::handleId)
                .collect(Collectors.toCollection(TreeSet::new));
        JsonNode last = replay();
        assertEquals(open, handleIds(last));
        Await.equal("the node lists the seats the replay shows", license(last, SEATS).get("seats").get("used")
                .asLong(), () -> inUse(SEATS));
        assertTrue(license(last, SEATS).get("journal").get("deletedTo").asLong() > 0, "snapshots deleted events");
        assertTrue(replays >= 5);
        Set<String> left = segments();
        assertTrue(!left.containsAll(segmentsSeen) && left.stream().anyMatch(f -> !segmentsSeen.contains(f)),
                "segments were rolled and removed while the replays read: seen " + segmentsSeen + ", left " + left);
        kept.forEach(handles -> handles.forEach(LicenseHandle::close));
    }
}
