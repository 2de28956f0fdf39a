package io.opentmr.tmr.lease;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.TmrNode;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.ClusterSingleton;
import org.apache.pekko.cluster.typed.Join;
import org.apache.pekko.cluster.typed.SingletonActor;
import org.apache.pekko.coordination.lease.javadsl.Lease;
import org.apache.pekko.coordination.lease.javadsl.LeaseProvider;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Pekko's own cluster singleton with {@code use-lease = "opentmr.backend-quorum-lease"}, on a TMR node that is a
 * cluster of one: what the twin's next slice builds on. The singleton runs only once the backends granted the node
 * the active lease; the product does not run its actors as a singleton yet.
 */
@Timeout(90)
@ExtendWith(NoLeaks.class)
class SingletonOnBackendLeaseTest {

    private static final String CONFIG_PATH = "opentmr.backend-quorum-lease";

    @TempDir
    Path dir;

    private TmrTestGroup group;

    @BeforeEach
    void start() throws Exception {
        group = new TmrTestGroup(dir);
    }

    @AfterEach
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    @Test
    void theSingletonStartsOnlyOnceTheBackendsGrantTheNodeTheLeaseAndSeesItsEpoch() throws Exception {
        TmrNode rival = group.startOtherNode("node-b", "127.0.2.2", Map.of("opentmr.node.lease-on-request", true));
        Lease rivalLease = LeaseProvider.get(rival.actorSystem()).getLease("rival", CONFIG_PATH, "node-b");
        assertTrue(rivalLease.acquire().toCompletableFuture().get(5, TimeUnit.SECONDS));
        long rivalEpoch = NodeLeases.get(rival.actorSystem()).activeEpoch();

        TmrNode node = group.startNode(Map.of(
                "opentmr.node.lease-on-request", true,
                "pekko.actor.provider", "cluster",
                "pekko.remote.artery.canonical.hostname", "127.0.2.1",
                "pekko.remote.artery.canonical.port", 0,
                "pekko.cluster.jmx.enabled", false,
                "pekko.cluster.singleton.use-lease", CONFIG_PATH,
                "pekko.cluster.singleton.lease-retry-interval", "200ms",
                CONFIG_PATH + ".lease-operation-timeout", "1s"));
        ActorSystem<Void> system = node.actorSystem();
        Cluster cluster = Cluster.get(system);
        cluster.manager().tell(Join.create(cluster.selfMember().address()));
        Await.until("the node is Up in its cluster of one", () -> cluster.selfMember().status() == MemberStatus.up());
        CompletableFuture<Long> started = new CompletableFuture<>();
        ClusterSingleton.get(system).init(SingletonActor.of(Behaviors.setup(context -> {
            started.complete(NodeLeases.get(context.getSystem()).activeEpoch());
            return Behaviors.empty();
        }), "lease-probe"));

        // Two acquire rounds (1 s each, 200 ms apart) while the rival holds the lease: no singleton.
        assertThrows(TimeoutException.class, () -> started.get(2_500, TimeUnit.MILLISECONDS));
        assertFalse(node.grantsHeld() >= 2, "the node holds the lease the rival holds");

        assertTrue(rivalLease.release().toCompletableFuture().get(5, TimeUnit.SECONDS));
        long epoch = started.get(10, TimeUnit.SECONDS);
        assertTrue(epoch > rivalEpoch, "the singleton started at epoch " + epoch + ", the rival held " + rivalEpoch);
    }
}
