package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.testing.TmrTestGroup;
import java.nio.file.Path;
import java.time.Clock;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A twin node's role over a real group of three backends, with an activation of the test's own. */
class TwinRoleTest {

    @TempDir
    Path dir;

    private TmrTestGroup group;
    private TmrNode node;

    @BeforeEach
    void group() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(5, 2));
    }

    @AfterEach
    void close() {
        if (node != null) {
            node.close();
        }
        group.close();
    }

    @Test
    void anActivationThatNeverCompletesEndsTheRoleSoTheLeaseIsNotHeldForever() throws Exception {
        // The journal never becomes ready (a writer stuck on a hung disk, a follower that never stops): holding the
        // lease without serving would keep the twin from taking over for good.
        CompletableFuture<Long> asked = new CompletableFuture<>();
        CompletableFuture<String> ended = new CompletableFuture<>();
        TmrNode.Activation activation = new TmrNode.Activation() {
            @Override
            public CompletionStage<Void> activate(ActorSystem<Void> system, long epoch) {
                asked.complete(epoch);
                return new CompletableFuture<>();
            }

            @Override
            public void deactivated(String reason) {
                ended.complete(reason);
            }
        };
        node = TmrNode.start(group.nodeConfig("node-a", "127.0.2.1", "node-a", Map.of()), Clock.systemUTC(),
                group.connector("node-a"), activation);
        asked.get(30, TimeUnit.SECONDS);
        String reason = ended.get(60, TimeUnit.SECONDS);
        assertTrue(reason.contains("activation"), reason);
        assertFalse(node.serving(), "a node whose activation did not complete never served");
    }
}
