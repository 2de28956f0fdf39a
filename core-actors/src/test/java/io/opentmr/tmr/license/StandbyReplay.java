package io.opentmr.tmr.license;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.persistence.PersistentRepr;
import org.apache.pekko.persistence.testkit.DeleteEvents;
import org.apache.pekko.persistence.testkit.JournalOperation;
import org.apache.pekko.persistence.testkit.ProcessingPolicy;
import org.apache.pekko.persistence.testkit.ProcessingResult;
import org.apache.pekko.persistence.testkit.ProcessingSuccess$;
import org.apache.pekko.persistence.testkit.WriteEvents;

/**
 * A twin's standby as the persistence testkit's journal policy: it sees the licenses' writes and deletions in the
 * journal's order (the order the standby's log copies them in), and at each deletion compares the handles a standby
 * replaying what is left would have (no snapshot: it has none) with those of every event written so far. Every write
 * succeeds; the events' sequence numbers are their places in the order written.
 */
final class StandbyReplay implements ProcessingPolicy<JournalOperation> {

    private static final long HOLD_SECONDS = 20;

    /** A first write held until {@code release} is counted down; {@code written} is once it arrived. */
    record Held(CountDownLatch written, CountDownLatch release) {
    }

    private static final class Watched {
        final List<TmrLicenseEvent> written = new ArrayList<>();
        final List<String> lost = new ArrayList<>();
        Held held;
        int deletions;
    }

    private final Map<String, Watched> watched = new HashMap<>();

    synchronized void watch(String persistenceId) {
        watched.put(persistenceId, new Watched());
    }

    /** Watches {@code persistenceId} and holds its first write (bounded) until the test releases it. */
    synchronized Held watchHoldingFirstWrite(String persistenceId) {
        Watched w = new Watched();
        w.held = new Held(new CountDownLatch(1), new CountDownLatch(1));
        watched.put(persistenceId, w);
        return w.held;
    }

    synchronized int deletions(String persistenceId) {
        return watched.get(persistenceId).deletions;
    }

    /** The size (seats) of each {@link TmrLicenseEvent.Checkpoint} written, in the order written. */
    synchronized List<Integer> checkpointSizes(String persistenceId) {
        List<Integer> sizes = new ArrayList<>();
        for (TmrLicenseEvent event : watched.get(persistenceId).written) {
            if (event instanceof TmrLicenseEvent.Checkpoint checkpoint) {
                sizes.add(checkpoint.table().seats().size());
            }
        }
        return sizes;
    }

    /** Events written so far. */
    synchronized int written(String persistenceId) {
        return watched.get(persistenceId).written.size();
    }

    /** What a standby replaying the journal at each deletion would have lost. */
    synchronized List<String> lost(String persistenceId) {
        return List.copyOf(watched.get(persistenceId).lost);
    }

    @Override
    public ProcessingResult tryProcess(String persistenceId, JournalOperation operation) {
        Held held;
        synchronized (this) {
            Watched w = watched.get(persistenceId);
            held = w != null && operation instanceof WriteEvents && w.written.isEmpty() ? w.held : null;
        }
        if (held != null) {
            held.written().countDown();
            try {
                if (!held.release().await(HOLD_SECONDS, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("the first write was held for " + HOLD_SECONDS + " s");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        seen(persistenceId, operation);
        return ProcessingSuccess$.MODULE$;
    }

    private synchronized void seen(String persistenceId, JournalOperation operation) {
        Watched w = watched.get(persistenceId);
        if (w == null) {
            return;
        }
        if (operation instanceof WriteEvents write) {
            for (Object payload : write.getBatch()) {
                w.written.add((TmrLicenseEvent) (payload instanceof PersistentRepr repr ? repr.payload() : payload));
            }
        } else if (operation instanceof DeleteEvents delete) {
            w.deletions++;
            Set<Long> all = replay(w.written, 0);
            Set<Long> standby = replay(w.written, delete.getToSeqNumber());
            if (!all.equals(standby)) {
                List<Integer> checkpoints = new ArrayList<>();
                for (int i = 0; i < w.written.size(); i++) {
                    if (w.written.get(i) instanceof TmrLicenseEvent.Checkpoint) {
                        checkpoints.add(i + 1);
                    }
                }
                w.lost.add("events up to " + delete.getToSeqNumber() + " deleted with " + w.written.size()
                        + " written (checkpoints at " + checkpoints + "): a standby replays " + standby + " instead of "
                        + all);
            }
        }
    }

    /** The handles the events above {@code deletedTo} make from an empty table. */
    private static Set<Long> replay(List<TmrLicenseEvent> written, long deletedTo) {
        SeatTable table = SeatTable.empty();
        for (int i = (int) Math.min(deletedTo, written.size()); i < written.size(); i++) {
            table = SeatTable.apply(table, written.get(i));
        }
        Set<Long> handles = new TreeSet<>();
        table.all().forEach(seat -> handles.add(seat.handleId()));
        return handles;
    }
}
