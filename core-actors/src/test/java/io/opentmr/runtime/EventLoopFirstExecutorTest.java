package io.opentmr.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.netty.channel.DefaultEventLoop;
import io.netty.channel.EventLoop;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class EventLoopFirstExecutorTest {

    private final EventLoop loop = new DefaultEventLoop();
    private final ExecutorService pool = Executors.newSingleThreadExecutor(task -> new Thread(task, "the-pool"));
    private final EventLoopFirstExecutor executor = new EventLoopFirstExecutor(pool);

    @AfterEach
    void stop() throws Exception {
        loop.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        pool.shutdownNow();
        assertTrue(pool.awaitTermination(5, TimeUnit.SECONDS));
    }

    private String loopThread() throws Exception {
        return loop.submit(() -> Thread.currentThread().getName()).get(5, TimeUnit.SECONDS);
    }

    @Test
    void workHandedOverOnAnEventLoopRunsOnThatLoopAfterWhatItIsDoing() throws Exception {
        List<String> order = Collections.synchronizedList(new ArrayList<>());
        CompletableFuture<String> ranOn = new CompletableFuture<>();
        loop.execute(() -> {
            executor.execute(() -> {
                order.add("handed over");
                ranOn.complete(Thread.currentThread().getName());
            });
            order.add("the loop's task went on");
        });
        assertEquals(loopThread(), ranOn.get(5, TimeUnit.SECONDS));
        assertEquals(List.of("the loop's task went on", "handed over"), order, "queued, not run within the call");
    }

    @Test
    void aChainOfWorkLeavesTheLoopForThePoolOnceItRanForItsTime() throws Exception {
        // A chain of 300 ms here, links of a third of that: room for a loop that starts the chain late.
        long chainNanos = 300_000_000;
        EventLoopFirstExecutor chained = new EventLoopFirstExecutor(pool, chainNanos);
        int links = 6;
        List<String> threads = Collections.synchronizedList(new ArrayList<>());
        CompletableFuture<Void> done = new CompletableFuture<>();
        Runnable[] link = new Runnable[1];
        link[0] = () -> {
            threads.add(Thread.currentThread().getName());
            long until = System.nanoTime() + chainNanos / 3 + 1_000_000;
            while (System.nanoTime() < until) {
                Thread.onSpinWait();
            }
            if (threads.size() < links) {
                chained.execute(link[0]);
            } else {
                done.complete(null);
            }
        };
        loop.execute(() -> chained.execute(link[0]));
        done.get(10, TimeUnit.SECONDS);
        String onLoop = loopThread();
        assertEquals(List.of(onLoop, onLoop), threads.subList(0, 2), "the chain starts on the loop: " + threads);
        // The fourth link is handed over after three links' time, past the chain's.
        assertEquals(List.of("the-pool", "the-pool", "the-pool"), threads.subList(3, links),
                "links handed over after the chain's time run on the pool: " + threads);
        // A new chain starts on the loop again.
        CompletableFuture<String> ranOn = new CompletableFuture<>();
        loop.execute(() -> chained.execute(() -> ranOn.complete(Thread.currentThread().getName())));
        assertEquals(onLoop, ranOn.get(5, TimeUnit.SECONDS));
    }

    @Test
    void workHandedOverOnAnyOtherThreadRunsOnThePool() throws Exception {
        CompletableFuture<String> ranOn = new CompletableFuture<>();
        executor.execute(() -> ranOn.complete(Thread.currentThread().getName()));
        assertEquals("the-pool", ranOn.get(5, TimeUnit.SECONDS));
    }

    @Test
    void workHandedOverOnALoopThatIsShuttingDownRunsOnThePool() throws Exception {
        CompletableFuture<String> ranOn = new CompletableFuture<>();
        loop.execute(() -> {
            loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            executor.execute(() -> ranOn.complete(Thread.currentThread().getName()));
        });
        assertEquals("the-pool", ranOn.get(5, TimeUnit.SECONDS));
    }

    @Test
    void shuttingItDownShutsThePoolDown() throws Exception {
        executor.shutdown();
        assertTrue(executor.isShutdown());
        assertTrue(pool.isShutdown());
        assertTrue(executor.awaitTermination(5, TimeUnit.SECONDS));
        assertTrue(executor.isTerminated());
    }

    private static boolean ranOnceOn(java.util.function.Predicate<String> thread,
                                     java.util.function.Supplier<CompletableFuture<String>> tell) throws Exception {
        for (int i = 0; i < 50; i++) {
            if (thread.test(tell.get().get(5, TimeUnit.SECONDS))) {
                return true;
            }
            Thread.sleep(20);
        }
        return false;
    }

    /** Through Pekko's configuration, as a backend sets it up ({@link ProcessThreads#applyTo}). */
    @Test
    void anActorWokenOnAnEventLoopRunsOnThatLoopAndOtherwiseOnTheDispatchersThread() throws Exception {
        Config config = new ProcessThreads(1, 1, true).applyTo(ConfigFactory.parseString(
                "pekko.persistence.journal.plugin = \"\"").withFallback(ConfigFactory.load()), "test");
        ActorSystem<CompletableFuture<String>> system = ActorSystem.create(Behaviors.receiveMessage(asked -> {
            asked.complete(Thread.currentThread().getName());
            return Behaviors.same();
        }), "loop-first-test", config);
        try {
            ActorRef<CompletableFuture<String>> actor = system;
            String onLoop = loopThread();
            // A message finds the actor's mailbox idle, or still running where the previous one ran (then it runs
            // there): asked again, a few times at most, until one is told to an idle mailbox.
            assertTrue(ranOnceOn(onLoop::equals, () -> {
                CompletableFuture<String> asked = new CompletableFuture<>();
                loop.execute(() -> actor.tell(asked));
                return asked;
            }), "told on the loop, it runs on the loop");
            assertTrue(ranOnceOn(thread -> thread.startsWith("loop-first-test-pekko.actor.default-dispatcher-"), () -> {
                CompletableFuture<String> asked = new CompletableFuture<>();
                actor.tell(asked);
                return asked;
            }), "told on another thread, it runs on the dispatcher's pool");
        } finally {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }
}
