package io.opentmr.tmr.replay;

import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.Quorums;
import io.opentmr.tmr.VirtualContainer;
import io.opentmr.tmr.license.Seat;
import io.opentmr.tmr.license.SeatTable;
import io.opentmr.tmr.license.TmrLicense;
import io.opentmr.tmr.license.TmrLicenseEvent;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * A TMR node's virtual containers, licenses and handles rebuilt from what its journal holds, by the node's own rules:
 * each persistence id's snapshot and events go through the handlers its actor recovers with
 * ({@link VirtualContainer.State#apply}; {@link SeatTable#fromSnapshot}, the license's snapshot adapter, and
 * {@link SeatTable#apply}, its event handler). So a replay shows what the node recovers from the same journal, and
 * no second copy of the rules can drift from the node's.
 *
 * <p>The node reads two kinds of persistence ids: {@code tmr-container|SERIAL} and {@code tmr-license|FIRM-PRODUCT-TMRID}.
 * Others ({@link #notRead}) are left alone, as the node leaves them.
 */
public final class NodeReplay {

    /**
     * One persistence id as recovery hands it to its actor: the snapshot it starts from (null: the empty state) and the
     * events after it, decoded, and where that stands in its journal.
     */
    public record Recovered(String persistenceId, Object snapshot, List<Object> events, JournalView journal) {
        public Recovered {
            events = List.copyOf(events);
        }
    }

    private static final Comparator<Serial> SERIALS = Comparator.comparingInt(Serial::mask)
            .thenComparingLong(Serial::number);

    private final boolean everyId;
    private final Map<Serial, VirtualContainer.State> containers = new TreeMap<>(SERIALS);
    private final Map<Serial, JournalView> containerJournals = new TreeMap<>(SERIALS);
    private final Map<LicenseKey, SeatTable> licenses = new TreeMap<>(Quorums.ORDER);
    private final Map<LicenseKey, JournalView> licenseJournals = new TreeMap<>(Quorums.ORDER);

    /**
     * @param everyId whether every id of the journal is added (not one chosen): a license a container knows but whose
     *                journal holds nothing is then shown, with no seats, as the node recovers it
     */
    public NodeReplay(boolean everyId) {
        this.everyId = everyId;
    }

    /** Whether the node recovers this persistence id: a virtual container's or a TMR license's. */
    public static boolean reads(String persistenceId) {
        return VirtualContainer.serialOf(persistenceId).isPresent() || TmrLicense.keyOf(persistenceId).isPresent();
    }

    /** Why the node does not read this persistence id, in words; empty if it does. */
    public static Optional<String> notRead(String persistenceId) {
        if (reads(persistenceId)) {
            return Optional.empty();
        }
        if (persistenceId.startsWith("tmr-handle|")) {
            return Optional.of("a client handle of the first node (records of version 1): a handle is part of its "
                    + "license's seats since, and the node no longer reads these");
        }
        if (persistenceId.startsWith("container|")) {
            return Optional.of("a backend's container, not a TMR node's record");
        }
        return Optional.of("not a TMR node's record");
    }

    /**
     * Applies what recovery hands one persistence id.
     *
     * @throws IllegalArgumentException if the node does not read the id, or a snapshot or event is not of its kind
     */
    public void add(Recovered recovered) {
        String pid = recovered.persistenceId();
        Optional<Serial> serial = VirtualContainer.serialOf(pid);
        Optional<LicenseKey> key = TmrLicense.keyOf(pid);
        if (serial.isEmpty() && key.isEmpty()) {
            throw new IllegalArgumentException("the node does not read " + pid + ": " + notRead(pid).orElseThrow());
        }
        if (recovered.snapshot() == null && recovered.events().isEmpty()) {
            // Nothing by then (a replay up to a time before its first event): it did not exist yet. A license a
            // container knew by then is shown all the same, with no seats, as the node recovers it.
            key.ifPresent(k -> licenseJournals.put(k, recovered.journal()));
            return;
        }
        if (serial.isPresent()) {
            VirtualContainer.State state = VirtualContainer.State.empty();
            if (recovered.snapshot() != null) {
                state = kind(VirtualContainer.State.class, recovered.snapshot(), pid, "snapshot");
            }
            for (Object event : recovered.events()) {
                state = state.apply(kind(VirtualContainer.Event.class, event, pid, "event"));
            }
            containers.put(serial.get(), state);
            containerJournals.put(serial.get(), recovered.journal());
            return;
        }
        SeatTable table = SeatTable.empty();
        if (recovered.snapshot() != null) {
            table = SeatTable.fromSnapshot(kind(TmrLicenseEvent.Snapshot.class, recovered.snapshot(), pid,
                    "snapshot"));
        }
        for (Object event : recovered.events()) {
            table = SeatTable.apply(table, kind(TmrLicenseEvent.class, event, pid, "event"));
        }
        licenses.put(key.get(), table);
        licenseJournals.put(key.get(), recovered.journal());
    }

    private static <T> T kind(Class<T> expected, Object value, String pid, String what) {
        if (!expected.isInstance(value)) {
            throw new IllegalArgumentException("a " + what + " of " + pid + " is a " + value.getClass().getName()
                    + ", not a " + expected.getName());
        }
        return expected.cast(value);
    }

    /** The virtual containers, by serial. */
    public List<ContainerView> containers() {
        List<ContainerView> views = new ArrayList<>();
        containers.forEach((serial, state) -> views.add(new ContainerView(serial.toString(), state.cmActId(),
                state.licenses().stream().map(LicenseKey::toString).toList(), containerJournals.get(serial))));
        return views;
    }

    /** The licenses in LIST order: every one replayed, and (replaying every id) every one a container knows. */
    public List<LicenseView> licenses() {
        Map<LicenseKey, SeatTable> shown = new TreeMap<>(Quorums.ORDER);
        shown.putAll(licenses);
        if (everyId) {
            // The container spawns a license for each key it knows, and each recovers: with no journal, no seats.
            containers.values().forEach(state -> state.licenses().forEach(k -> shown.putIfAbsent(k, SeatTable.empty())));
        }
        List<LicenseView> views = new ArrayList<>();
        shown.forEach((key, table) -> {
            long exclusive = table.exclusiveHandle();
            // Without EXCLUSIVE the seats in use do not depend on the total (what the argument is for).
            Long used = exclusive != 0 ? null : table.seatsInUse(0);
            JournalView journal = licenseJournals.getOrDefault(key,
                    JournalView.none(TmrLicense.persistenceId(key).id()));
            views.add(new LicenseView(key.toString(), key.firmCode(), key.productCode(), key.tmrId(),
                    containerOf(key).map(Serial::toString).orElse(null), new LicenseView.Seats(used, null),
                    table.handles(), null, null, exclusive == 0 ? null : Long.toUnsignedString(exclusive), journal));
        });
        return views;
    }

    /** Every handle, by license (LIST order), then by when it was granted. */
    public List<HandleView> handles() {
        List<HandleView> views = new ArrayList<>();
        licenses.forEach((key, table) -> table.all().stream()
                .sorted(Comparator.comparingLong(Seat::grantedAtMillis).thenComparing(Seat::handleId,
                        Long::compareUnsigned))
                .forEach(seat -> views.add(view(key, seat))));
        return views;
    }

    /** What the reader should know about the state shown, in words. */
    public List<String> notices() {
        List<String> notices = new ArrayList<>();
        List<String> homeless = licenses.keySet().stream().filter(k -> containerOf(k).isEmpty())
                .map(LicenseKey::toString).toList();
        if (!homeless.isEmpty() && containers.isEmpty() && everyId) {
            notices.add("the journal holds no virtual container: a node older than the container's events wrote it "
                    + "(that node learned its licenses from the backends' inventories only); license(s) "
                    + String.join(", ", homeless) + " are shown without one");
        } else if (!homeless.isEmpty() && everyId) {
            notices.add("no virtual container in the journal knows license(s) " + String.join(", ", homeless)
                    + " (the node recovers only the licenses its container knows, and learns others from the "
                    + "backends' inventories)");
        }
        return notices;
    }

    private Optional<Serial> containerOf(LicenseKey key) {
        return containers.entrySet().stream().filter(e -> e.getValue().licenses().contains(key))
                .map(Map.Entry::getKey).findFirst();
    }

    static HandleView view(LicenseKey key, Seat seat) {
        return new HandleView(Long.toUnsignedString(seat.handleId()), key.toString(), seat.mode().name(),
                seat.featureBits(), new HandleView.Owner(seat.host(), seat.station(), seat.user(), seat.pid()),
                Long.toString(seat.sessionId()), seat.epoch(), Instant.ofEpochMilli(seat.grantedAtMillis()).toString(),
                seat.requestKey() == null ? null : seat.requestId(), null);
    }
}
