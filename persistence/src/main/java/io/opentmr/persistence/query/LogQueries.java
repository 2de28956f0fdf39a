package io.opentmr.persistence.query;

import io.opentmr.persistence.OpenTmrPersistence;
import io.opentmr.persistence.journal.EventCodec;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.SegmentedLog;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.LongFunction;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.japi.Pair;
import org.apache.pekko.pattern.Patterns;
import org.apache.pekko.persistence.query.EventEnvelope;
import org.apache.pekko.persistence.query.Offset;
import org.apache.pekko.persistence.query.Sequence;
import org.apache.pekko.stream.javadsl.Source;
import scala.Option;

/**
 * The query streams, shared by the javadsl and scaladsl read journals. Every stream pages through the log on
 * demand, {@code batch-size} records at a time, so it never holds more than one page; a live stream that has caught
 * up polls again after {@code refresh-interval}.
 */
final class LogQueries {

    private final ExtendedActorSystem system;
    private final EventCodec codec;
    private final Duration refreshInterval;
    private final int batchSize;

    LogQueries(ExtendedActorSystem system) {
        this.system = system;
        this.codec = new EventCodec(system);
        this.refreshInterval = OpenTmrPersistence.get(system).settings().queryRefreshInterval();
        this.batchSize = OpenTmrPersistence.get(system).settings().queryBatchSize();
    }

    private SegmentedLog log() {
        try {
            return OpenTmrPersistence.get(system).log();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** One step of a paged stream: the items and the cursor for the next step; {@code done} ends the stream. */
    private record Page<T>(List<T> items, long next, boolean done) {
    }

    private <T> Source<T, NotUsed> paged(long start, boolean live, LongFunction<Page<T>> fetch) {
        return Source.<Long, List<T>>unfoldAsync(start, cursor -> step(cursor, live, fetch))
                .mapConcat(items -> items);
    }

    private <T> CompletionStage<Optional<Pair<Long, List<T>>>> step(long cursor, boolean live,
            LongFunction<Page<T>> fetch) {
        if (cursor == Long.MIN_VALUE) {
            return CompletableFuture.completedFuture(Optional.empty());
        }
        Page<T> page;
        try {
            page = fetch.apply(cursor);
        } catch (RuntimeException e) {
            return CompletableFuture.failedFuture(e);
        }
        // A finished page still delivers its items; the sentinel cursor ends the stream on the next pull. A page
        // that only moved the cursor (it skipped deleted records) is followed at once, live or not.
        long next = page.done() ? Long.MIN_VALUE : page.next();
        if (!page.items().isEmpty() || page.done() || page.next() != cursor) {
            return CompletableFuture.completedFuture(Optional.of(Pair.create(next, page.items())));
        }
        if (!live) {
            return CompletableFuture.completedFuture(Optional.empty());
        }
        return Patterns.after(refreshInterval, system.scheduler(), system.dispatcher(),
                () -> CompletableFuture.completedFuture(Optional.of(Pair.create(cursor, List.<T>of()))));
    }

    Source<EventEnvelope, NotUsed> eventsByPersistenceId(String pid, long from, long to, boolean live) {
        long upTo = live ? to : Math.min(to, log().highestSequenceNr(pid));
        return paged(Math.max(1, from), live, cursor -> {
            if (cursor > upTo) {
                return new Page<>(List.of(), cursor, true);
            }
            List<EventEnvelope> out = new ArrayList<>();
            long[] next = {cursor};
            log().replay(pid, cursor, upTo, batchSize, r -> {
                out.add(envelope(r));
                next[0] = r.sequenceNr() + 1;
            });
            return new Page<>(out, next[0], next[0] > upTo || (!live && out.isEmpty()));
        });
    }

    Source<EventEnvelope, NotUsed> eventsByTag(String tag, Offset offset, boolean live) {
        long after = afterPosition(offset);
        long limit = live ? Long.MAX_VALUE : log().nextPosition();
        return paged(after, live, cursor -> {
            List<EventEnvelope> out = new ArrayList<>();
            SegmentedLog.TagPage page = log().eventsByTag(tag, cursor, batchSize);
            for (LogRecord r : page.records()) {
                if (r.position() >= limit) {
                    return new Page<>(out, cursor, true);
                }
                out.add(envelope(r));
            }
            // The cursor moves to the last position scanned, past deleted records that were not returned.
            long next = page.scannedTo();
            boolean exhausted = next == cursor;
            return new Page<>(out, next, !live && (exhausted || next >= limit - 1));
        });
    }

    Source<String, NotUsed> persistenceIds(boolean live) {
        int limit = live ? Integer.MAX_VALUE : log().persistenceIds(0, Integer.MAX_VALUE).size();
        return paged(0, live, cursor -> {
            int from = (int) cursor;
            List<String> ids = log().persistenceIds(from, Math.min(batchSize, limit - from));
            return new Page<>(ids, from + ids.size(), !live && from + ids.size() >= limit);
        });
    }

    private EventEnvelope envelope(LogRecord r) {
        return new EventEnvelope(Offset.sequence(r.position()), r.persistenceId(), r.sequenceNr(), codec.payload(r),
                r.timestamp(), Option.apply(codec.metadata(r)));
    }

    /** Offsets are global positions and exclusive: the stream starts after the given one. */
    private static long afterPosition(Offset offset) {
        if (offset instanceof Sequence s) {
            return s.value();
        }
        if (offset == null || offset.equals(Offset.noOffset())) {
            return -1;
        }
        throw new IllegalArgumentException("opentmr read journal takes Sequence offsets (global positions), not "
                + offset.getClass().getSimpleName());
    }
}
