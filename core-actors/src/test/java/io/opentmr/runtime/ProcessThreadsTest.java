package io.opentmr.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.Test;

class ProcessThreadsTest {

    private static Config section(String threads) {
        return ConfigFactory.parseString("threads { " + threads + " }");
    }

    @Test
    void ioZeroIsOnePerProcessor() {
        ProcessThreads threads = ProcessThreads.from(section("io = 0, actors = 1"), "opentmr.node");
        assertEquals(Runtime.getRuntime().availableProcessors(), threads.io());
        assertEquals(1, threads.actors());
        assertEquals(3, ProcessThreads.from(section("io = 3, actors = 0"), "opentmr.node").io());
    }

    @Test
    void aNegativeCountIsRefusedNamingItsKey() {
        ConfigException io = assertThrows(ConfigException.BadValue.class,
                () -> ProcessThreads.from(section("io = -1, actors = 1"), "opentmr.node"));
        assertTrue(io.getMessage().contains("opentmr.node.threads.io"), io.getMessage());
        ConfigException actors = assertThrows(ConfigException.BadValue.class,
                () -> ProcessThreads.from(section("io = 1, actors = -2"), "opentmr.backend"));
        assertTrue(actors.getMessage().contains("opentmr.backend.threads.actors"), actors.getMessage());
    }

    @Test
    void actorsOnIoIsOffWhenAbsentAndNeedsActorThreads() {
        assertEquals(false, ProcessThreads.from(section("io = 1, actors = 1"), "opentmr.node").actorsOnIo());
        ProcessThreads on = ProcessThreads.from(section("io = 1, actors = 1, actors-on-io = on"), "opentmr.backend");
        assertTrue(on.actorsOnIo());
        Config tuned = on.applyTo(ConfigFactory.parseString("pekko.persistence.journal.plugin = \"\""), "test");
        assertEquals(EventLoopFirstExecutor.Configurator.class.getName(),
                tuned.getString("pekko.actor.default-dispatcher.executor"));
        ConfigException refused = assertThrows(ConfigException.BadValue.class, () -> ProcessThreads.from(
                section("io = 1, actors = 0, actors-on-io = on"), "opentmr.backend"));
        assertTrue(refused.getMessage().contains("opentmr.backend.threads.actors-on-io"), refused.getMessage());
    }

    @Test
    void actorsZeroLeavesTheConfigurationAsItIs() {
        Config config = ConfigFactory.parseString("pekko.persistence.journal.plugin = \"j\"");
        assertSame(config, new ProcessThreads(1, 0).applyTo(config, "test"));
    }

    @Test
    void theJournalPluginRunsOnTheDefaultDispatcherOfTheGivenSize() {
        Config config = ConfigFactory.parseString("pekko.persistence.journal.plugin = \"my.journal\"");
        Config tuned = new ProcessThreads(1, 2).applyTo(config, "test");
        assertEquals("pekko.actor.default-dispatcher", tuned.getString("my.journal.plugin-dispatcher"));
        assertEquals("thread-pool-executor", tuned.getString("pekko.actor.default-dispatcher.executor"));
        assertEquals(2, tuned.getInt("pekko.actor.default-dispatcher.thread-pool-executor.fixed-pool-size"));
        assertEquals(Math.max(2, Runtime.getRuntime().availableProcessors()),
                tuned.getInt("pekko.actor.internal-dispatcher.fork-join-executor.parallelism-max"));
    }

    /** An actor system built with one actor thread runs every actor of the default dispatcher on that thread. */
    @Test
    void anActorSystemWithOneActorThreadRunsItsActorsOnOneThread() throws Exception {
        Config config = new ProcessThreads(1, 1).applyTo(ConfigFactory.parseString(
                "pekko.persistence.journal.plugin = \"\"").withFallback(ConfigFactory.load()), "test");
        Set<String> names = java.util.Collections.synchronizedSet(new HashSet<>());
        CompletableFuture<Void> done = new CompletableFuture<>();
        ActorSystem<Void> system = ActorSystem.create(Behaviors.setup(context -> {
            for (int i = 0; i < 8; i++) {
                context.spawnAnonymous(Behaviors.setup(child -> {
                    for (int k = 0; k < 50; k++) {
                        names.add(Thread.currentThread().getName());
                    }
                    return Behaviors.empty();
                }));
            }
            context.getSystem().scheduler().scheduleOnce(java.time.Duration.ofMillis(200), () -> done.complete(null),
                    context.getExecutionContext());
            return Behaviors.empty();
        }), "threads-test", config);
        try {
            done.get(10, TimeUnit.SECONDS);
            assertEquals(1, names.size(), "threads the actors ran on: " + names);
        } finally {
            system.terminate();
            system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
    }
}
