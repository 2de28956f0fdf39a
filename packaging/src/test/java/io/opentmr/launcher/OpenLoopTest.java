package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.client.CmException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongUnaryOperator;
import org.junit.jupiter.api.Test;

/**
 * {@link OpenLoop}'s schedule and latency accounting, its pacing driven on the test's thread by a hand-moved
 * clock: a pair "takes" time by moving the clock before it is answered, so every figure is exact. Then its pairs
 * answered later, from the pacing thread and from other threads.
 */
class OpenLoopTest {

    private static final long MS = TimeUnit.MILLISECONDS.toNanos(1);
    private static final long START = 1_000 * MS;

    /** Time moves only when the worker sleeps or a pair takes time. */
    private static class HandClock implements Load.Clock {
        long now = START;

        @Override
        public long nanoTime() {
            return now;
        }

        @Override
        public void sleepUntil(long deadline) {
            now = Math.max(now, deadline);
        }
    }

    /** A server whose answer to pair {@code n} (0, 1, …) takes {@code serviceNanos.applyAsLong(n)}. */
    private static Load.Pair server(HandClock clock, LongUnaryOperator serviceNanos) {
        long[] n = {0};
        return () -> clock.now += serviceNanos.applyAsLong(n[0]++);
    }

    /** The pair answered before it returns, as the test's clock says. */
    private static OpenLoop.AsyncPair async(Load.Pair pair) {
        return () -> {
            try {
                pair.run();
                return CompletableFuture.completedFuture(null);
            } catch (CmException e) {
                return CompletableFuture.failedFuture(e);
            }
        };
    }

    private static double ms(Load.Figures figures, double percentile) {
        return figures.latency().getValueAtPercentile(percentile) / (double) MS;
    }

    @Test
    void pairsAreDueAtFixedIntervalsSharedAndStaggeredOverTheConnections() {
        OpenLoop loop = new OpenLoop(new HandClock(), 1000, 4, 1, START, START, START + 1000 * MS);
        assertEquals(START, loop.dueAt(0, 0));
        assertEquals(START + MS, loop.dueAt(1, 0));
        assertEquals(START + 3 * MS, loop.dueAt(3, 0));
        assertEquals(START + 4 * MS, loop.dueAt(0, 1));
        assertEquals(START + 333_333_333, new OpenLoop(new HandClock(), 3, 1, 1, START, START, START + MS)
                .dueAt(0, 1), "a rate that does not divide a second");
        assertThrows(IllegalArgumentException.class, () -> new OpenLoop(new HandClock(), 0, 1, 1, START, START,
                START + MS));
    }

    @Test
    void aServerThatKeepsUpIsMeasuredAtItsServiceTime() throws InterruptedException {
        HandClock clock = new HandClock();
        // 100 pairs/s for 1 s after a 100 ms warm-up; each pair takes 1 ms.
        OpenLoop loop = new OpenLoop(clock, 100, 1, 1, START, START + 100 * MS, START + 1100 * MS);
        loop.run(List.of(async(server(clock, n -> MS))));

        Load.Figures figures = loop.figures(clock.now);
        assertEquals(100, figures.pacing().scheduled(), "the warm-up's 10 pairs are not measured");
        assertEquals(100, figures.pairs());
        assertEquals(0, figures.pacing().unsent());
        assertEquals(0, figures.pacing().maxLagNanos());
        assertEquals(100, figures.latency().getTotalCount());
        assertEquals(1.0, ms(figures, 99.9), 0.01);
        assertEquals(MS, figures.maxNanos());
        assertEquals(100.0, figures.pacing().targetRate());
        assertEquals(100, figures.pacing().pacerLate().getTotalCount(), "the measured pairs' pacing");
        assertEquals(0, figures.pacing().pacerLate().getMaxValue(), "the pacing thread woke on time");
    }

    @Test
    void aStallCountsInEveryPairDueDuringItWhereAClosedLoopCountsItOnce() throws InterruptedException {
        // Pair 10 takes 500 ms, the others 1 ms; 100 pairs/s (one every 10 ms) for 2 s.
        LongUnaryOperator stallAtTen = n -> n == 10 ? 500 * MS : MS;

        HandClock clock = new HandClock();
        OpenLoop open = new OpenLoop(clock, 100, 1, 1, START, START, START + 2000 * MS);
        open.run(List.of(async(server(clock, stallAtTen))));
        Load.Figures figures = open.figures(clock.now);

        assertEquals(200, figures.pairs(), "the backlog is sent after the stall, nothing skipped");
        assertEquals(0, figures.pacing().unsent());
        // Pair 10 (due at 100 ms) is answered at 600 ms; pair 11 (due at 110 ms) is sent then, 490 ms late.
        assertEquals(490 * MS, figures.pacing().maxLagNanos());
        assertEquals(500 * MS, figures.maxNanos());
        // Pairs 10 .. 64 wait (each catches up 9 ms): 55 of 200 pairs, so p50 is 1 ms and p90 well above.
        assertEquals(1.0, ms(figures, 50), 0.01);
        assertTrue(ms(figures, 90) > 200, "p90 " + ms(figures, 90));
        assertTrue(ms(figures, 99) > 450, "p99 " + ms(figures, 99));

        // The same server measured closed-loop: the stall is one pair in several hundred.
        HandClock closedClock = new HandClock();
        ClosedLoop closed = new ClosedLoop(closedClock, 1, START, START + 2000 * MS);
        closed.work(0, server(closedClock, stallAtTen));
        Load.Figures hidden = closed.figures(closedClock.now);
        assertEquals(1.0, ms(hidden, 99), 0.01);
        assertEquals(500 * MS, hidden.maxNanos());
    }

    @Test
    void pairsNotSentByTheEndAreCountedAndEnterTheLatencyWithTheirAge() throws InterruptedException {
        // 1000 pairs/s for 1 s; pair 5 hangs 5 s and fails with 101, as the SDK does when a server is gone.
        HandClock clock = new HandClock();
        OpenLoop loop = new OpenLoop(clock, 1000, 1, 1, START, START, START + 1000 * MS);
        long[] backlogMidway = {-1};
        long[] n = {0};
        loop.run(List.of(async(() -> {
            if (n[0]++ == 5) {
                clock.now = START + 500 * MS;
                backlogMidway[0] = loop.backlog(clock.now);
                clock.now = START + 5 * MS + 5000 * MS;
                throw new CmException(101, "no server");
            }
            clock.now += MS / 10;
        })));

        assertEquals(495, backlogMidway[0], "501 pairs due by 500 ms, 6 of them taken");
        Load.Figures figures = loop.figures(clock.now);
        assertEquals(1000, figures.pacing().scheduled());
        assertEquals(5, figures.pairs(), "answered in the measured time; pair 5's answer came after it");
        assertEquals(Map.of(101, 1L), figures.errorsByCode(), "pair 5 was due in the measured time");
        assertEquals(994, figures.pacing().unsent());
        assertEquals(1000, figures.latency().getTotalCount(), "the unsent pairs count in the latency");
        // Pair 6, due at 6 ms and not sent by 1000 ms, is 994 ms old at the end; the median unsent one ≈ 500 ms.
        assertTrue(ms(figures, 50) > 490 && ms(figures, 50) < 510, "p50 " + ms(figures, 50));
        assertEquals(5000 * MS, figures.maxNanos(), "pair 5's answer");
    }

    @Test
    void aBacklogLeftByTheWarmUpIsAnsweredInTheMeasuredTimeWhileItsOwnPairsWait() throws InterruptedException {
        // 100 pairs/s; each pair takes 20 ms, twice the interval: the clients fall ever further behind.
        HandClock clock = new HandClock();
        OpenLoop loop = new OpenLoop(clock, 100, 1, 1, START, START + 1000 * MS, START + 2000 * MS);
        loop.run(List.of(async(server(clock, n -> 20 * MS))));
        Load.Figures figures = loop.figures(clock.now);
        // Pair k is sent at 20k ms: warm-up pairs 49 .. 98 are answered in the measured time (1000 .. 1980 ms);
        // none of the measured time's own 100 pairs is sent before the end.
        assertEquals(50, figures.pairs(), "what the server did in the measured time");
        assertEquals(100, figures.pacing().scheduled());
        assertEquals(100, figures.pacing().unsent());
        assertEquals(1000 * MS, figures.maxNanos(), "pair 100, due at 1000 ms, still unsent at 2000 ms");
    }

    @Test
    void aDeadServerAtAHighRateCostsNoMemoryAndBoundedWork() throws InterruptedException {
        // A million pairs/s for 10 s: pair 0 never returns in the time, the rest are never sent.
        HandClock clock = new HandClock();
        OpenLoop loop = new OpenLoop(clock, 1_000_000, 1, 1, START, START, START + 10_000 * MS);
        loop.run(List.of(async(() -> {
            clock.now += 60_000 * MS;
            throw new CmException(101, "no server");
        })));
        Load.Figures figures = loop.figures(clock.now);
        assertEquals(10_000_000, figures.pacing().scheduled());
        assertEquals(9_999_999, figures.pacing().unsent());
        assertEquals(10_000_000, figures.latency().getTotalCount());
        // Recorded in steps at each step's youngest age: a lower bound, within one step (10 ms) of the truth.
        assertTrue(ms(figures, 50) > 4980 && ms(figures, 50) < 5010, "p50 " + ms(figures, 50));
    }

    @Test
    void aPairInFlightWhenTheWorkersAreGivenUpOnCountsWithItsAge() throws InterruptedException {
        // 10 pairs/s for 1 s; pair 3 (due at 300 ms) is still in flight at 950 ms, when the figures are taken.
        HandClock clock = new HandClock();
        OpenLoop loop = new OpenLoop(clock, 10, 1, 2, START, START, START + 1000 * MS);
        Load.Figures[] givenUp = {null};
        long[] n = {0};
        loop.run(List.of(async(() -> {
            if (n[0]++ == 3) {
                clock.now = START + 950 * MS;
                givenUp[0] = loop.figures(clock.now);
            }
            clock.now += MS;
        })));
        Load.Figures figures = givenUp[0];
        assertEquals(3, figures.pairs());
        assertEquals(6, figures.pacing().unsent(), "pairs 4 .. 9");
        assertEquals(10, figures.latency().getTotalCount());
        assertEquals(2, figures.pacing().outstanding());
        assertEquals(650 * MS, figures.maxNanos(), "pair 3's age then; the oldest unsent one's, pair 4, is 600 ms");
    }

    @Test
    void aConnectionKeepsAtMostItsOutstandingPairsInFlightAndEachAnswerSendsItsBacklog() throws Exception {
        // 1000 pairs/s for 10 ms, one connection with 2 pairs in flight at most; the server answers each pair 3 ms
        // after it was sent, later than its start returns: the answers come while the pacing thread waits.
        ArrayDeque<long[]> pending = new ArrayDeque<>();
        List<CompletableFuture<Void>> answers = new ArrayList<>();
        List<Long> sentAt = new ArrayList<>();
        int[] inFlight = {0, 0};
        HandClock clock = new HandClock() {
            @Override
            public void sleepUntil(long deadline) {
                while (!pending.isEmpty() && pending.peek()[1] <= deadline) {
                    long[] next = pending.poll();
                    now = Math.max(now, next[1]);
                    inFlight[0]--;
                    answers.get((int) next[0]).complete(null);
                }
                super.sleepUntil(deadline);
            }
        };
        OpenLoop loop = new OpenLoop(clock, 1000, 1, 2, START, START, START + 10 * MS);
        loop.run(List.of(() -> {
            sentAt.add((clock.now - START) / MS);
            inFlight[1] = Math.max(inFlight[1], ++inFlight[0]);
            answers.add(new CompletableFuture<>());
            pending.add(new long[] {answers.size() - 1, clock.now + 3 * MS});
            return answers.get(answers.size() - 1);
        }));

        assertEquals(2, inFlight[1], "never more than --outstanding in flight");
        // Pairs 0 and 1 go at their due time; from then on each answer sends the oldest pair due.
        assertEquals(List.of(0L, 1L, 3L, 4L, 6L, 7L, 9L), sentAt);
        assertEquals(2, pending.size(), "pairs 5 and 6 are still in flight at the end");
        assertFalse(loop.awaitAnswers(clock.now), "given up on at once");
        clock.sleepUntil(START + 20 * MS);
        assertTrue(loop.awaitAnswers(clock.now));

        Load.Figures figures = loop.figures(clock.now);
        assertEquals(10, figures.pacing().scheduled());
        assertEquals(3, figures.pacing().unsent(), "pairs 7 .. 9");
        assertEquals(5, figures.pairs(), "answered before the end: pairs 0 .. 4");
        assertEquals(3 * MS, figures.pacing().maxLagNanos(), "pair 6, due at 6 ms, sent at 9 ms");
        assertEquals(0, figures.pacing().pacerLate().getMaxValue(), "late because of the bound, not the pacing");
        assertEquals(10, figures.latency().getTotalCount());
    }

    @Test
    void aPairThatCannotStartIsAnErrorAndFreesItsPlace() throws InterruptedException {
        HandClock clock = new HandClock();
        OpenLoop loop = new OpenLoop(clock, 100, 1, 1, START, START, START + 1000 * MS);
        loop.run(List.of(() -> {
            throw new IllegalStateException("the client is broken");
        }));
        Load.Figures figures = loop.figures(clock.now);
        assertEquals(0, figures.pacing().unsent());
        assertEquals(Map.of(OpenLoop.UNEXPECTED_FAILURE, 100L), figures.errorsByCode());
    }

    @Test
    void answersFromOtherThreadsNeitherLoseNorRepeatAPairNorExceedTheBound() throws Exception {
        // Real time and real threads: 4 connections at 4000 pairs/s for 300 ms, 3 in flight each at most; two
        // threads answer each pair 0-2 ms after it was sent, every tenth with 309.
        int clients = 4;
        int outstanding = 3;
        ScheduledExecutorService answerers = Executors.newScheduledThreadPool(2);
        try {
            AtomicInteger[] inFlight = new AtomicInteger[clients];
            AtomicInteger[] maxInFlight = new AtomicInteger[clients];
            AtomicLong started = new AtomicLong();
            AtomicLong refused = new AtomicLong();
            List<OpenLoop.AsyncPair> pairs = new ArrayList<>();
            for (int c = 0; c < clients; c++) {
                AtomicInteger now = inFlight[c] = new AtomicInteger();
                AtomicInteger max = maxInFlight[c] = new AtomicInteger();
                pairs.add(() -> {
                    max.accumulateAndGet(now.incrementAndGet(), Math::max);
                    boolean refuse = started.incrementAndGet() % 10 == 0;
                    CompletableFuture<Void> answer = new CompletableFuture<>();
                    answerers.schedule(() -> {
                        now.decrementAndGet();
                        if (refuse) {
                            refused.incrementAndGet();
                            answer.completeExceptionally(new CompletionException(new CmException(309, "busy")));
                        } else {
                            answer.complete(null);
                        }
                    }, ThreadLocalRandom.current().nextInt(2_000), TimeUnit.MICROSECONDS);
                    return answer;
                });
            }
            long start = System.nanoTime();
            OpenLoop loop = new OpenLoop(Load.Clock.SYSTEM, 4000, clients, outstanding, start, start,
                    start + 300 * MS);
            loop.run(pairs);
            assertTrue(loop.awaitAnswers(System.nanoTime() + 10_000 * MS), "every pair answered");

            Load.Figures figures = loop.figures(System.nanoTime());
            assertEquals(1200, figures.pacing().scheduled());
            assertEquals(figures.pacing().scheduled(), started.get() + figures.pacing().unsent(),
                    "each pair due sent once, or counted unsent");
            assertEquals(1200, started.get() + loop.backlog(start + 300 * MS - 1),
                    "the pairs started are the connections' first ones: none skipped, none twice");
            assertEquals(1200, figures.latency().getTotalCount());
            assertEquals(refused.get(), figures.errorsByCode().getOrDefault(309, 0L));
            for (int c = 0; c < clients; c++) {
                assertTrue(maxInFlight[c].get() <= outstanding, "connection " + c + ": " + maxInFlight[c]);
                assertEquals(0, inFlight[c].get());
            }
        } finally {
            answerers.shutdownNow();
            assertTrue(answerers.awaitTermination(5, TimeUnit.SECONDS));
        }
    }
}
