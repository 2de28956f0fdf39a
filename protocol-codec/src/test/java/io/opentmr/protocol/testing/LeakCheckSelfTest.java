package io.opentmr.protocol.testing;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The leak check itself must be able to fail, or every "no leak" in the suite means nothing. */
class LeakCheckSelfTest {

    @Test
    void aDroppedBufferIsReportedAsALeak() {
        LeakCheck.collectLeaks();
        leakOne();
        List<String> leaks = LeakCheck.collectLeaks();
        assertFalse(leaks.isEmpty(), "a buffer dropped without release must be reported");
        assertTrue(leaks.get(0).contains("ByteBuf"), leaks.get(0));
    }

    @Test
    void aReleasedBufferIsNotALeak() {
        LeakCheck.collectLeaks();
        ByteBuf buf = PooledByteBufAllocator.DEFAULT.buffer(16);
        buf.writeLong(1);
        buf.release();
        assertTrue(LeakCheck.collectLeaks().isEmpty());
    }

    private static void leakOne() {
        ByteBuf buf = PooledByteBufAllocator.DEFAULT.buffer(16);
        buf.writeLong(42);
    }
}
