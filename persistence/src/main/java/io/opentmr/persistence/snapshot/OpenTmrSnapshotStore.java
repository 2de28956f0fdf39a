package io.opentmr.persistence.snapshot;

import io.opentmr.persistence.OpenTmrPersistence;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.persistence.SelectedSnapshot;
import org.apache.pekko.persistence.SnapshotMetadata;
import org.apache.pekko.persistence.SnapshotSelectionCriteria;
import org.apache.pekko.persistence.snapshot.japi.SnapshotStore;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.concurrent.ExecutionContextExecutor;
import scala.concurrent.Future;
import scala.jdk.javaapi.FutureConverters;

/**
 * The Pekko snapshot store plugin ({@code opentmr.persistence.snapshot-store}): one file per snapshot in
 * {@code opentmr.persistence.snapshot-dir}. Opening it opens the journal too, so the directory lock covers both.
 */
public final class OpenTmrSnapshotStore extends SnapshotStore {

    private static final Logger LOG = LoggerFactory.getLogger(OpenTmrSnapshotStore.class);
    /** A damaged newest snapshot falls back to older ones, but not endlessly. */
    private static final int MAX_LOAD_ATTEMPTS = 3;

    private final SnapshotFiles files;
    private final Serialization serialization;
    private final ExecutionContextExecutor dispatcher;

    public OpenTmrSnapshotStore() throws IOException {
        OpenTmrPersistence ext = OpenTmrPersistence.get(context().system());
        ext.log();
        this.files = new SnapshotFiles(ext.settings().snapshotDirectory());
        this.serialization = SerializationExtension.get(context().system());
        this.dispatcher = context().dispatcher();
    }

    @Override
    public Future<Optional<SelectedSnapshot>> doLoadAsync(String persistenceId, SnapshotSelectionCriteria criteria) {
        return async(() -> {
            int attempts = 0;
            for (SnapshotFiles.Key key : files.list(persistenceId)) {
                if (!criteria.matches(SnapshotMetadata.apply(persistenceId, key.sequenceNr(), key.timestamp()))) {
                    continue;
                }
                if (attempts++ == MAX_LOAD_ATTEMPTS) {
                    break;
                }
                try {
                    SnapshotFiles.Stored stored = files.read(key);
                    Object snapshot = serialization.deserialize(stored.payload(), stored.serializerId(),
                            stored.manifest()).get();
                    return Optional.of(SelectedSnapshot.create(
                            SnapshotMetadata.apply(persistenceId, key.sequenceNr(), key.timestamp()), snapshot));
                } catch (IOException | RuntimeException e) {
                    LOG.warn("snapshot of {} at seqNr {} unreadable, trying an older one: {}", persistenceId,
                            key.sequenceNr(), e.toString());
                }
            }
            return Optional.empty();
        });
    }

    @Override
    public Future<Void> doSaveAsync(SnapshotMetadata metadata, Object snapshot) {
        Serializer serializer = serialization.findSerializerFor(snapshot);
        SnapshotFiles.Stored stored = new SnapshotFiles.Stored(serializer.identifier(),
                Serializers.manifestFor(serializer, snapshot), serializer.toBinary(snapshot));
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
        return FutureConverters.asScala(CompletableFuture.supplyAsync(() -> {
            try {
                return io.run();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, dispatcher));
    }
}
