package io.opentmr.client;

import static io.opentmr.client.TmrClientTest.options;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.testing.AllAtOnce;
import io.opentmr.protocol.testing.NoLeaks;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** Many threads share one client; every reply must reach the thread that asked. */
@ExtendWith(NoLeaks.class)
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class TmrClientConcurrencyTest {

    private static final int THREADS = 16;
    private static final int ROUNDS = 50;

    @Test
    void sixteenThreadsAccessAndReleaseThroughOneClient() throws Exception {
        try (FakeLicenseServer server = FakeLicenseServer.start("node-a");
             TmrClient client = TmrClient.connect(options(server.address()).build())) {
            Set<Long> handleIds = ConcurrentHashMap.newKeySet();
            int total = AllAtOnce.run(THREADS, Duration.ofSeconds(25), thread -> {
                int done = 0;
                for (int round = 0; round < ROUNDS; round++) {
                    // NOUSERLIMIT takes no seat, so 16 threads never run out of the 3 seats.
                    try (LicenseHandle handle = client.access(FakeLicenseServer.FIRM,
                            FakeLicenseServer.PRODUCT, 0, AccessMode.NOUSERLIMIT)) {
                        assertTrue(handleIds.add(handle.handleId()), "handle ids are never reused");
                        Message.Info info = handle.info();
                        assertEquals(handle.handleId(), info.handleId());
                        byte[] data = ByteBuffer.allocate(8).putInt(thread).putInt(round).array();
                        byte[] encrypted = handle.crypt(CryptDirection.ENCRYPT, thread, data);
                        byte[] decrypted = handle.crypt(CryptDirection.DECRYPT, thread, encrypted);
                        assertTrue(Arrays.equals(data, decrypted), "the reply belongs to this request");
                        done++;
                    }
                }
                return done;
            });
            assertEquals(THREADS * ROUNDS, total);
            assertEquals(THREADS * ROUNDS, handleIds.size());
            assertEquals(THREADS * ROUNDS, server.received(MessageType.ACCESS));
            assertEquals(THREADS * ROUNDS, server.received(MessageType.RELEASE));
            assertEquals(0, server.handleCount());
            assertEquals(0, client.openHandles());
        }
    }

    @Test
    void sixteenThreadsRideThroughAServerRestart() throws Exception {
        try (FakeLicenseServer server = FakeLicenseServer.start("node-a");
             TmrClient client = TmrClient.connect(options(server.address()).build())) {
            int total = THREADS * ROUNDS;
            AtomicInteger completed = new AtomicInteger();
            CountDownLatch halfway = new CountDownLatch(1);
            CountDownLatch go = new CountDownLatch(1);
            ExecutorService threads = Executors.newFixedThreadPool(THREADS);
            try {
                List<Future<?>> results = new ArrayList<>();
                for (int t = 0; t < THREADS; t++) {
                    results.add(threads.submit(() -> {
                        go.await();
                        for (int round = 0; round < ROUNDS; round++) {
                            try (LicenseHandle handle = client.access(FakeLicenseServer.FIRM,
                                    FakeLicenseServer.PRODUCT, 0, AccessMode.NOUSERLIMIT)) {
                                assertEquals(handle.handleId(), handle.info().handleId());
                            }
                            if (completed.incrementAndGet() == total / 2) {
                                halfway.countDown();
                            }
                        }
                        return null;
                    }));
                }
                go.countDown();
                assertTrue(halfway.await(20, TimeUnit.SECONDS));
                server.stop();
                server.restart();
                for (Future<?> result : results) {
                    result.get(25, TimeUnit.SECONDS);
                }
            } finally {
                threads.shutdownNow();
            }
            assertEquals(total, completed.get());
            assertEquals(2, server.received(MessageType.HELLO), "exactly one reconnect");
            assertEquals(total, Set.copyOf(server.requestIds(MessageType.ACCESS)).size(),
                    "every ACCESS reached the server; repeats carried their original request id");
            assertEquals(0, server.handleCount(), "no handle left behind by a lost reply");
            assertEquals(0, client.openHandles());
        }
    }

    @Test
    void threadsCompetingForThreeSeatsNeverOverAllocate() throws Exception {
        try (FakeLicenseServer server = FakeLicenseServer.start("node-a");
             TmrClient client = TmrClient.connect(options(server.address()).build())) {
            CountDownLatch go = new CountDownLatch(1);
            ExecutorService threads = Executors.newFixedThreadPool(THREADS);
            try {
                List<Future<int[]>> results = new ArrayList<>();
                for (int t = 0; t < THREADS; t++) {
                    results.add(threads.submit(() -> {
                        go.await();
                        int granted = 0;
                        int refused = 0;
                        for (int round = 0; round < 20; round++) {
                            try (LicenseHandle handle = client.access(FakeLicenseServer.FIRM, FakeLicenseServer.PRODUCT)) {
                                assertTrue(server.inUse(FakeLicenseServer.PRODUCT) <= 3);
                                assertEquals(handle.handleId(), handle.info().handleId());
                                granted++;
                            } catch (CmException e) {
                                assertEquals(212, e.code(), e.getMessage());
                                refused++;
                            }
                        }
                        return new int[] {granted, refused};
                    }));
                }
                go.countDown();
                int granted = 0;
                for (Future<int[]> result : results) {
                    int[] counts = result.get(25, TimeUnit.SECONDS);
                    assertEquals(20, counts[0] + counts[1]);
                    granted += counts[0];
                }
                assertTrue(granted > 0);
                assertEquals(granted, server.received(MessageType.RELEASE));
            } finally {
                threads.shutdownNow();
            }
            assertEquals(0, server.inUse(FakeLicenseServer.PRODUCT));
        }
    }
}
