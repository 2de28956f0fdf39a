package io.opentmr.runtime;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import java.util.HashMap;
import java.util.Map;

/**
 * The threads of a backend's or a TMR node's process, from its {@code threads} settings. On a machine with few
 * cores a hand-off between threads costs more than the work it hands over (a wake-up, a context switch and a
 * cold cache on each side), so the request path runs on few threads:
 * <ul>
 *   <li>{@code io}: Netty event loops of the client connections, one per available processor by default;</li>
 *   <li>{@code actors}: a fixed pool for the actor system's default dispatcher, on which the journal plugin's actor
 *       runs too (its {@code plugin-dispatcher}), so that an actor, the journal actor and its resequencer hand a
 *       write and its acknowledgement to each other on the same thread instead of waking others. Pekko's own
 *       default, a fork-join pool of at least 8 threads, woke a parked thread for almost every message here. With
 *       {@code opentmr.persistence.write-on-caller} (a backend's default) a write that finds the journal idle is also
 *       written and fsynced on this thread, instead of waking the journal's writer thread and being woken back;</li>
 *   <li>{@code actors-on-io} (off by default; a backend refuses it when TMR nodes can use it): work for the default
 *       dispatcher handed over on an I/O thread (a request waking the container, the container's write to the
 *       journal) runs on that thread once it has read what arrived, not on the pool
 *       ({@link EventLoopFirstExecutor}): no wake-up either way, and the journal's write and its fsync happen there
 *       too;</li>
 *   <li>Pekko's internal dispatcher (cluster, remoting's control and the actor system's own actors) gets as many
 *       threads as processors, at least 2, instead of at least 4.</li>
 * </ul>
 * The snapshot store keeps its own dispatcher: it writes files while the actors go on. With {@code actors = 0}
 * the actor system's dispatchers stay as configured.
 *
 * @param io     event loops of the client connections (at least 1)
 * @param actors     threads of the default dispatcher; 0 leaves the dispatchers as configured
 * @param actorsOnIo whether the default dispatcher's work handed over on an I/O thread runs there (needs
 *                   {@code actors} above 0)
 */
public record ProcessThreads(int io, int actors, boolean actorsOnIo) {

    public ProcessThreads {
        if (io < 1 || actors < 0) {
            throw new IllegalArgumentException("io must be at least 1 and actors 0 or more: " + io + ", " + actors);
        }
    }

    /** Threads whose actors run on their own pool only. */
    public ProcessThreads(int io, int actors) {
        this(io, actors, false);
    }

    /**
     * {@code threads.io}, {@code threads.actors} and {@code threads.actors-on-io} (off when absent) of a component's
     * settings.
     *
     * @param c    the component's section ({@code opentmr.backend}, {@code opentmr.node})
     * @param path the section's path, for the error
     * @throws ConfigException.BadValue naming the key, for a negative count
     */
    public static ProcessThreads from(Config c, String path) {
        int io = c.getInt("threads.io");
        if (io < 0) {
            throw new ConfigException.BadValue(path + ".threads.io", "must be 0 (one per processor) or more, not "
                    + io);
        }
        int actors = c.getInt("threads.actors");
        if (actors < 0) {
            throw new ConfigException.BadValue(path + ".threads.actors", "must be 0 (as configured) or more, not "
                    + actors);
        }
        boolean actorsOnIo = c.hasPath("threads.actors-on-io") && c.getBoolean("threads.actors-on-io");
        if (actorsOnIo && actors == 0) {
            throw new ConfigException.BadValue(path + ".threads.actors-on-io", "needs " + path + ".threads.actors "
                    + "above 0: with 0 the dispatchers stay as configured");
        }
        return new ProcessThreads(io == 0 ? Runtime.getRuntime().availableProcessors() : io, actors, actorsOnIo);
    }

    /**
     * The actor system's configuration with these threads: {@code config} unchanged when {@code actors} is 0.
     *
     * @param origin names the setting in the configuration's origin (what Pekko prints for a bad value)
     */
    public Config applyTo(Config config, String origin) {
        if (actors == 0) {
            return config;
        }
        int internal = Math.max(2, Runtime.getRuntime().availableProcessors());
        Map<String, Object> tuned = new HashMap<>(Map.of(
                "pekko.actor.default-dispatcher.executor", actorsOnIo
                        ? EventLoopFirstExecutor.Configurator.class.getName() : "thread-pool-executor",
                "pekko.actor.default-dispatcher.thread-pool-executor.fixed-pool-size", actors,
                "pekko.actor.internal-dispatcher.fork-join-executor.parallelism-min", internal,
                "pekko.actor.internal-dispatcher.fork-join-executor.parallelism-max", internal));
        String journal = config.getString("pekko.persistence.journal.plugin");
        if (!journal.isEmpty()) {
            tuned.put(journal + ".plugin-dispatcher", "pekko.actor.default-dispatcher");
        }
        return ConfigFactory.parseMap(tuned, origin).withFallback(config);
    }
}
