package io.opentmr.persistence.journal;

import io.opentmr.persistence.OpenTmrPersistence;
import io.opentmr.persistence.PersistenceSettings;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.SegmentedLog;
import java.io.IOException;
import java.io.NotSerializableException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.dispatch.Futures;
import org.apache.pekko.persistence.AtomicWrite;
import org.apache.pekko.persistence.PersistentRepr;
import org.apache.pekko.persistence.journal.japi.AsyncWriteJournal;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.concurrent.ExecutionContextExecutor;
import scala.concurrent.Future;
import scala.jdk.javaapi.CollectionConverters;
import scala.jdk.javaapi.FutureConverters;

/**
 * The Pekko journal plugin ({@code opentmr.persistence.journal}) on the segmented log of this actor system.
 *
 * <p>One call's atomic writes go to the log as one request, so they share a group commit with whatever else is
 * queued; an atomic write whose event cannot be serialized is rejected alone and the others are written.
 */
public final class OpenTmrJournal extends AsyncWriteJournal {

    private static final Logger LOG = LoggerFactory.getLogger(OpenTmrJournal.class);

    private final SegmentedLog log;
    private final IOException openFailure;
    private final EventCodec codec;
    private final ExecutionContextExecutor dispatcher;

    public OpenTmrJournal() {
        OpenTmrPersistence ext = OpenTmrPersistence.get(context().system());
        SegmentedLog opened = null;
        IOException failure = null;
        try {
            opened = ext.log();
        } catch (IOException e) {
            // Failing each request with the cause (locked, damaged) reaches every persistent actor at once; a
            // journal actor that failed to start would leave them waiting for the recovery timeout instead.
            LOG.error("journal {} of actor system {} cannot open: {}", ext.settings().directory(),
                    context().system().name(), e.getMessage());
            failure = e;
        }
        this.log = opened;
        this.openFailure = failure;
        this.codec = new EventCodec((ExtendedActorSystem) context().system());
        // File I/O blocks: never on the actor's own thread, which must stay free for the next request.
        this.dispatcher = context().system().dispatchers().lookup(PersistenceSettings.IO_DISPATCHER);
    }

    private <T> Future<T> unavailable() {
        return Futures.failed(openFailure);
    }

    @Override
    public Future<Iterable<Optional<Exception>>> doAsyncWriteMessages(Iterable<AtomicWrite> messages) {
        if (log == null) {
            return unavailable();
        }
        List<Optional<Exception>> results = new ArrayList<>();
        List<SegmentedLog.Group> groups = new ArrayList<>();
        long now = System.currentTimeMillis();
        for (AtomicWrite write : messages) {
            try {
                List<LogRecord> records = new ArrayList<>(write.size());
                for (PersistentRepr repr : CollectionConverters.asJava(write.payload())) {
                    records.add(codec.toRecord(repr, now));
                }
                groups.add(log.encode(records));
                results.add(Optional.empty());
            } catch (NotSerializableException | IllegalArgumentException e) {
                results.add(Optional.of(e));
            }
        }
        Iterable<Optional<Exception>> done = results;
        if (groups.isEmpty()) {
            return Futures.successful(done);
        }
        return FutureConverters.asScala(log.append(groups).thenApply(appended -> done));
    }

    @Override
    public Future<Void> doAsyncDeleteMessagesTo(String persistenceId, long toSequenceNr) {
        if (log == null) {
            return unavailable();
        }
        return FutureConverters.asScala(log.delete(persistenceId, toSequenceNr).thenApply(appended -> null));
    }

    @Override
    public Future<Void> doAsyncReplayMessages(String persistenceId, long fromSequenceNr, long toSequenceNr,
            long max, Consumer<PersistentRepr> replayCallback) {
        if (log == null) {
            return unavailable();
        }
        return FutureConverters.asScala(CompletableFuture.runAsync(
                () -> log.replay(persistenceId, fromSequenceNr, toSequenceNr, max,
                        record -> replayCallback.accept(codec.toRepr(record))),
                dispatcher));
    }

    @Override
    public Future<Long> doAsyncReadHighestSequenceNr(String persistenceId, long fromSequenceNr) {
        if (log == null) {
            return unavailable();
        }
        return Futures.successful(log.highestSequenceNr(persistenceId));
    }
}
