package io.opentmr.launcher;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.persistence.tools.Decoder;
import io.opentmr.persistence.tools.JournalHistory;
import io.opentmr.persistence.tools.JournalReadException;
import io.opentmr.persistence.tools.Recovery;
import io.opentmr.tmr.replay.ContainerView;
import io.opentmr.tmr.replay.HandleView;
import io.opentmr.tmr.replay.JournalView;
import io.opentmr.tmr.replay.LicenseView;
import io.opentmr.tmr.replay.NodeReplay;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.actor.ExtendedActorSystem;

/**
 * {@code tmr journal replay}: reads a TMR node's journal with {@code persistence}'s read-only tools (no lock, no
 * write), decodes its records with the node's serializers (a bare actor system: no journal plugin, no network) and
 * rebuilds the node's state with {@link NodeReplay}, the node's own event handlers. The result maps one to one to the
 * node's views of its containers, licenses and handles (docs/journal-replay.md).
 */
final class NodeJournalReplay {

    /** A persistence id the replay left alone, as the node does. */
    record Skipped(String persistenceId, long records, String reason) {
    }

    /** What a replay rebuilt, and what the reader should know about it. */
    record Result(String journalDir, String snapshotDir, String persistenceId, String at, String asOf,
                  List<ContainerView> containers, List<LicenseView> licenses, List<HandleView> handles,
                  List<Skipped> skipped, List<String> notices) {

        /** The JSON document: these fields, in this order. */
        Map<String, Object> json() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("journalDir", journalDir);
            m.put("snapshotDir", snapshotDir);
            m.put("persistenceId", persistenceId);
            m.put("at", at);
            m.put("asOf", asOf);
            m.put("containers", containers);
            m.put("licenses", licenses);
            m.put("handles", handles);
            m.put("skipped", skipped);
            m.put("notices", notices);
            return m;
        }
    }

    private NodeJournalReplay() {
    }

    /**
     * Replays the journal in {@code dir} (snapshots in {@code snapshotDir}) up to {@code at} (null: to its end), every
     * id the node reads or only {@code persistenceId}.
     *
     * @throws JournalReadException for a directory that is not a journal, damage before its tail, a record that cannot
     *                              be read, an id the journal does not hold or the node does not read, a backend's
     *                              journal, or a time before the journal's first event
     */
    static Result replay(Path dir, Path snapshotDir, Instant at, String persistenceId) throws IOException {
        Predicate<String> selected = persistenceId == null ? NodeReplay::reads : persistenceId::equals;
        JournalHistory history = JournalHistory.read(dir, snapshotDir, selected);
        List<JournalHistory.IdSummary> ids = history.persistenceIds();
        if (persistenceId != null) {
            checkReadable(dir, persistenceId, history, ids);
        }
        List<JournalHistory.IdSummary> replayed = ids.stream().filter(JournalHistory.IdSummary::selected).toList();
        List<Skipped> skipped = new ArrayList<>();
        if (persistenceId == null) {
            for (JournalHistory.IdSummary id : ids) {
                NodeReplay.notRead(id.persistenceId()).ifPresent(why -> skipped.add(new Skipped(id.persistenceId(),
                        id.records(), why)));
            }
            Optional<String> backend = ids.stream().map(JournalHistory.IdSummary::persistenceId)
                    .filter(pid -> pid.startsWith("container|")).findFirst();
            if (replayed.isEmpty() && backend.isPresent()) {
                throw new JournalReadException(dir + " is a backend's journal (persistence id " + backend.get()
                        + "): tmr journal replay rebuilds a TMR node's journal; tmr journal dump prints a backend's "
                        + "records");
            }
        }

        if (at != null) {
            checkKnown(history, at);
        }
        List<String> notices = new ArrayList<>();
        history.tornTails().forEach(tail -> notices.add(tail + ": a write in progress beside the running node, or "
                + "the last write of a crash; not replayed (the node's recovery drops it too)"));
        NodeReplay replay = new NodeReplay(persistenceId == null);
        long asOf = 0;
        if (!replayed.isEmpty()) {
            ActorSystem system = ActorSystem.create("tmr-journal-replay", decodingConfig());
            try {
                Decoder decoder = Decoder.of((ExtendedActorSystem) system);
                for (JournalHistory.IdSummary id : replayed) {
                    Recovery recovery = history.recover(id.persistenceId(), at, decoder);
                    notices.addAll(recovery.notes());
                    asOf = Math.max(asOf, recovery.updatedAt());
                    try {
                        replay.add(new NodeReplay.Recovered(id.persistenceId(),
                                recovery.snapshot() == null ? null : recovery.snapshot().value(),
                                recovery.events().stream().map(Recovery.Event::payload).toList(), view(recovery)));
                    } catch (IllegalArgumentException e) {
                        throw new JournalReadException("cannot replay " + id.persistenceId() + ": " + e.getMessage(),
                                e);
                    }
                }
            } finally {
                system.terminate();
                try {
                    system.getWhenTerminated().toCompletableFuture().get(10, TimeUnit.SECONDS);
                } catch (Exception e) {
                    // Only its threads are left; they are daemons.
                }
            }
        }
        notices.addAll(replay.notices());
        if (ids.isEmpty()) {
            notices.add("the journal holds no records yet");
        }
        return new Result(dir.toAbsolutePath().toString(), snapshotDir.toAbsolutePath().toString(), persistenceId,
                at == null ? null : at.toString(), asOf == 0 ? null : Instant.ofEpochMilli(asOf).toString(),
                replay.containers(), replay.licenses(), replay.handles(), skipped, notices);
    }

    /**
     * A time before everything the journal keeps (its first event kept and its oldest snapshot) is refused: nothing was
     * held then, or (events were deleted) nothing is known of it.
     */
    private static void checkKnown(JournalHistory history, Instant at) throws IOException {
        Optional<JournalHistory.FirstEvent> first = history.firstEvent();
        OptionalLong snapshot = history.oldestSnapshot();
        long earliest = Math.min(first.map(JournalHistory.FirstEvent::timestamp).orElse(Long.MAX_VALUE),
                snapshot.orElse(Long.MAX_VALUE));
        if (earliest == Long.MAX_VALUE || at.toEpochMilli() >= earliest) {
            return;
        }
        String firstEvent = first.map(f -> Instant.ofEpochMilli(f.timestamp()) + ", seqNr " + f.sequenceNr() + " of "
                + f.persistenceId()).orElse("none kept");
        if (!history.deletedAny()) {
            throw new JournalReadException("--at " + at + " is before the first event of the journal (" + firstEvent
                    + "): nothing was held then");
        }
        throw new JournalReadException("--at " + at + " is before the first event the journal keeps (" + firstEvent
                + ") and its oldest snapshot (" + (snapshot.isEmpty() ? "none"
                : Instant.ofEpochMilli(snapshot.getAsLong())) + "); older events were deleted when snapshots were "
                + "taken, so nothing is known of that time");
    }

    private static void checkReadable(Path dir, String persistenceId, JournalHistory history,
                                      List<JournalHistory.IdSummary> ids) throws JournalReadException {
        Optional<String> notRead = NodeReplay.notRead(persistenceId);
        if (notRead.isPresent()) {
            throw new JournalReadException("the node does not read " + persistenceId + ": " + notRead.get()
                    + "; name a tmr-container|SERIAL or tmr-license|FIRM-PRODUCT-TMRID id");
        }
        if (history.persistenceId(persistenceId).isEmpty()) {
            List<String> nodeIds = ids.stream().map(JournalHistory.IdSummary::persistenceId)
                    .filter(NodeReplay::reads).toList();
            throw new JournalReadException(dir + " holds no records of " + persistenceId + "; "
                    + (nodeIds.isEmpty() ? "it holds none of a TMR node"
                    : "its TMR node ids: " + String.join(", ", nodeIds.subList(0, Math.min(20, nodeIds.size())))
                    + (nodeIds.size() > 20 ? ", ..." : "")));
        }
    }

    /** The serializers and record versions of the node (reference.conf), and nothing else: no plugin, no remoting. */
    private static Config decodingConfig() {
        return ConfigFactory.parseMap(Map.of(
                        "pekko.loglevel", "WARNING",
                        "pekko.stdout-loglevel", "OFF",
                        "pekko.log-dead-letters", "off",
                        "pekko.actor.provider", "local"))
                .withFallback(ConfigFactory.load());
    }

    private static JournalView view(Recovery r) {
        String start = switch (r.start()) {
            case EMPTY -> JournalView.EMPTY;
            case SNAPSHOT -> JournalView.SNAPSHOT;
            case OLDEST_SNAPSHOT -> JournalView.OLDEST_SNAPSHOT;
        };
        JournalView.Snapshot snapshot = r.snapshot() == null ? null : new JournalView.Snapshot(
                r.snapshot().sequenceNr(), Instant.ofEpochMilli(r.snapshot().timestamp()).toString());
        return new JournalView(r.persistenceId(), r.sequenceNr(), r.highestSequenceNr(), start, snapshot,
                r.events().size(), r.deletedTo(), r.isEmpty() ? null : Instant.ofEpochMilli(r.updatedAt()).toString());
    }
}
