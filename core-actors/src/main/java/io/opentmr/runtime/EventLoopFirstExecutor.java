package io.opentmr.runtime;

import com.typesafe.config.Config;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.internal.ThreadExecutorMap;
import java.util.List;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.dispatch.DispatcherPrerequisites;
import org.apache.pekko.dispatch.ExecutorServiceConfigurator;
import org.apache.pekko.dispatch.ExecutorServiceFactory;
import org.apache.pekko.dispatch.ThreadPoolExecutorConfigurator;

/**
 * A dispatcher's executor that runs work handed to it on a Netty event loop's thread on that event loop, after the
 * loop's current round of reads, and all other work on a fixed thread pool ({@code thread-pool-executor} of the
 * dispatcher's configuration).
 *
 * <p>Why: a request read on an event loop wakes an actor; on the pool that is a wake-up of a parked thread (a futex
 * call on each side), and the actor's reply to the connection is a second one (the event loop is woken to write it).
 * On two cores each costs more CPU than the actor's work. Queued on the loop that read the request, the actor runs on
 * that thread once the loop has read what arrived, with no wake-up at all, and its reply to a connection of that loop
 * is written at once. Netty shares a loop's time between its reads and its queued tasks only roughly (it looks at the
 * clock every 64 tasks), so a chain of work (work handed over by work the loop runs, and so on) stays on the loop for
 * at most {@link #CHAIN_NANOS}: a busy actor does not keep the loop from its connections. Pekko runs an actor on one
 * thread at a time whichever thread it is, so an actor may run on an event loop now and on the pool next.
 *
 * <p>Work handed over on any other thread (timers, the journal's writer, the management API), on a loop that is
 * shutting down, or later in a chain than {@link #CHAIN_NANOS}, goes to the pool. Shutting this executor down shuts
 * the pool down, and {@link #isTerminated} and {@link #awaitTermination} speak of the pool only: work queued on a
 * loop runs as long as the loop does (a backend closes its connections' loops before its actor system).
 *
 * <p>Any Netty event loop of the process counts, not only those of the connections: an embedding application must
 * not block one of its own loops waiting for these actors.
 */
public final class EventLoopFirstExecutor extends AbstractExecutorService {

    /**
     * How long a chain of work queued on an event loop (work handed over by work handed over on it, and so on) may
     * run there: 1 ms, a few batches with their write and fsync at light load. Later links go to the pool, so that a
     * loop under sustained load goes back to reading its connections; Netty looks at the time only every 64 tasks.
     */
    static final long CHAIN_NANOS = 1_000_000;
    /** The start of the chain whose link runs on this thread now; {@link Long#MIN_VALUE}: none. */
    private static final ThreadLocal<long[]> CHAIN = ThreadLocal.withInitial(() -> new long[] {Long.MIN_VALUE});

    private final ExecutorService pool;
    private final long chainNanos;

    public EventLoopFirstExecutor(ExecutorService pool) {
        this(pool, CHAIN_NANOS);
    }

    /** With another bound on a chain's time, for tests. */
    EventLoopFirstExecutor(ExecutorService pool, long chainNanos) {
        this.pool = pool;
        this.chainNanos = chainNanos;
    }

    @Override
    public void execute(Runnable task) {
        EventExecutor loop = ThreadExecutorMap.currentExecutor();
        if (loop != null && !loop.isShuttingDown()) {
            long now = System.nanoTime();
            long chain = CHAIN.get()[0];
            if (chain == Long.MIN_VALUE || now - chain < chainNanos) {
                // Not refused: a loop refuses its own thread's tasks only once shut down, which it does on this
                // thread, after isShuttingDown() turned true.
                loop.execute(new Link(task, chain == Long.MIN_VALUE ? now : chain));
                return;
            }
        }
        pool.execute(task);
    }

    /** A piece of work on an event loop, and the start of its chain. */
    private record Link(Runnable task, long chainStart) implements Runnable {

        @Override
        public void run() {
            long[] chain = CHAIN.get();
            long outer = chain[0];
            chain[0] = chainStart;
            try {
                task.run();
            } finally {
                chain[0] = outer;
            }
        }
    }

    @Override
    public void shutdown() {
        pool.shutdown();
    }

    @Override
    public List<Runnable> shutdownNow() {
        return pool.shutdownNow();
    }

    @Override
    public boolean isShutdown() {
        return pool.isShutdown();
    }

    @Override
    public boolean isTerminated() {
        return pool.isTerminated();
    }

    @Override
    public boolean awaitTermination(long timeout, TimeUnit unit) throws InterruptedException {
        return pool.awaitTermination(timeout, unit);
    }

    /**
     * Pekko's name for it in a dispatcher's configuration: {@code executor = "io.opentmr.runtime.EventLoopFirstExecutor$
     * Configurator"}, with the pool's {@code thread-pool-executor} section beside it.
     */
    public static final class Configurator extends ExecutorServiceConfigurator {

        private final ThreadPoolExecutorConfigurator pool;

        public Configurator(Config config, DispatcherPrerequisites prerequisites) {
            super(config, prerequisites);
            this.pool = new ThreadPoolExecutorConfigurator(config.getConfig("thread-pool-executor"), prerequisites);
        }

        @Override
        public ExecutorServiceFactory createExecutorServiceFactory(String id, ThreadFactory threadFactory) {
            ExecutorServiceFactory poolFactory = pool.createExecutorServiceFactory(id, threadFactory);
            return () -> new EventLoopFirstExecutor(poolFactory.createExecutorService());
        }
    }
}
