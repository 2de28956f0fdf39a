package io.opentmr.tmr;

import static io.opentmr.testing.Await.unchecked;
import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * DESIGN §8: "losing or restarting one backend: zero client-visible errors". SDK clients access and release
 * through the node in bounded loops while one backend is killed and restarted on its data; each client
 * also holds one handle across it. No client may see an error, and afterwards every backend holds exactly
 * the handles the clients hold, as does the node.
 *
 * <p>Fails on the node before its rework (issue 10), hence the tag: nothing goes wrong while the backend is
 * down, but the restarted backend grants the same holder a new epoch (2), the node's certificate then holds
 * one grant of the new epoch, the two other backends refuse its writes (134) and its renewal at epoch 2,
 * the license marks them out of sync and stays below two usable copies, so clients get 130 from the restart
 * on (measured: 241 × 130 in the phase after the restart and 205 × 130 in the next one, 928 pairs in all;
 * no re-sync is logged after the grants converge on epoch 2).
 */
@Timeout(180)
@ExtendWith(NoLeaks.class)
class BackendRestartUnderLoadTest {

    private static final long PRODUCT = 42;
    private static final int CLIENTS = 6;
    /** Bounds of each client's loop: it stops at whichever comes first, or when the test says so. */
    private static final int MAX_PAIRS = 20_000;
    private static final Duration MAX_LOOP = Duration.ofSeconds(90);
    /** Access/release pairs every client completes in each phase: before the kill, while down, after. */
    private static final int PAIRS_PER_PHASE = 25;
    private static final int RESTARTED = 1;

    @TempDir
    Path dir;

    private TmrTestGroup group;
    private final List<TmrClient> clients = new ArrayList<>();
    private ExecutorService loops;

    @AfterEach
    void stop() throws InterruptedException {
        if (loops != null) {
            loops.shutdownNow();
            loops.awaitTermination(10, TimeUnit.SECONDS);
        }
        clients.forEach(TmrClient::close);
        if (group != null) {
            group.close();
        }
    }

    /** Where the test is; the errors are counted per phase. */
    private volatile String phase = "1 before the kill";

    /** One client's loop and what it saw. */
    private final class Loop {
        /** Pairs tried, failed or not: the loop's progress. */
        final AtomicLong pairs = new AtomicLong();
        final Map<String, AtomicInteger> errors = new ConcurrentHashMap<>();
        final List<String> firstErrors = java.util.Collections.synchronizedList(new ArrayList<>());

        void failed(Throwable failure) {
            String kind = phase + ": " + (failure instanceof CmException cm ? "error " + cm.code()
                    : failure.getClass().getSimpleName());
            errors.computeIfAbsent(kind, k -> new AtomicInteger()).incrementAndGet();
            if (firstErrors.size() < 2) {
                firstErrors.add(phase + ": " + failure.getMessage());
            }
        }
    }

    @Test
    void restartingOneBackendUnderLoadShowsClientsNoError() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(PRODUCT, 2 * CLIENTS + 4));
        group.startNode(Map.of());
        for (int i = 0; i < CLIENTS; i++) {
            clients.add(TmrClient.connect(TmrClientOptions.builder().addresses(group.nodeAddress())
                    .host("ws-" + i).pid(1000 + i).build()));
        }
        TmrClient first = clients.get(0);
        Await.until("the license listed", () -> !listed(first).isEmpty());
        // Listed means two backends serve; the test starts with all three holding the seats.
        try (LicenseHandle probe = first.access(FIRM, PRODUCT)) {
            for (int backend = 0; backend < 3; backend++) {
                int b = backend;
                Await.until("backend " + (b + 1) + " holds a seat", () -> held(b).contains(probe.handleId()));
            }
        }
        List<LicenseHandle> kept = new ArrayList<>();
        for (TmrClient client : clients) {
            kept.add(client.access(FIRM, PRODUCT));
        }

        AtomicBoolean stop = new AtomicBoolean();
        List<Loop> seen = new ArrayList<>();
        loops = Executors.newFixedThreadPool(CLIENTS);
        List<Future<?>> running = new ArrayList<>();
        long deadline = System.nanoTime() + MAX_LOOP.toNanos();
        for (TmrClient client : clients) {
            Loop loop = new Loop();
            seen.add(loop);
            running.add(loops.submit(() -> {
                while (!stop.get() && loop.pairs.get() < MAX_PAIRS && System.nanoTime() < deadline) {
                    try {
                        LicenseHandle handle = client.access(FIRM, PRODUCT);
                        handle.close();
                    } catch (RuntimeException e) {
                        loop.failed(e);
                    }
                    loop.pairs.incrementAndGet();
                }
            }));
        }

        everyClientDoes(seen, phase);
        group.kill(RESTARTED);
        phase = "2 backend " + (RESTARTED + 1) + " killed";
        everyClientDoes(seen, phase);
        group.restart(RESTARTED);
        phase = "3 backend " + (RESTARTED + 1) + " restarted";
        Set<Long> keptIds = kept.stream().map(LicenseHandle::handleId).collect(Collectors.toCollection(TreeSet::new));
        Await.until("the restarted backend holds the kept handles again",
                () -> held(RESTARTED).containsAll(keptIds));
        everyClientDoes(seen, phase);
        phase = "4 after";
        everyClientDoes(seen, phase);
        stop.set(true);
        for (Future<?> loop : running) {
            loop.get(30, TimeUnit.SECONDS);
        }

        Map<String, Integer> errors = new TreeMap<>();
        List<String> examples = new ArrayList<>();
        long pairs = 0;
        for (Loop loop : seen) {
            pairs += loop.pairs.get();
            loop.errors.forEach((kind, count) -> errors.merge(kind, count.get(), Integer::sum));
            examples.addAll(loop.firstErrors);
        }
        assertEquals(Map.of(), errors, "errors seen by " + CLIENTS + " clients in " + pairs
                + " access/release pairs while backend " + (RESTARTED + 1) + " was killed and restarted; first ones: "
                + examples);

        for (int backend = 0; backend < 3; backend++) {
            int b = backend;
            Await.equal("backend " + (b + 1) + " holds exactly the handles the clients hold", keptIds,
                    () -> held(b));
        }
        Await.equal("the node counts exactly the kept seats", (long) keptIds.size(),
                () -> listed(first).get(0).inUse());
        for (LicenseHandle handle : kept) {
            handle.close();
        }
    }

    /** Waits (bounded) until every client has done {@link #PAIRS_PER_PHASE} more pairs. */
    private static void everyClientDoes(List<Loop> seen, String phase) throws InterruptedException {
        List<Long> from = seen.stream().map(loop -> loop.pairs.get()).toList();
        for (int i = 0; i < seen.size(); i++) {
            Loop loop = seen.get(i);
            long target = from.get(i) + PAIRS_PER_PHASE;
            Await.until("client " + i + " does " + PAIRS_PER_PHASE + " pairs in phase " + phase,
                    () -> loop.pairs.get() >= target);
        }
    }

    private static List<ProductInfo> listed(TmrClient client) {
        return client.listContainers().get(0).products().stream().filter(p -> p.productCode() == PRODUCT).toList();
    }

    private Set<Long> held(int backend) {
        return unchecked(() -> group.allocations(backend)).stream().filter(a -> a.key().productCode() == PRODUCT)
                .map(Allocation::tmrHandleId).collect(Collectors.toCollection(TreeSet::new));
    }
}
