package io.opentmr.persistence;

import io.opentmr.persistence.log.DirectoryLock;
import io.opentmr.persistence.log.LogOptions;
import io.opentmr.persistence.log.SegmentedLog;
import io.opentmr.persistence.snapshot.SnapshotFiles;
import io.opentmr.persistence.snapshot.WarmStates;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;
import java.util.function.LongSupplier;
import org.apache.pekko.actor.AbstractExtensionId;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.actor.ClassicActorSystemProvider;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.Extension;
import org.apache.pekko.actor.ExtensionIdProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Owns the one open log of an actor system: the journal, the snapshot store's directory and the read journal all
 * use it, and it is closed (and its directory lock released) when the actor system terminates.
 *
 * <p>The epoch stamped on each record comes from outside: the active lease of the twin cluster (DESIGN §6) sets it
 * with {@link #setEpochSupplier}; until then it is 0.
 */
public final class OpenTmrPersistence implements Extension {

    private static final Logger LOG = LoggerFactory.getLogger(OpenTmrPersistence.class);

    /** The extension id. */
    public static final Id ID = new Id();

    private final ExtendedActorSystem system;
    private final PersistenceSettings settings;
    private volatile LongSupplier epoch = () -> 0L;
    private volatile LongSupplier replicatedTo = LogOptions.NO_TWIN;
    private SegmentedLog log;
    /** The snapshot directory's lock, taken with the log's: one owner for both, wherever the snapshots live. */
    private DirectoryLock snapshotLock;
    /** Why the open failed; kept so later calls neither repeat a full open (a scan of every segment) nor race it. */
    private IOException openFailure;
    private boolean terminated;
    private final WarmStates warmStates = new WarmStates();

    private OpenTmrPersistence(ExtendedActorSystem system) {
        this.system = system;
        this.settings = PersistenceSettings.fromConfig(system.settings().config());
        system.registerOnTermination(this::closeLog);
    }

    public static OpenTmrPersistence get(ActorSystem system) {
        return ID.get(system);
    }

    public static OpenTmrPersistence get(ClassicActorSystemProvider system) {
        return ID.get(system);
    }

    public PersistenceSettings settings() {
        return settings;
    }

    /**
     * Sets where compaction reads the position up to which the twin has the log (exclusive): nothing at or above it
     * is compacted or removed. Until replication sets it, every durable record counts as replicated.
     */
    public void setReplicatedPositionSupplier(LongSupplier supplier) {
        this.replicatedTo = Objects.requireNonNull(supplier, "supplier");
    }

    /** States a standby kept current, offered to the recoveries when it takes over ({@link WarmStates}). */
    public WarmStates warmStates() {
        return warmStates;
    }

    /** Sets where each group commit reads the writer's epoch from. */
    public void setEpochSupplier(LongSupplier supplier) {
        this.epoch = Objects.requireNonNull(supplier, "supplier");
    }

    /**
     * The log, opened (and the directory locked) on first use. A failed open is final for this actor system: the
     * first call throws its cause (locked, damaged), later calls an IOException naming it, without trying again;
     * restart the actor system once the cause is fixed.
     */
    public synchronized SegmentedLog log() throws IOException {
        if (terminated) {
            throw new IOException("actor system " + system.name() + " terminated; journal closed");
        }
        if (openFailure != null) {
            throw new IOException("journal " + settings.directory() + " failed to open for actor system "
                    + system.name() + " and is not retried; restart the actor system once this is fixed: "
                    + openFailure.getMessage(), openFailure);
        }
        if (log == null) {
            try {
                SegmentedLog opened = SegmentedLog.open(settings.logOptions(() -> epoch.getAsLong(),
                        () -> replicatedTo.getAsLong()));
                try {
                    snapshotLock = lockSnapshots(opened);
                } catch (IOException | RuntimeException e) {
                    closeAfterFailedOpen(opened, e);
                    throw e;
                }
                log = opened;
            } catch (IOException e) {
                openFailure = e;
                throw e;
            } catch (RuntimeException e) {
                openFailure = new IOException(e.toString(), e);
                throw e;
            }
            LOG.info("journal {} opened for actor system {}", settings.directory(), system.name());
        }
        return log;
    }

    /**
     * Sets every snapshot aside ({@link SnapshotFiles#setAside}): before the log is cut back to a replication
     * leader's, whose history the snapshots may not stand for. Logged with {@code why}.
     */
    public void setAsideSnapshots(String why) throws IOException {
        Path dir = settings.snapshotDirectory();
        if (!Files.isDirectory(dir)) {
            return;
        }
        int moved = new SnapshotFiles(dir).setAside(System.currentTimeMillis());
        if (moved > 0) {
            LOG.warn("snapshot directory {}: {} snapshot(s) set aside into a set-aside-* subdirectory, no longer "
                    + "used for recovery: {}", dir, moved, why);
        }
    }

    /** Locks the snapshot directory unless it is the journal directory itself (locked with the log). */
    private DirectoryLock lockSnapshots(SegmentedLog opened) throws IOException {
        Path snapshots = settings.snapshotDirectory();
        Files.createDirectories(snapshots);
        if (snapshots.toRealPath().equals(opened.directory().toRealPath())) {
            return null;
        }
        return DirectoryLock.acquire(snapshots, "snapshot");
    }

    private static void closeAfterFailedOpen(SegmentedLog opened, Exception cause) {
        try {
            opened.close();
        } catch (IOException e) {
            cause.addSuppressed(e);
        }
    }

    private synchronized void closeLog() {
        terminated = true;
        if (log != null) {
            try {
                log.close();
            } catch (IOException e) {
                LOG.error("journal {} of actor system {}: close failed: {}", settings.directory(), system.name(),
                        e.toString(), e);
            }
            log = null;
        }
        if (snapshotLock != null) {
            try {
                snapshotLock.close();
            } catch (IOException e) {
                LOG.error("snapshot directory {} of actor system {}: unlock failed: {}", settings.snapshotDirectory(),
                        system.name(), e.toString(), e);
            }
            snapshotLock = null;
        }
    }

    /** Extension id; Pekko creates one instance per actor system. */
    public static final class Id extends AbstractExtensionId<OpenTmrPersistence> implements ExtensionIdProvider {
        @Override
        public OpenTmrPersistence createExtension(ExtendedActorSystem system) {
            return new OpenTmrPersistence(system);
        }

        @Override
        public Id lookup() {
            return ID;
        }
    }
}
