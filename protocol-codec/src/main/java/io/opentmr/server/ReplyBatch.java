package io.opentmr.server;

import io.netty.channel.Channel;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Answers completed together reach each event loop as one task. An actor that answers a batch of requests at once
 * (the backend's container after a group commit) would otherwise hand every connection's reply to its event loop
 * separately, and each hand-off to a loop that went back to sleep in between wakes it again (an eventfd write and a
 * context switch each). Inside {@link #run}, {@link FrameSession.Pending#succeed} and {@link FrameSession.Pending#fail}
 * hold their task; when {@code run} ends, each event loop gets its tasks in one, in the order they were completed.
 *
 * <p>Per thread: a batch covers what the calling thread completes inside {@code run}, nothing else.
 */
public final class ReplyBatch {

    private static final Logger LOG = LoggerFactory.getLogger(ReplyBatch.class);
    private static final ThreadLocal<Map<Executor, List<Runnable>>> HELD = new ThreadLocal<>();
    /** Channels written to, not yet flushed, by the batch task running on this event loop; null: none runs. */
    private static final ThreadLocal<Set<Channel>> FLUSH_LATER = new ThreadLocal<>();

    private ReplyBatch() {
    }

    /** Runs {@code completions}, then hands each event loop the answers it completed for that loop as one task. */
    public static void run(Runnable completions) {
        if (HELD.get() != null) {
            completions.run();
            return;
        }
        Map<Executor, List<Runnable>> held = new IdentityHashMap<>(4);
        HELD.set(held);
        try {
            completions.run();
        } finally {
            HELD.remove();
            for (Map.Entry<Executor, List<Runnable>> loop : held.entrySet()) {
                List<Runnable> tasks = loop.getValue();
                try {
                    loop.getKey().execute(tasks.size() == 1 ? tasks.get(0) : () -> runAll(tasks));
                } catch (RejectedExecutionException e) {
                    // The event loop is shutting down: its connections are closing and nobody reads the answers.
                    LOG.debug("{} answer(s) dropped: their event loop is shutting down", tasks.size());
                }
            }
        }
    }

    /** Hands {@code task} to {@code loop}: at once, or at the end of the current {@link #run}. */
    static void execute(Executor loop, Runnable task) {
        Map<Executor, List<Runnable>> held = HELD.get();
        if (held == null) {
            loop.execute(task);
        } else {
            held.computeIfAbsent(loop, l -> new ArrayList<>()).add(task);
        }
    }

    private static void runAll(List<Runnable> tasks) {
        Set<Channel> unflushed = new LinkedHashSet<>();
        FLUSH_LATER.set(unflushed);
        try {
            for (Runnable task : tasks) {
                try {
                    task.run();
                } catch (RuntimeException e) {
                    LOG.error("An answer failed on its event loop", e);
                }
            }
        } finally {
            FLUSH_LATER.remove();
            unflushed.forEach(Channel::flush);
        }
    }

    /**
     * Whether {@code channel}'s answer, being written now by one of a batch's tasks on its event loop, may wait for
     * the flush at the end of that loop's task: one flush (one write to the socket) for every answer of the batch on
     * the connection, as a TMR node's connection gets many. False outside a batch's task: flush at once.
     */
    static boolean flushLater(Channel channel) {
        Set<Channel> unflushed = FLUSH_LATER.get();
        if (unflushed == null) {
            return false;
        }
        unflushed.add(channel);
        return true;
    }
}
