package io.opentmr.cluster;

import io.opentmr.persistence.OpenTmrPersistence;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.RecordType;
import io.opentmr.persistence.log.SegmentedLog;
import io.opentmr.persistence.snapshot.WarmStates;
import io.opentmr.tmr.license.StandbyTables;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A standby's reader of its own log (the copy of the active's): it folds the licenses' records into their seat
 * tables as they arrive ({@link StandbyTables}), a few milliseconds behind the follower, so that a take-over replays
 * no table. When the node leads ({@link Finish}, after the follower stopped and the log's writer drained) it reads
 * what is left and offers each table that counts to its license's recovery ({@link WarmStates}); if more is left
 * than {@link #FINISH_BOUND} records (a standby that started lately and is still reading its log) it offers nothing
 * and the licenses replay their journal as before. Runs on a dispatcher of its own: reading a big checkpoint must
 * not hold back the follower's acknowledgements.
 *
 * <p>A log cut back under it (a truncation of a dead epoch's suffix) is seen at the next read: the log's next
 * position below what was read, or the last record read now of another epoch. Every table is then forgotten and the
 * log read again from its start.
 */
final class StandbyTail extends AbstractBehavior<StandbyTail.Command> {

    private static final Logger LOG = LoggerFactory.getLogger(StandbyTail.class);

    /** How often the log is looked at for new records. */
    static final Duration EVERY = Duration.ofMillis(20);
    /** Records read per step, so that a Finish is not held back behind a long read. */
    static final int STEP = 2_000;
    /** At most this many records are read when the node leads; beyond it the licenses replay their journal. */
    static final long FINISH_BOUND = 50_000;

    sealed interface Command {
    }

    private enum Tick implements Command {
        INSTANCE
    }

    /** The log was cut back (the follower's hook): start again from its start. */
    enum Reset implements Command {
        INSTANCE
    }

    /** Read what the log holds now; {@code done} completes with the next position to read (tests). */
    record Read(CompletableFuture<Long> done) implements Command {
    }

    /** The node leads: offer the tables ({@code done} completes with how many were offered) and stop. */
    record Finish(CompletableFuture<Integer> done) implements Command {
    }

    private final SegmentedLog log;
    private final WarmStates offers;
    private final Serialization serialization;
    private final StandbyTables tables = new StandbyTables();
    /** The next position to read. */
    private long next;
    /** The last record read, and its epoch; -1 before any. */
    private long lastPosition = -1;
    private long lastEpoch = -1;
    private boolean caughtUpOnce;
    private final long startedNanos = System.nanoTime();

    static Behavior<Command> create(SegmentedLog log, WarmStates offers) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(Tick.INSTANCE, EVERY);
            return new StandbyTail(context, log, offers);
        }));
    }

    private StandbyTail(ActorContext<Command> context, SegmentedLog log, WarmStates offers) {
        super(context);
        this.log = log;
        this.offers = offers;
        this.serialization = SerializationExtension.get(Adapter.toClassic(context.getSystem()));
        offers.clear();
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessageEquals(Tick.INSTANCE, this::onTick)
                .onMessageEquals(Reset.INSTANCE, () -> {
                    reset("the log is cut back to the active's");
                    return this;
                })
                .onMessage(Finish.class, this::onFinish)
                .onMessage(Read.class, read -> {
                    while (read(STEP) == STEP) {
                        // to the log's end
                    }
                    read.done().complete(next);
                    return this;
                })
                .build();
    }

    private Behavior<Command> onTick() {
        try {
            if (read(STEP) == STEP) {
                // More is waiting: go on at once, behind whatever else came meanwhile (a Finish).
                getContext().getSelf().tell(Tick.INSTANCE);
            } else if (!caughtUpOnce) {
                caughtUpOnce = true;
                LOG.info("Standby: the licenses' seat tables are current with the log ({} of {} license(s) ready, "
                        + "{} event(s) folded in {} ms); a take-over replays none of them", tables.tablesReady(),
                        tables.licensesSeen(), tables.folded(), (System.nanoTime() - startedNanos) / 1_000_000);
            }
        } catch (RuntimeException e) {
            // A record that cannot be read: the tables are not trusted; the licenses replay their journal then.
            LOG.warn("Standby: cannot fold the log's records into the seat tables ({}); starting over", e.toString());
            reset("a record could not be read");
        }
        return this;
    }

    /** Reads and folds up to {@code max} records; returns how many it read. */
    private int read(int max) {
        if (lastPosition >= 0) {
            long epochNow = log.epochAt(lastPosition);
            if (log.nextPosition() <= lastPosition || epochNow >= 0 && epochNow != lastEpoch) {
                reset("the log was cut back under the records read");
            }
        }
        if (log.nextPosition() <= next) {
            return 0;
        }
        List<LogRecord> records = log.readFrom(next, max);
        // A license's records before its last checkpoint at hand are passed over unread: that checkpoint is its table.
        Map<String, Integer> lastCheckpoint = new HashMap<>();
        for (int i = 0; i < records.size(); i++) {
            LogRecord record = records.get(i);
            if (folded(record) && StandbyTables.isCheckpoint(record.manifest())) {
                lastCheckpoint.put(record.persistenceId(), i);
            }
        }
        for (int i = 0; i < records.size(); i++) {
            LogRecord record = records.get(i);
            if (folded(record)) {
                if (i < lastCheckpoint.getOrDefault(record.persistenceId(), -1)) {
                    tables.skip(record.persistenceId(), record.sequenceNr());
                } else {
                    tables.event(record.persistenceId(), record.sequenceNr(), record.manifest(),
                            () -> serialization.deserialize(record.payload(), record.serializerId(),
                                    record.manifest()).get());
                }
            }
            lastPosition = record.position();
            lastEpoch = record.epoch();
            next = record.position() + 1;
        }
        if (records.isEmpty()) {
            // Below the next position only removed records are left: nothing to read there.
            next = Math.max(next, log.nextPosition());
        }
        return records.size();
    }

    private static boolean folded(LogRecord record) {
        return record.type() == RecordType.EVENT && StandbyTables.folds(record.persistenceId());
    }

    private void reset(String why) {
        if (lastPosition >= 0) {
            LOG.info("Standby: the seat tables are read again from the log's start: {}", why);
        }
        tables.clear();
        next = 0;
        lastPosition = -1;
        lastEpoch = -1;
    }

    private Behavior<Command> onFinish(Finish finish) {
        long began = System.nanoTime();
        long behind = log.nextPosition() - next;
        int offered = 0;
        try {
            if (behind > FINISH_BOUND) {
                LOG.warn("Standby: {} record(s) of the log not folded yet (it started {} ms ago): the licenses replay "
                        + "their journal", behind, (System.nanoTime() - startedNanos) / 1_000_000);
            } else {
                while (read(STEP) == STEP) {
                    // reads the rest: nothing is appended any more
                }
                for (Map.Entry<String, StandbyTables.Warm> warm : tables.handOver().entrySet()) {
                    offers.offer(warm.getKey(), warm.getValue().sequenceNr(), warm.getValue().table());
                    offered++;
                }
                LOG.info("Taking over: {} license seat table(s) handed over from the standby's fold ({} record(s) "
                        + "read in {} ms)", offered, behind, (System.nanoTime() - began) / 1_000_000);
            }
        } catch (RuntimeException e) {
            offers.clear();
            offered = 0;
            LOG.warn("Taking over: the standby's seat tables are not used ({}); the licenses replay their journal",
                    e.toString());
        }
        finish.done().complete(offered);
        return Behaviors.stopped();
    }
}
