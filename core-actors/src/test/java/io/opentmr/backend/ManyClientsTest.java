package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.opentmr.client.CmException;
import io.opentmr.client.LicenseHandle;
import io.opentmr.client.TmrClient;
import io.opentmr.client.TmrClientOptions;
import io.opentmr.license.LicenseIssuer;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.testing.NoLeaks;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * A thousand SDK clients, each with its own connection, in bounded access / decrement / release loops
 * against one backend: never more seats than the quantity, never a unit below zero, and the tracking
 * log, replayed in order, agrees with the final state.
 */
@Timeout(180)
@ExtendWith(NoLeaks.class)
class ManyClientsTest {

    private static final int CLIENTS = 1000;
    private static final int ROUNDS = 3;
    private static final int QUANTITY = 25;
    private static final long UNITS = 400;

    @TempDir
    Path dir;

    @Test
    void aThousandClientsNeverGetMoreSeatsOrUnitsThanThereAre() throws Exception {
        ListAppender<ILoggingEvent> tracking = new ListAppender<>();
        tracking.start();
        Logger trackingLogger = (Logger) LoggerFactory.getLogger(TrackingLog.LOGGER);
        trackingLogger.addAppender(tracking);
        List<TmrClient> clients = new ArrayList<>();
        ExecutorService workers = Executors.newFixedThreadPool(64);
        try (TestBackend backend = new TestBackend(dir, Clock.systemUTC(), Map.of())) {
            backend.issueAndImport(new LicenseIssuer.Request(TestBackend.FIRM, 42, QUANTITY, false, UNITS, null, null,
                    null, null, 0, "contended"));
            for (int i = 0; i < CLIENTS; i++) {
                clients.add(TmrClient.connect(TmrClientOptions.builder().addresses(backend.address())
                        .clientName("load-" + i).host("host-" + (i % 50)).user("user-" + i)
                        .requestTimeout(Duration.ofSeconds(30)).build()));
            }

            AtomicInteger holders = new AtomicInteger();
            AtomicInteger mostHolders = new AtomicInteger();
            AtomicLong unitsTaken = new AtomicLong();
            Map<Integer, AtomicInteger> refusals = new ConcurrentHashMap<>();
            List<Future<?>> runs = new ArrayList<>();
            for (TmrClient client : clients) {
                runs.add(workers.submit(() -> {
                    for (int round = 0; round < ROUNDS; round++) {
                        try (LicenseHandle handle = client.access(TestBackend.FIRM, 42)) {
                            mostHolders.accumulateAndGet(holders.incrementAndGet(), Math::max);
                            try {
                                handle.decrementUnits(1);
                                unitsTaken.incrementAndGet();
                            } catch (CmException e) {
                                refusals.computeIfAbsent(e.code(), c -> new AtomicInteger()).incrementAndGet();
                            } finally {
                                holders.decrementAndGet();
                            }
                        } catch (CmException e) {
                            refusals.computeIfAbsent(e.code(), c -> new AtomicInteger()).incrementAndGet();
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> run : runs) {
                run.get(150, TimeUnit.SECONDS);
            }

            assertTrue(mostHolders.get() <= QUANTITY, "at most " + QUANTITY + " holders at once: " + mostHolders);
            Set<Integer> expectedRefusals = Set.of(CmError.NO_MORE_LICENSES.code(), CmError.UNIT_COUNTER_ZERO.code());
            assertTrue(expectedRefusals.containsAll(refusals.keySet()), "only 212 and 31 refusals: " + refusals);

            ProductInfo product = clients.get(0).listContainers().get(0).products().get(0);
            assertEquals(0, product.inUse(), "every seat back");
            assertEquals(UNITS - unitsTaken.get(), product.units(), "units never below zero, none lost");
            assertTrue(unitsTaken.get() <= UNITS);

            // The tracking log replayed in order never shows more holders than seats, and ends where the state is.
            ObjectMapper json = new ObjectMapper();
            Set<Long> open = new HashSet<>();
            int granted = 0;
            // A batch's lines come as one logging event, one line each.
            List<String> lines = List.copyOf(tracking.list).stream()
                    .flatMap(e -> e.getFormattedMessage().lines()).toList();
            for (String line : lines) {
                JsonNode event = json.readTree(line);
                switch (event.get("event").asText()) {
                    case "access" -> {
                        assertTrue(open.add(event.get("handle").asLong()));
                        granted++;
                        assertTrue(open.size() <= QUANTITY, "tracking log shows " + open.size() + " holders");
                    }
                    case "release", "reclaim" -> assertTrue(open.remove(event.get("handle").asLong()));
                    default -> { }
                }
            }
            assertTrue(open.isEmpty(), "the tracking log ends with no holder, like the state");
            int refusedAccesses = refusals.getOrDefault(CmError.NO_MORE_LICENSES.code(), new AtomicInteger()).get();
            assertEquals(CLIENTS * ROUNDS, granted + refusedAccesses, "every access is either tracked or refused");
        } finally {
            workers.shutdownNow();
            clients.forEach(TmrClient::close);
            trackingLogger.detachAppender(tracking);
        }
    }
}
