package io.opentmr.tmr.tracking;

import com.fasterxml.jackson.databind.JsonNode;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Serial;
import io.opentmr.tracking.TrackingFile;
import io.opentmr.tracking.TrackingFiles;
import io.opentmr.tracking.TrackingLine;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The TMR node's tracking log: {@code DATA_DIR/tracking.log}, JSON lines in the backend's shape
 * ({@link TrackingLine}: {@code time}, {@code event}, {@code container} = the virtual serial) extended with the
 * license ({@code firm}, {@code product}, {@code tmrId}, {@code item}), the {@code handle}, its {@code owner}
 * (host, user, pid, session, and the client's {@code address}) and the backends involved. Events: {@code access}
 * (with the backends that acknowledged the allocation when the seat was granted), {@code release} and
 * {@code reclaim} (with the reason and the backends FREE went to), {@code denial} (with the error number), and
 * {@code lease} (gained or lost, with its epoch: a fail-over shows as the new active node's gain).
 *
 * <p>Lines are queued to the file's own thread ({@link TrackingFile}); the reply to the client does not wait
 * for the disk. A seat's grant and release are journaled before their line is queued, so a node that stopped
 * (or was killed) in between has them in its journal but maybe not in its file: when a license recovers it
 * hands its journaled events to {@link #recovery}, which looks them up in the files of their days and writes
 * those missing, marked {@code "recovered":true} and with the time of the journaled event. Denials and lease
 * lines are not journaled: one still queued when the process dies is lost.
 */
public final class NodeTrackingLog implements AutoCloseable {

    /** Rotated days kept, as the backend's log keeps them. */
    public static final int KEEP_DAYS = 90;
    private static final Logger LOG = LoggerFactory.getLogger(NodeTrackingLog.class);
    private static final NodeTrackingLog NONE = new NodeTrackingLog(null, null, List.of(), "", ZoneId.of("UTC"),
            Duration.ZERO);

    /** Who holds or asked for a handle: the client's address and the host, user and process it named. */
    public record Owner(String address, String host, String user, long pid, long session) {
    }

    private final TrackingFile file;
    private final String container;
    private final List<String> backends;
    private final String node;
    private final ZoneId zone;
    private final ConcurrentLinkedQueue<List<Line>> recoveries = new ConcurrentLinkedQueue<>();
    private final ScheduledExecutorService recoverer;
    /** How long after a recovery is submitted its lines are looked for ({@link Recovery#submit}). */
    private final Duration recoveryDelay;
    /** Another container's lines into the file of the node's log ({@link #forContainer}): closes nothing. */
    private final boolean view;

    private NodeTrackingLog(TrackingFile file, Serial container, List<String> backends, String node, ZoneId zone,
                            Duration recoveryDelay) {
        this(file, container, backends, node, zone, file == null ? null
                : Executors.newSingleThreadScheduledExecutor(runnable -> {
                    Thread thread = new Thread(runnable, "opentmr-tracking-recovery");
                    thread.setDaemon(true);
                    return thread;
                }), recoveryDelay, false);
    }

    private NodeTrackingLog(TrackingFile file, Serial container, List<String> backends, String node, ZoneId zone,
                            ScheduledExecutorService recoverer, Duration recoveryDelay, boolean view) {
        this.file = file;
        this.container = container == null ? "" : container.toString();
        this.backends = List.copyOf(backends);
        this.node = node;
        this.zone = zone;
        this.recoverer = recoverer;
        this.recoveryDelay = recoveryDelay;
        this.view = view;
    }

    /**
     * The lines of another virtual container of the node (its {@code container} field is {@code serial}), into the
     * same file; closing it closes nothing (the node's own log closes the file).
     */
    public NodeTrackingLog forContainer(Serial serial) {
        if (file == null) {
            return this;
        }
        return new NodeTrackingLog(file, serial, backends, node, zone, recoverer, recoveryDelay, true);
    }

    /**
     * Opens the node's log in {@code dataDir}.
     *
     * @param backends the backends' names (HOST:PORT) by index, as the lines name them
     * @param zone     the time zone whose midnight rotates the file
     * @throws IOException when the file cannot be written
     */
    public static NodeTrackingLog open(Path dataDir, Serial container, List<String> backends, String node,
                                       Clock clock, ZoneId zone) throws IOException {
        return open(dataDir, container, backends, node, clock, zone, Duration.ZERO);
    }

    /**
     * @param recoveryDelay how long after a license's recovery the lines its files lack are looked for: the search
     *                      reads the day's files, CPU a take-over needs for its clients first
     */
    public static NodeTrackingLog open(Path dataDir, Serial container, List<String> backends, String node,
                                       Clock clock, ZoneId zone, Duration recoveryDelay) throws IOException {
        return new NodeTrackingLog(new TrackingFile(dataDir, clock, zone, KEEP_DAYS), container, backends, node, zone,
                recoveryDelay);
    }

    /** A log that writes nothing (tests of a single actor). */
    public static NodeTrackingLog none() {
        return NONE;
    }

    /** The file written now, or empty for {@link #none()}. */
    public Optional<Path> file() {
        return file == null ? Optional.empty() : Optional.of(file.file());
    }

    // --- live events -----------------------------------------------------------------------------------

    /** A seat granted: journaled, and acknowledged by the backends in {@code acknowledged}. */
    public void access(LicenseKey key, long handleId, AccessMode mode, Owner owner, BitSet acknowledged, long atMillis) {
        if (file != null) {
            file.append(accessJson(key, handleId, mode, owner, acknowledged, atMillis, false));
        }
    }

    /**
     * A seat's end, journaled: {@code event} is {@code release} or {@code reclaim}; {@code freedOn}, the backends
     * FREE was sent to.
     */
    public void ended(LicenseKey key, long handleId, String event, String reason, Owner owner, BitSet freedOn,
                      long atMillis) {
        if (file != null) {
            file.append(endJson(key, handleId, event, reason, owner, freedOn, atMillis, false));
        }
    }

    /**
     * A refused request. {@code key} is null when no license decided (its TMR-Id is unknown); {@code handleId} 0
     * when the refusal concerns no handle.
     */
    public void denial(LicenseKey key, long firmCode, long productCode, int error, String text, String request,
                       Owner owner, long atMillis) {
        if (file == null) {
            return;
        }
        Map<String, Object> fields = new LinkedHashMap<>();
        if (key != null) {
            license(fields, key);
        } else if (firmCode != 0 || productCode != 0) {
            fields.put("firm", firmCode);
            fields.put("product", productCode);
            fields.put("item", firmCode + ":" + productCode);
        }
        fields.put("error", error);
        fields.put("text", text);
        fields.put("request", request);
        fields.put("owner", owner(owner));
        file.append(TrackingLine.of(Instant.ofEpochMilli(atMillis), "denial", container, fields));
    }

    /** The node gained ({@code gained}) or lost the active lease of {@code epoch}. */
    public void lease(boolean gained, long epoch, long atMillis) {
        if (file == null) {
            return;
        }
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("state", gained ? "gained" : "lost");
        fields.put("epoch", epoch);
        fields.put("node", node);
        file.append(TrackingLine.of(Instant.ofEpochMilli(atMillis), "lease", container, fields));
    }

    // --- after a restart -------------------------------------------------------------------------------

    /** The journaled events of one license, collected while it recovers; {@link #submit} hands them over. */
    public final class Recovery {
        private final LicenseKey key;
        private final List<Line> lines = new ArrayList<>();

        private Recovery(LicenseKey key) {
            this.key = key;
        }

        /** A seat the journal holds as granted at {@code atMillis}. */
        public void access(long handleId, AccessMode mode, Owner owner, long atMillis) {
            // Written as JSON only if the files lack it, in the background: a take-over of 100 000 handles does
            // not spend its time on the lines a file already has.
            lines.add(new Line(key("access", handleId), atMillis,
                    () -> accessJson(key, handleId, mode, owner, null, atMillis, true)));
        }

        /** A journaled end of a seat; {@code owner} null when the journal no longer holds its grant. */
        public void ended(long handleId, String event, String reason, Owner owner, long atMillis) {
            lines.add(new Line(key(event, handleId), atMillis,
                    () -> endJson(key, handleId, event, reason, owner, null, atMillis, true)));
        }

        /**
         * Writes, in the background, the lines the files lack. Lines of days older than the oldest file are taken
         * as written and rotated away.
         */
        public void submit() {
            if (file == null || lines.isEmpty()) {
                return;
            }
            recoveries.add(List.copyOf(lines));
            // Licenses recover together: the first run takes every recovery queued by then, the others find none.
            recoverer.schedule(NodeTrackingLog.this::recoverQueued, recoveryDelay.toNanos(), TimeUnit.NANOSECONDS);
        }
    }

    public Recovery recovery(LicenseKey key) {
        return new Recovery(key);
    }

    /** All recoveries queued so far, with one pass over the files: licenses recover together at start. */
    private void recoverQueued() {
        Map<String, Line> wanted = new HashMap<>();
        for (List<Line> batch = recoveries.poll(); batch != null; batch = recoveries.poll()) {
            batch.forEach(line -> wanted.putIfAbsent(line.key, line));
        }
        if (wanted.isEmpty()) {
            return;
        }
        try {
            // Lines queued before now are in the file first, or they would be taken for missing ones.
            file.written().get(30, TimeUnit.SECONDS);
            List<Path> files = TrackingFiles.inDirectory(file.file().getParent());
            LocalDate earliest = wanted.values().stream().map(l -> day(l.atMillis)).min(Comparator.naturalOrder())
                    .orElseThrow();
            Optional<LocalDate> covered = firstDay(files);
            if (covered.isPresent()) {
                // Older than anything the files still hold: written once, and rotated away since.
                wanted.values().removeIf(line -> day(line.atMillis).isBefore(covered.get()));
            }
            for (Path candidate : files) {
                Optional<LocalDate> fileDay = TrackingFiles.dayOf(candidate);
                if (fileDay.isPresent() && fileDay.get().isBefore(earliest) || wanted.isEmpty()) {
                    continue;
                }
                scan(candidate, wanted);
            }
            List<Line> missing = new ArrayList<>(wanted.values());
            missing.sort(Comparator.comparingLong((Line l) -> l.atMillis));
            missing.forEach(line -> file.append(line.json.get()));
            if (!missing.isEmpty()) {
                LOG.info("Tracking log: {} line(s) of journaled events written after a restart (they were missing)",
                        missing.size());
            }
        } catch (Exception e) {
            LOG.error("Tracking log: the lines of journaled events could not be checked after a restart; {} may lack "
                    + "some: {}", file.file(), e.toString());
        }
    }

    /** The day of the first line of the oldest file: the files say nothing about earlier days. */
    private Optional<LocalDate> firstDay(List<Path> files) throws IOException {
        for (Path candidate : files) {
            try (BufferedReader reader = TrackingFiles.open(candidate)) {
                for (String text = reader.readLine(); text != null; text = reader.readLine()) {
                    try {
                        JsonNode line = TrackingLine.json().readTree(text);
                        if (line != null && line.hasNonNull("time")) {
                            return Optional.of(day(Instant.parse(line.get("time").asText()).toEpochMilli()));
                        }
                    } catch (IOException | RuntimeException e) {
                        // Not a line of ours: the next one tells.
                    }
                }
            }
        }
        return Optional.empty();
    }

    private void scan(Path candidate, Map<String, Line> wanted) throws IOException {
        try (BufferedReader reader = TrackingFiles.open(candidate)) {
            for (String text = reader.readLine(); text != null && !wanted.isEmpty(); text = reader.readLine()) {
                if (!text.contains(container)) {
                    continue;
                }
                JsonNode line;
                try {
                    line = TrackingLine.json().readTree(text);
                } catch (IOException e) {
                    continue;
                }
                if (line != null && container.equals(line.path("container").asText())) {
                    wanted.remove(key(line.path("event").asText(), line.path("handle").asLong()));
                }
            }
        }
    }

    private LocalDate day(long atMillis) {
        return LocalDate.ofInstant(Instant.ofEpochMilli(atMillis), zone);
    }

    // --- lines -------------------------------------------------------------------------------------------

    /** A line, and what identifies it among the lines of this container: its event and handle; its JSON when asked. */
    private record Line(String key, long atMillis, Supplier<String> json) {
    }

    private static String key(String event, long handleId) {
        return event + "|" + handleId;
    }

    private String accessJson(LicenseKey key, long handleId, AccessMode mode, Owner owner, BitSet acknowledged,
                              long atMillis, boolean recovered) {
        Map<String, Object> fields = new LinkedHashMap<>();
        license(fields, key);
        fields.put("handle", handleId);
        fields.put("mode", mode.name());
        fields.put("owner", owner(owner));
        if (acknowledged != null) {
            fields.put("acknowledged", names(acknowledged));
        }
        if (recovered) {
            fields.put("recovered", true);
        }
        return TrackingLine.of(Instant.ofEpochMilli(atMillis), "access", container, fields);
    }

    private String endJson(LicenseKey key, long handleId, String event, String reason, Owner owner, BitSet freedOn,
                           long atMillis, boolean recovered) {
        Map<String, Object> fields = new LinkedHashMap<>();
        license(fields, key);
        fields.put("handle", handleId);
        if (owner != null) {
            fields.put("owner", owner(owner));
        }
        fields.put("reason", reason);
        if (freedOn != null) {
            fields.put("freedOn", names(freedOn));
        }
        if (recovered) {
            fields.put("recovered", true);
        }
        return TrackingLine.of(Instant.ofEpochMilli(atMillis), event, container, fields);
    }

    private static void license(Map<String, Object> fields, LicenseKey key) {
        fields.put("firm", key.firmCode());
        fields.put("product", key.productCode());
        fields.put("tmrId", key.tmrId());
        fields.put("item", key.toString());
    }

    private static Map<String, Object> owner(Owner owner) {
        Map<String, Object> map = TrackingLine.owner(owner.host() == null ? owner.address() : owner.host(),
                owner.user(), owner.pid(), owner.session());
        map.put("address", owner.address());
        return map;
    }

    private List<String> names(BitSet indices) {
        List<String> names = new ArrayList<>();
        for (int i = indices.nextSetBit(0); i >= 0; i = indices.nextSetBit(i + 1)) {
            names.add(i < backends.size() ? backends.get(i) : "backend-" + (i + 1));
        }
        return names;
    }

    /** Waits (bounded) for the background recovery and the queued lines, then closes the file. */
    @Override
    public void close() {
        if (file == null || view) {
            return;
        }
        recoverer.shutdown();
        try {
            if (!recoverer.awaitTermination(30, TimeUnit.SECONDS)) {
                LOG.warn("Tracking log: the check of journaled events did not end within 30 s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        file.close();
    }

    /** Completes once the lines queued (and the recoveries submitted) before this call are in the file (tests). */
    public java.util.concurrent.CompletableFuture<Void> written() {
        if (file == null) {
            return java.util.concurrent.CompletableFuture.completedFuture(null);
        }
        return java.util.concurrent.CompletableFuture.runAsync(() -> { }, recoverer)
                .thenCompose(done -> file.written());
    }
}
