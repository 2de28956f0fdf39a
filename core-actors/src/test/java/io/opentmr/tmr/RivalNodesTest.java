package io.opentmr.tmr;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.opentmr.peer.PeerConnection;
import io.opentmr.peer.PeerOptions;
import io.opentmr.protocol.CodecLimits;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import io.opentmr.tmr.backend.PeerLink;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two TMR nodes over one group: the lease of the backends decides which one serves, and never both. The
 * case that needs more than the backends' rules: each node holds one backend's grant and the third backend
 * is down, so neither has a certificate; without giving a minority grant back they would wait for each
 * other forever.
 */
@Timeout(120)
@ExtendWith(NoLeaks.class)
class RivalNodesTest {

    @TempDir
    Path dir;

    private TmrTestGroup group;
    private EventLoopGroup peerLoop;
    private TmrNode a;
    private TmrNode b;
    private final Set<Integer> reachableByA = new HashSet<>();
    private final Set<Integer> reachableByB = new HashSet<>();

    @BeforeEach
    void start() throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(TmrTestGroup.seats(42, 2));
        peerLoop = new NioEventLoopGroup(1);
    }

    @AfterEach
    void stop() {
        for (TmrNode node : new TmrNode[] {a, b}) {
            if (node != null) {
                node.close();
            }
        }
        if (group != null) {
            group.close();
        }
        peerLoop.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    private TmrNode node(String name, String address, Set<Integer> reachable) {
        return node(name, name, address, reachable);
    }

    private TmrNode node(String name, String dataDir, String address, Set<Integer> reachable) {
        Map<String, Object> settings = new HashMap<>(Map.of(
                "opentmr.node.address", address,
                "opentmr.node.port", 0,
                "opentmr.node.data-dir", dir.resolve(dataDir).toString(),
                "opentmr.node.backends", List.of(0, 1, 2).stream().map(i -> group.backendAddress(i))
                        .map(s -> s.getAddress().getHostAddress() + ":" + s.getPort()).toList(),
                "opentmr.node.backend-timeout", "500ms",
                "opentmr.node.name", name,
                "opentmr.cluster.secret-file", group.secretFile().toString(),
                "pekko.persistence.journal.plugin", "pekko.persistence.journal.inmem",
                "pekko.persistence.snapshot-store.plugin", "pekko.persistence.no-snapshot-store"));
        Config config = ConfigFactory.parseMap(settings).withFallback(ConfigFactory.load());
        return TmrNode.start(config, Clock.systemUTC(), backend -> connect(name, reachable, backend));
    }

    private CompletionStage<PeerLink> connect(String name, Set<Integer> reachable, InetSocketAddress backend) {
        int index = -1;
        for (int i = 0; i < 3; i++) {
            if (group.backendAddress(i).getPort() == backend.getPort()) {
                index = i;
            }
        }
        synchronized (reachable) {
            if (!reachable.contains(index)) {
                return CompletableFuture.failedFuture(new java.net.ConnectException("unreachable from " + name));
            }
        }
        return PeerConnection.connect(new InetSocketAddress(backend.getHostString(), backend.getPort()), name,
                        PeerAuth.fromFile(group.secretFile()), new PeerOptions(Duration.ofSeconds(2),
                                Duration.ofSeconds(2), 1024, CodecLimits.DEFAULT), peerLoop)
                .thenApply(PeerLink::of);
    }

    @Test
    void aSecondNodeUnderTheNameOfTheServingOneNeverDisplacesIt() throws Exception {
        reachableByA.addAll(List.of(0, 1, 2));
        reachableByB.addAll(List.of(0, 1, 2));
        a = node("node-a", "a", "127.0.2.1", reachableByA);
        Await.until("the first node serves", () -> a.serving());
        // The misconfiguration the issue measured: a second node given the same name.
        b = node("node-a", "b", "127.0.2.2", reachableByB);
        long until = System.nanoTime() + Duration.ofSeconds(5).toNanos();
        while (System.nanoTime() < until) {
            assertFalse(b.serving(), "the second node under a live lease's name serves");
            assertTrue(a.serving(), "the serving node lost its lease to a second node of its name");
            Thread.sleep(50);
        }
        a.close();
        a = null;
        Await.until("once the first is gone, the second takes over", () -> b.serving());
    }

    @Test
    void twoNodesHoldingOneGrantEachResolveToOneThatServes() throws Exception {
        // The third backend is down; each node reaches one backend and takes its grant.
        reachableByA.add(0);
        reachableByB.add(1);
        a = node("node-a", "127.0.2.1", reachableByA);
        b = node("node-b", "127.0.2.2", reachableByB);
        Await.until("each node holds one grant", () -> a.grantsHeld() == 1 && b.grantsHeld() == 1);
        // Now both reach both: each backend's grant is held by the other node, so neither can make two.
        synchronized (reachableByA) {
            reachableByA.add(1);
        }
        synchronized (reachableByB) {
            reachableByB.add(0);
        }
        Await.until("one node serves", () -> a.serving() || b.serving());
        TmrNode winner = a.serving() ? a : b;
        TmrNode loser = winner == a ? b : a;
        long until = System.nanoTime() + Duration.ofSeconds(3).toNanos();
        while (System.nanoTime() < until) {
            assertFalse(a.serving() && b.serving(), "both nodes serve at once");
            assertFalse(loser.serving(), "the node without the certificate serves");
            Thread.sleep(50);
        }
    }
}
