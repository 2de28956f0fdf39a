package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.function.IntToLongFunction;
import org.junit.jupiter.api.Test;

class WarmUpTest {

    /** Feeds one count a second until the warm-up is done; returns it. */
    private static WarmUp run(IntToLongFunction pairsInSecond) {
        WarmUp warm = new WarmUp();
        for (int second = 0; !warm.done(); second++) {
            warm.second(pairsInSecond.applyAsLong(second));
        }
        return warm;
    }

    @Test
    void aSteadyRateSettlesAfterTwoWindows() {
        WarmUp warm = run(s -> 500);
        assertEquals(2 * WarmUp.WINDOW, warm.seconds());
        assertTrue(warm.outcome().settled());
        assertEquals(500, warm.outcome().lastPairsPerSecond());
        assertEquals(500, warm.outcome().previousPairsPerSecond());
    }

    @Test
    void aRateThatClimbsForNinetySecondsIsWaitedOutThenSettles() {
        // As a cold demo's TMR node measured: from about 30 to about 850 pairs/s over 90 s, then level.
        WarmUp warm = run(s -> s < 90 ? 30 + s * 9L : 850);
        assertTrue(warm.outcome().settled());
        assertTrue(warm.seconds() > 90, "not before the climb ends: " + warm.seconds());
        assertTrue(warm.seconds() <= 90 + 2 * WarmUp.WINDOW, "soon after: " + warm.seconds());
    }

    @Test
    void aNoisyPlateauSettles() {
        // ±15 % from one second to the next, no trend.
        WarmUp warm = run(s -> s % 2 == 0 ? 720 : 980);
        assertTrue(warm.outcome().settled());
        assertEquals(2 * WarmUp.WINDOW, warm.seconds());
    }

    @Test
    void aRateStillRisingMoreThanFivePercentAWindowIsNotSettledAndStopsAtTheMaximum() {
        WarmUp warm = run(s -> 100 + s * 10L);
        assertFalse(warm.outcome().settled());
        assertFalse(warm.outcome().idle());
        assertEquals(WarmUp.MAX.toSeconds(), warm.seconds());
        assertTrue(warm.outcome().text().contains("still rising"), warm.outcome().text());
    }

    @Test
    void aServerThatAnswersNoPairEndsTheWarmUpAfterTheIdleSeconds() {
        WarmUp warm = run(s -> 0);
        assertEquals(WarmUp.IDLE, warm.seconds());
        assertTrue(warm.outcome().idle());
        assertFalse(warm.outcome().settled());
        // A server that stops answering after a while is idle too, not settled on a window of zeros.
        WarmUp stopped = run(s -> s < 15 ? 200 : 0);
        assertEquals(15 + WarmUp.IDLE, stopped.seconds());
        assertTrue(stopped.outcome().idle());
    }

    @Test
    void aFallingRateIsSettled() {
        WarmUp warm = run(s -> s < WarmUp.WINDOW ? 900 : 600);
        assertTrue(warm.outcome().settled());
        assertEquals(2 * WarmUp.WINDOW, warm.seconds());
    }
}
