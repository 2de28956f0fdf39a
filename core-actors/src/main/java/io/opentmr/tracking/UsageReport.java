package io.opentmr.tracking;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneId;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;

/**
 * What site license managers take from a usage report, read from tracking logs of backends and TMR nodes
 * (plain or gzip, current or rotated): per day and license (container and item), the peak of seats in use,
 * the accesses, the denials by error number, and the users with the most accesses.
 *
 * <p>Seats in use follow the handles: an {@code access} opens one, its {@code release} or {@code reclaim} ends it.
 * A USERLIMIT or EXCLUSIVE handle counts one seat, a STATIONSHARE handle one per client host, NOUSERLIMIT none. A
 * day's peak includes the handles still open from earlier lines (lines before {@code from} are read for that,
 * not counted). A line seen twice (the same container, event and handle: a node's line written again after a
 * restart, or the logs of both twin nodes) counts once. A line that is not a tracking line is counted as
 * malformed and reported, never fatal.
 */
public final class UsageReport {

    /** One user's accesses on one row. */
    public record UserCount(String user, long accesses) {
    }

    /** Usage of one license on one day. {@code denials}: error number → count. */
    public record Row(LocalDate day, String container, String license, long peakSeats, long accesses,
                      Map<Integer, Long> denials, List<UserCount> topUsers) {
    }

    /** A line that could not be used: where, and why. */
    public record Problem(String file, long line, String what) {
    }

    /** Problems kept for the report; further ones are only counted. */
    public static final int PROBLEMS_KEPT = 20;

    private final List<Row> rows;
    private final long lines;
    private final long malformed;
    private final long duplicates;
    private final List<Problem> problems;

    private UsageReport(List<Row> rows, long lines, long malformed, long duplicates, List<Problem> problems) {
        this.rows = rows;
        this.lines = lines;
        this.malformed = malformed;
        this.duplicates = duplicates;
        this.problems = problems;
    }

    public List<Row> rows() {
        return rows;
    }

    /** Lines read, malformed ones included. */
    public long lines() {
        return lines;
    }

    public long malformed() {
        return malformed;
    }

    /** Lines skipped because the same event of the same handle was read before. */
    public long duplicates() {
        return duplicates;
    }

    /** The first {@value #PROBLEMS_KEPT} malformed lines. */
    public List<Problem> problems() {
        return problems;
    }

    private record Entry(Instant time, long order, String event, String container, String license, long handle,
                         String mode, String station, String user, int error) {
    }

    /**
     * Reads {@code files} and reports the days {@code from}..{@code to} (inclusive; null: unbounded) in {@code zone}.
     *
     * @param topUsers users listed per row
     * @throws IOException when a file cannot be read at all (a bad line is not an error)
     */
    public static UsageReport read(List<Path> files, LocalDate from, LocalDate to, ZoneId zone, int topUsers)
            throws IOException {
        List<Entry> entries = new ArrayList<>();
        List<Problem> problems = new ArrayList<>();
        long lines = 0;
        long malformed = 0;
        long order = 0;
        for (Path file : files) {
            try (BufferedReader reader = TrackingFiles.open(file)) {
                long number = 0;
                for (String text = reader.readLine(); text != null; text = reader.readLine()) {
                    number++;
                    lines++;
                    if (text.isBlank()) {
                        continue;
                    }
                    String problem;
                    try {
                        Entry entry = entry(TrackingLine.json().readTree(text), order++);
                        if (entry != null) {
                            entries.add(entry);
                        }
                        continue;
                    } catch (IOException | IllegalArgumentException | DateTimeParseException e) {
                        problem = e instanceof IOException ? "not JSON" : e.getMessage();
                    }
                    malformed++;
                    if (problems.size() < PROBLEMS_KEPT) {
                        problems.add(new Problem(file.toString(), number, problem));
                    }
                }
            } catch (java.io.EOFException | java.util.zip.ZipException e) {
                // A gzip file cut short (a rotation interrupted): what was read counts, the rest is reported.
                malformed++;
                if (problems.size() < PROBLEMS_KEPT) {
                    problems.add(new Problem(file.toString(), 0, "file cut short: " + e.getMessage()));
                }
            }
        }
        entries.sort(Comparator.comparing(Entry::time).thenComparingLong(Entry::order));
        return aggregate(entries, from, to, zone, topUsers, lines, malformed, problems);
    }

    /** The entry of a line, null for events the report does not count. */
    private static Entry entry(JsonNode line, long order) {
        if (line == null || !line.isObject()) {
            throw new IllegalArgumentException("not a JSON object");
        }
        if (!line.hasNonNull("time") || !line.hasNonNull("event")) {
            throw new IllegalArgumentException("no time or event");
        }
        Instant time = Instant.parse(line.get("time").asText());
        String event = line.get("event").asText();
        if (line.hasNonNull("handle") && (event.equals("return") || event.equals("borrow-expired"))) {
            // A node's borrowed seat ending (its handle is the ticket): the seat its access took is free again.
            event = "release";
        } else if (!event.equals("access") && !event.equals("release") && !event.equals("reclaim")
                && !event.equals("denial")) {
            return null;
        }
        String container = line.path("container").asText("?");
        long handle = line.hasNonNull("handle") ? line.get("handle").asLong(-1) : -1;
        if (!event.equals("denial") && handle < 0) {
            throw new IllegalArgumentException(event + " without a handle");
        }
        JsonNode owner = line.path("owner");
        String user = owner.isObject() ? owner.path("user").asText("?") + "@" + owner.path("host").asText("?") : null;
        String station = owner.isObject() ? owner.path("address").asText(owner.path("host").asText("?")) : "?";
        int error = event.equals("denial") ? line.path("error").asInt(0) : 0;
        return new Entry(time, order, event, container, license(line), handle, line.path("mode").asText(""), station,
                user, error);
    }

    /** {@code firm:product}, with {@code #tmrId} for a TMR license; "-" for a line of no license (a HELLO). */
    private static String license(JsonNode line) {
        String item = line.path("item").asText("");
        if (item.isEmpty() && line.hasNonNull("firm") && line.hasNonNull("product")) {
            item = line.get("firm").asText() + ":" + line.get("product").asText();
        }
        if (item.isEmpty()) {
            // The backend's denial names the request: "ACCESS firm:product".
            String request = line.path("request").asText("");
            if (request.startsWith("ACCESS ")) {
                item = request.substring("ACCESS ".length()).strip();
            }
        }
        if (item.endsWith("#0")) {
            item = item.substring(0, item.length() - 2);
        }
        return item.isEmpty() ? "-" : item;
    }

    /** Open handles of one license, as seats. */
    private static final class Seats {
        long single;
        final Map<String, Integer> stations = new HashMap<>();

        long inUse() {
            return single + stations.size();
        }

        void open(String mode, String station) {
            switch (mode) {
                case "NOUSERLIMIT" -> {
                }
                case "STATIONSHARE" -> stations.merge(station, 1, Integer::sum);
                default -> single++;
            }
        }

        void close(String mode, String station) {
            switch (mode) {
                case "NOUSERLIMIT" -> {
                }
                case "STATIONSHARE" -> stations.computeIfPresent(station, (s, n) -> n == 1 ? null : n - 1);
                default -> single--;
            }
        }
    }

    private static final class Day {
        long peak;

        Day(long openAtStart) {
            peak = openAtStart;
        }

        long accesses;
        final Map<Integer, Long> denials = new TreeMap<>();
        final Map<String, Long> users = new HashMap<>();
    }

    private static UsageReport aggregate(List<Entry> entries, LocalDate from, LocalDate to, ZoneId zone,
                                         int topUsers, long lines, long malformed, List<Problem> problems) {
        Set<String> seen = new HashSet<>();
        Map<String, Entry> open = new HashMap<>();
        Map<String, Seats> seats = new HashMap<>();
        // day → container|license → usage
        TreeMap<LocalDate, TreeMap<String, Day>> days = new TreeMap<>();
        long duplicates = 0;
        for (Entry entry : entries) {
            if (entry.handle() >= 0 && !seen.add(entry.container() + "|" + entry.event() + "|" + entry.handle())) {
                duplicates++;
                continue;
            }
            String license = entry.container() + "|" + entry.license();
            String handle = entry.container() + "|" + entry.handle();
            Seats held = seats.computeIfAbsent(license, l -> new Seats());
            long before = held.inUse();
            switch (entry.event()) {
                case "access" -> held.open(entry.mode(), entry.station());
                case "release", "reclaim" -> {
                    Entry opened = open.remove(handle);
                    if (opened != null) {
                        seats.get(opened.container() + "|" + opened.license()).close(opened.mode(), opened.station());
                    }
                }
                default -> {
                }
            }
            if (entry.event().equals("access")) {
                open.put(handle, entry);
            }
            LocalDate day = LocalDate.ofInstant(entry.time(), zone);
            if (from != null && day.isBefore(from) || to != null && day.isAfter(to)) {
                continue;
            }
            // A license's first line of a day: the handles open since earlier days count from midnight on.
            Day usage = days.computeIfAbsent(day, d -> new TreeMap<>()).computeIfAbsent(license, l -> new Day(before));
            usage.peak = Math.max(usage.peak, held.inUse());
            switch (entry.event()) {
                case "access" -> {
                    usage.accesses++;
                    if (entry.user() != null) {
                        usage.users.merge(entry.user(), 1L, Long::sum);
                    }
                }
                case "denial" -> usage.denials.merge(entry.error(), 1L, Long::sum);
                default -> {
                }
            }
        }
        List<Row> rows = new ArrayList<>();
        days.forEach((day, licenses) -> licenses.forEach((license, usage) -> {
            int bar = license.indexOf('|');
            List<UserCount> users = usage.users.entrySet().stream()
                    .sorted(Map.Entry.<String, Long>comparingByValue().reversed().thenComparing(Map.Entry.comparingByKey()))
                    .limit(topUsers).map(e -> new UserCount(e.getKey(), e.getValue())).toList();
            rows.add(new Row(day, license.substring(0, bar), license.substring(bar + 1), usage.peak, usage.accesses,
                    Map.copyOf(usage.denials), users));
        }));
        return new UsageReport(List.copyOf(rows), lines, malformed, duplicates, List.copyOf(problems));
    }

    // --- output ------------------------------------------------------------------------------------------

    /** The report as one JSON object: {@code rows}, {@code lines}, {@code malformed}, {@code duplicates}, {@code problems}. */
    public String toJson() {
        ObjectNode root = TrackingLine.json().createObjectNode();
        ArrayNode array = root.putArray("rows");
        for (Row row : rows) {
            ObjectNode node = array.addObject();
            node.put("day", row.day().toString());
            node.put("container", row.container());
            node.put("license", row.license());
            node.put("peakSeats", row.peakSeats());
            node.put("accesses", row.accesses());
            ObjectNode denials = node.putObject("denials");
            new TreeMap<>(row.denials()).forEach((error, count) -> denials.put(String.valueOf(error), count));
            ArrayNode users = node.putArray("topUsers");
            row.topUsers().forEach(u -> users.addObject().put("user", u.user()).put("accesses", u.accesses()));
        }
        root.put("lines", lines);
        root.put("malformed", malformed);
        root.put("duplicates", duplicates);
        ArrayNode bad = root.putArray("problems");
        problems.forEach(p -> bad.addObject().put("file", p.file()).put("line", p.line()).put("what", p.what()));
        try {
            return TrackingLine.json().writerWithDefaultPrettyPrinter().writeValueAsString(root);
        } catch (IOException e) {
            throw new IllegalStateException("a report of plain values is always JSON", e);
        }
    }

    /** One header line and one line per row; denials as {@code 212=3;231=1}, users as {@code alice@ws-1=4;...}. */
    public String toCsv() {
        StringBuilder out = new StringBuilder("day,container,license,peak_seats,accesses,denials,top_users\n");
        for (Row row : rows) {
            out.append(row.day()).append(',').append(csv(row.container())).append(',').append(csv(row.license()))
                    .append(',').append(row.peakSeats()).append(',').append(row.accesses()).append(',')
                    .append(csv(denials(row, "=", ";"))).append(',')
                    .append(csv(row.topUsers().stream().map(u -> u.user() + "=" + u.accesses())
                            .collect(Collectors.joining(";")))).append('\n');
        }
        return out.toString();
    }

    /** A table for people. */
    public String toTable() {
        List<String[]> cells = new ArrayList<>();
        cells.add(new String[] {"DAY", "CONTAINER", "LICENSE", "PEAK", "ACCESSES", "DENIALS", "TOP USERS"});
        for (Row row : rows) {
            cells.add(new String[] {row.day().toString(), row.container(), row.license(),
                    String.valueOf(row.peakSeats()), String.valueOf(row.accesses()), denials(row, ":", " "),
                    row.topUsers().stream().map(u -> u.user() + " (" + u.accesses() + ")")
                            .collect(Collectors.joining(", "))});
        }
        int[] widths = new int[7];
        cells.forEach(line -> {
            for (int i = 0; i < line.length; i++) {
                widths[i] = Math.max(widths[i], line[i].length());
            }
        });
        StringBuilder out = new StringBuilder();
        for (String[] line : cells) {
            StringBuilder text = new StringBuilder();
            for (int i = 0; i < line.length; i++) {
                text.append(i == line.length - 1 ? line[i] : String.format("%-" + widths[i] + "s  ", line[i]));
            }
            out.append(text.toString().stripTrailing()).append('\n');
        }
        return out.toString();
    }

    private static String denials(Row row, String between, String separator) {
        return new TreeMap<>(row.denials()).entrySet().stream().map(e -> e.getKey() + between + e.getValue())
                .collect(Collectors.joining(separator));
    }

    private static String csv(String value) {
        return value.contains(",") || value.contains("\"") || value.contains("\n")
                ? "\"" + value.replace("\"", "\"\"") + "\"" : value;
    }
}
