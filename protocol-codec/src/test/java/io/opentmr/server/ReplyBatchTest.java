package io.opentmr.server;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
import org.junit.jupiter.api.Test;

class ReplyBatchTest {

    /** An event loop stand-in: counts hand-offs and runs each task at once. */
    private static final class Loop implements Executor {
        int handOffs;

        @Override
        public void execute(Runnable task) {
            handOffs++;
            task.run();
        }
    }

    @Test
    void outsideABatchEachAnswerIsHandedOverAtOnce() {
        Loop loop = new Loop();
        List<String> ran = new ArrayList<>();
        ReplyBatch.execute(loop, () -> ran.add("a"));
        ReplyBatch.execute(loop, () -> ran.add("b"));
        assertEquals(2, loop.handOffs);
        assertEquals(List.of("a", "b"), ran);
    }

    @Test
    void insideABatchEachLoopGetsItsAnswersAsOneTaskInOrderAfterTheBatch() {
        Loop first = new Loop();
        Loop second = new Loop();
        List<String> ran = new ArrayList<>();
        ReplyBatch.run(() -> {
            ReplyBatch.execute(first, () -> ran.add("1a"));
            ReplyBatch.execute(second, () -> ran.add("2a"));
            ReplyBatch.execute(first, () -> ran.add("1b"));
            // A nested batch is part of the outer one.
            ReplyBatch.run(() -> ReplyBatch.execute(first, () -> ran.add("1c")));
            assertEquals(List.of(), ran, "nothing runs before the batch ends");
        });
        assertEquals(1, first.handOffs);
        assertEquals(1, second.handOffs);
        assertEquals(List.of("1a", "1b", "1c"), ran.stream().filter(s -> s.startsWith("1")).toList());
        assertEquals(4, ran.size());
        ReplyBatch.execute(first, () -> ran.add("after"));
        assertEquals(2, first.handOffs, "after the batch, answers go at once again");
    }

    @Test
    void anAnswerThatFailsDoesNotKeepTheOthersOfItsLoopBack() {
        Loop loop = new Loop();
        List<String> ran = new ArrayList<>();
        ReplyBatch.run(() -> {
            ReplyBatch.execute(loop, () -> ran.add("a"));
            ReplyBatch.execute(loop, () -> {
                throw new IllegalStateException("broken reply");
            });
            ReplyBatch.execute(loop, () -> ran.add("c"));
        });
        assertEquals(List.of("a", "c"), ran);
    }
}
