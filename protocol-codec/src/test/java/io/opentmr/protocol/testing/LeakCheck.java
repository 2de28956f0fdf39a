package io.opentmr.protocol.testing;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.util.ResourceLeakDetector;
import io.netty.util.ResourceLeakDetectorFactory;
import java.lang.ref.PhantomReference;
import java.lang.ref.ReferenceQueue;
import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;

/**
 * Turns Netty's leak reports into test failures. Netty only logs a leak when a leaked buffer's
 * phantom reference is polled, which happens on a later allocation after a GC; {@link #assertNoLeaks()}
 * forces that: a GC, a bounded wait until the GC has enqueued its references, then allocations.
 *
 * <p>The recording detector must be installed before the first {@code ByteBuf} class loads;
 * {@link LeakDetectionSession} does that at the start of every test run.
 */
public final class LeakCheck {

    private static final Queue<String> LEAKS = new ConcurrentLinkedQueue<>();
    private static volatile boolean installed;

    private LeakCheck() {
    }

    public static synchronized void install() {
        if (installed) {
            return;
        }
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.PARANOID);
        ResourceLeakDetectorFactory.setResourceLeakDetectorFactory(new RecordingFactory());
        installed = true;
    }

    /** Collects garbage, lets Netty poll its leak queue, and fails with every leak it reported. */
    public static void assertNoLeaks() {
        List<String> leaks = collectLeaks();
        if (!leaks.isEmpty()) {
            throw new AssertionError(leaks.size() + " ByteBuf leak(s) reported by Netty:\n" + String.join("\n", leaks));
        }
    }

    /** The leaks reported since the last call, after forcing the detector to look. */
    public static List<String> collectLeaks() {
        for (int round = 0; round < 3; round++) {
            awaitGcCycle();
            // Each allocation makes the detector poll its reference queue and report what it finds.
            for (int i = 0; i < 8; i++) {
                touch(PooledByteBufAllocator.DEFAULT.buffer(8));
                touch(PooledByteBufAllocator.DEFAULT.directBuffer(8));
                touch(UnpooledByteBufAllocator.DEFAULT.heapBuffer(8));
            }
        }
        List<String> leaks = new ArrayList<>();
        for (String leak; (leak = LEAKS.poll()) != null; ) {
            leaks.add(leak);
        }
        return leaks;
    }

    private static void touch(ByteBuf buf) {
        buf.release();
    }

    /** Runs GC until a phantom-reachable sentinel is enqueued: the GC's references are then being enqueued too. */
    private static void awaitGcCycle() {
        ReferenceQueue<Object> queue = new ReferenceQueue<>();
        PhantomReference<Object> sentinel = new PhantomReference<>(new Object(), queue);
        try {
            for (int attempt = 0; attempt < 20; attempt++) {
                System.gc();
                if (queue.remove(50) != null) {
                    return;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            sentinel.clear();
        }
        throw new AssertionError("no GC cycle completed within 20 attempts; leak check inconclusive");
    }

    private static final class RecordingFactory extends ResourceLeakDetectorFactory {
        @Override
        public <T> ResourceLeakDetector<T> newResourceLeakDetector(Class<T> resource, int samplingInterval) {
            return recording(resource, samplingInterval);
        }

        /** Required by the abstract factory; Netty no longer calls it with a meaningful {@code maxActive}. */
        @Override
        @Deprecated
        public <T> ResourceLeakDetector<T> newResourceLeakDetector(Class<T> resource, int samplingInterval,
                                                                   long maxActive) {
            return recording(resource, samplingInterval);
        }

        private static <T> ResourceLeakDetector<T> recording(Class<T> resource, int samplingInterval) {
            return new ResourceLeakDetector<>(resource, samplingInterval) {
                @Override
                protected void reportTracedLeak(String resourceType, String records) {
                    LEAKS.add("LEAK of " + resourceType + ":" + records);
                    super.reportTracedLeak(resourceType, records);
                }

                @Override
                protected void reportUntracedLeak(String resourceType) {
                    LEAKS.add("LEAK of " + resourceType + " (untraced)");
                    super.reportUntracedLeak(resourceType);
                }
            };
        }
    }
}
