package io.opentmr.persistence.snapshot;

import io.opentmr.persistence.OpenTmrPersistence;
import io.opentmr.persistence.PersistenceSettings;
import io.opentmr.persistence.Serialized;
import io.opentmr.persistence.log.SegmentedLog;
import java.io.IOException;
import java.io.NotSerializableException;
import java.io.UncheckedIOException;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.dispatch.Futures;
import org.apache.pekko.persistence.SelectedSnapshot;
import org.apache.pekko.persistence.SnapshotMetadata;
import org.apache.pekko.persistence.SnapshotSelectionCriteria;
import org.apache.pekko.persistence.snapshot.japi.SnapshotStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Option;
import scala.concurrent.ExecutionContextExecutor;
import scala.concurrent.Future;
import scala.jdk.javaapi.FutureConverters;

/**
 * The Pekko snapshot store plugin ({@code opentmr.persistence.snapshot-store}): one file per snapshot in
 * {@code opentmr.persistence.snapshot-dir}. Opening it opens the journal too, which locks both directories.
 */
public final class OpenTmrSnapshotStore extends SnapshotStore {

    private static final Logger LOG = LoggerFactory.getLogger(OpenTmrSnapshotStore.class);

    private final SnapshotFiles files;
    private final IOException openFailure;
    private final ExtendedActorSystem system;
    private final ExecutionContextExecutor dispatcher;
    private final WarmStates warm;
    private final SegmentedLog log;

    public OpenTmrSnapshotStore() {
        OpenTmrPersistence ext = OpenTmrPersistence.get(context().system());
        SnapshotFiles opened = null;
        SegmentedLog openedLog = null;
        IOException failure = null;
        try {
            // Opening the log locks the journal directory and the snapshot directory.
            openedLog = ext.log();
            opened = new SnapshotFiles(ext.settings().snapshotDirectory());
        } catch (IOException e) {
            // As in the journal: fail each request with the cause rather than not start.
            LOG.error("snapshot store {} of actor system {} cannot open: {}", ext.settings().snapshotDirectory(),
                    context().system().name(), e.getMessage());
            failure = e;
        }
        this.files = opened;
        this.log = openedLog;
        this.warm = ext.warmStates();
        this.openFailure = failure;
        this.system = (ExtendedActorSystem) context().system();
        // File I/O blocks: never on the actor's own thread, which must stay free for the next request.
        this.dispatcher = context().system().dispatchers().lookup(PersistenceSettings.IO_DISPATCHER);
    }

    @Override
    public Future<Optional<SelectedSnapshot>> doLoadAsync(String persistenceId, SnapshotSelectionCriteria criteria) {
        Optional<SelectedSnapshot> offered = warm(persistenceId, criteria);
        if (offered.isPresent()) {
            return Futures.successful(offered);
        }
        return async(() -> files.loadNewest(files.list(persistenceId),
                key -> criteria.matches(SnapshotMetadata.apply(persistenceId, key.sequenceNr(), key.timestamp())),
                (key, stored) -> {
                    Object snapshot = stored.snapshot().deserialize(system);
                    Option<Object> metadata = stored.metadata() == null ? Option.empty()
                            : Option.apply(stored.metadata().deserialize(system));
                    return SelectedSnapshot.create(
                            SnapshotMetadata.apply(persistenceId, key.sequenceNr(), key.timestamp(), metadata),
                            snapshot);
                },
                (key, e) -> LOG.warn("snapshot of {} at seqNr {} unreadable, trying an older one: {}", persistenceId,
                        key.sequenceNr(), e.toString()))
                .map(SnapshotFiles.Loaded::value));
    }

    /**
     * The state a standby kept current ({@link WarmStates}), if one is offered for {@code persistenceId} and the
     * journal still holds every event after it: the recovery then replays only those.
     */
    private Optional<SelectedSnapshot> warm(String persistenceId, SnapshotSelectionCriteria criteria) {
        Optional<WarmStates.Offer> taken = warm.take(persistenceId);
        if (taken.isEmpty() || log == null) {
            return Optional.empty();
        }
        WarmStates.Offer offer = taken.get();
        SnapshotMetadata metadata = SnapshotMetadata.apply(persistenceId, offer.sequenceNr(), offer.timestampMillis());
        long highest = log.highestSequenceNr(persistenceId);
        long deleted = log.deletedTo(persistenceId);
        if (!criteria.matches(metadata) || offer.sequenceNr() > highest || offer.sequenceNr() < deleted) {
            LOG.info("warm state of {} at seqNr {} not used (journal: highest seqNr {}, deleted to {}): recovering "
                    + "from the journal", persistenceId, offer.sequenceNr(), highest, deleted);
            return Optional.empty();
        }
        warm.used();
        return Optional.of(SelectedSnapshot.create(metadata, offer.state()));
    }

    @Override
    public Future<Void> doSaveAsync(SnapshotMetadata metadata, Object snapshot) {
        SnapshotFiles.Stored stored;
        try {
            String of = " of " + metadata.persistenceId() + " at seqNr " + metadata.sequenceNr() + ":";
            stored = new SnapshotFiles.Stored(Serialized.of(system, snapshot, "snapshot" + of),
                    metadata.metadata().isDefined()
                            ? Serialized.of(system, metadata.metadata().get(), "snapshot metadata" + of) : null);
        } catch (NotSerializableException e) {
            return Futures.failed(e);
        }
        return async(() -> {
            files.save(metadata.persistenceId(), metadata.sequenceNr(), metadata.timestamp(), stored);
            return null;
        });
    }

    @Override
    public Future<Void> doDeleteAsync(SnapshotMetadata metadata) {
        return async(() -> {
            for (SnapshotFiles.Key key : files.list(metadata.persistenceId())) {
                // Timestamp 0 means "any timestamp" in Pekko's delete protocol.
                if (key.sequenceNr() == metadata.sequenceNr()
                        && (metadata.timestamp() == 0 || key.timestamp() == metadata.timestamp())) {
                    files.delete(key);
                }
            }
            return null;
        });
    }

    @Override
    public Future<Void> doDeleteAsync(String persistenceId, SnapshotSelectionCriteria criteria) {
        return async(() -> {
            for (SnapshotFiles.Key key : files.list(persistenceId)) {
                if (criteria.matches(SnapshotMetadata.apply(persistenceId, key.sequenceNr(), key.timestamp()))) {
                    files.delete(key);
                }
            }
            return null;
        });
    }

    private interface Io<T> {
        T run() throws IOException;
    }

    private <T> Future<T> async(Io<T> io) {
        if (files == null) {
            return Futures.failed(openFailure);
        }
        return FutureConverters.asScala(CompletableFuture.supplyAsync(() -> {
            try {
                return io.run();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, dispatcher));
    }
}
