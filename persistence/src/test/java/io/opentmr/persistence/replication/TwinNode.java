package io.opentmr.persistence.replication;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.persistence.LogLines;
import io.opentmr.persistence.log.FsyncPolicy;
import io.opentmr.persistence.log.LogOptions;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.SegmentedLog;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.apache.pekko.actor.typed.javadsl.Adapter;

/**
 * One node of a twin in a test: an actor system with Artery TCP on 127.0.0.1 (random port) and a log of its own,
 * leading or following. {@link #kill} stops it without a word to the other side, the way a dead process would look.
 */
final class TwinNode {

    static final String LEADER_NAME = "replication-leader";

    private static final Config CONFIG = ConfigFactory.parseString("""
            pekko.loglevel = WARNING
            pekko.loggers = ["org.apache.pekko.event.slf4j.Slf4jLogger"]
            pekko.logging-filter = "org.apache.pekko.event.slf4j.Slf4jLoggingFilter"
            pekko.actor.provider = remote
            pekko.actor.allow-java-serialization = off
            pekko.remote.artery.transport = tcp
            pekko.remote.artery.canonical.hostname = 127.0.0.1
            pekko.remote.artery.canonical.port = 0
            pekko.remote.artery.advanced.outbound-restart-backoff = 100ms
            pekko.coordinated-shutdown.run-by-jvm-shutdown-hook = off
            opentmr.persistence.replication.ack-timeout = 2s
            opentmr.persistence.replication.max-message-bytes = 4 KiB
            opentmr.persistence.replication.session-timeout = 2s
            """).withFallback(ConfigFactory.load()).resolve();

    final String name;
    final Path dir;
    final long epoch;
    final ActorSystem<Void> system;
    final SegmentedLog log;
    final ReplicationLeader.Monitor monitor = new ReplicationLeader.Monitor();
    final ReplicationFollower.Monitor followerMonitor = new ReplicationFollower.Monitor();
    final ReplicationSettings settings;

    private TwinNode(String name, Path dir, long epoch, Config overrides) throws IOException {
        this.name = name;
        this.dir = dir;
        this.epoch = epoch;
        Config config = overrides.withFallback(CONFIG);
        this.settings = ReplicationSettings.fromConfig(config);
        // Small segments: replication crosses segment boundaries; fsync on: the round trip includes it, as in a node.
        this.log = SegmentedLog.open(LogOptions.defaults(dir).withSegmentSize(64 * 1024).withFsync(FsyncPolicy.BATCH)
                .withEpoch(() -> epoch).withReplicatedTo(monitor::replicatedPosition));
        // A classic system: the test spawns the replication actors at /user/..., where the follower looks them up.
        this.system = Adapter.toTyped(org.apache.pekko.actor.ActorSystem.create("twin", config));
    }

    static TwinNode start(String name, Path dir, long epoch) throws IOException {
        return new TwinNode(name, dir, epoch, ConfigFactory.empty());
    }

    static TwinNode start(String name, Path dir, long epoch, String overrides) throws IOException {
        return new TwinNode(name, dir, epoch, ConfigFactory.parseString(overrides));
    }

    TwinNode lead() {
        Adapter.spawn(Adapter.toClassic(system), ReplicationLeader.create(log, settings, monitor, name), LEADER_NAME,
                DispatcherSelector.fromConfig(ReplicationSettings.DISPATCHER));
        return this;
    }

    /** Where the log ended each time the follower announced a cut back to the leader's log, before making it. */
    final List<Long> cutsAnnounced = new java.util.concurrent.CopyOnWriteArrayList<>();

    TwinNode follow(TwinNode leader) {
        Adapter.spawn(Adapter.toClassic(system), ReplicationFollower.create(log, settings, leader.leaderPath(), name,
                following -> { }, followerMonitor, () -> cutsAnnounced.add(log.nextPosition())),
                "replication-follower", DispatcherSelector.fromConfig(ReplicationSettings.DISPATCHER));
        return this;
    }

    String leaderPath() {
        ExtendedActorSystem classic = (ExtendedActorSystem) Adapter.toClassic(system);
        return classic.provider().getDefaultAddress() + "/user/" + LEADER_NAME;
    }

    /** Appends one event of {@code pid}, as the journal would. */
    CompletableFuture<SegmentedLog.Appended> write(String pid, long seq) {
        LogRecord r = LogRecord.event(pid, seq, 1_700_000_000_000L + seq, "w-" + name, 4, "m", "", List.of("t"),
                (pid + ":" + seq + ":" + "x".repeat((int) (seq % 300))).getBytes(StandardCharsets.UTF_8));
        return log.append(List.of(log.encode(List.of(r))));
    }

    /** Stops the actor system and closes the log; the twin hears nothing, as after kill -9. */
    void kill() throws Exception {
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        log.close();
    }

    static List<String> records(SegmentedLog log) {
        return LogLines.records(log);
    }

    static String line(LogRecord r) {
        return LogLines.line(r);
    }

    static final Duration WAIT = Duration.ofSeconds(15);
}
