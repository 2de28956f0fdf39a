package io.opentmr.tracking;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;

/**
 * Where tracking logs live and how they are read back: {@value #CURRENT} in a data directory, and the rotated
 * days beside it as {@code tracking.yyyy-MM-dd.log.gz} (a second file of one day adds an index:
 * {@code tracking.yyyy-MM-dd.1.log.gz}). The backend's Logback appender and the node's {@link TrackingFile}
 * use these names, so readers need not know which server wrote a file.
 */
public final class TrackingFiles {

    /** The file lines are appended to now. */
    public static final String CURRENT = "tracking.log";
    /** Logback's file name pattern of a rotated day (the backend's appender uses it as it is). */
    public static final String ROTATED_PATTERN = "tracking.%d{yyyy-MM-dd}.log.gz";

    private static final Pattern ROTATED = Pattern.compile("tracking\\.(\\d{4}-\\d{2}-\\d{2})(\\.(\\d+))?\\.log(\\.gz)?");

    private TrackingFiles() {
    }

    /** The name of a rotated day's file: {@code index} 0 is the first of that day. */
    public static String rotatedName(LocalDate day, int index) {
        return "tracking." + day + (index == 0 ? "" : "." + index) + ".log.gz";
    }

    /** The day a rotated file holds, from its name; empty for the current file and for other names. */
    public static Optional<LocalDate> dayOf(Path file) {
        Matcher matcher = ROTATED.matcher(file.getFileName().toString());
        if (!matcher.matches()) {
            return Optional.empty();
        }
        try {
            return Optional.of(LocalDate.parse(matcher.group(1)));
        } catch (DateTimeParseException e) {
            return Optional.empty();
        }
    }

    /** The index of a rotated file within its day (0 for the first), or -1 for other names. */
    static int indexOf(Path file) {
        Matcher matcher = ROTATED.matcher(file.getFileName().toString());
        if (!matcher.matches()) {
            return -1;
        }
        return matcher.group(3) == null ? 0 : Integer.parseInt(matcher.group(3));
    }

    /**
     * The tracking files of a directory, oldest first: the rotated days in order, then {@value #CURRENT}
     * (if it exists).
     */
    public static List<Path> inDirectory(Path dir) throws IOException {
        List<Path> rotated = new ArrayList<>();
        if (Files.isDirectory(dir)) {
            try (Stream<Path> files = Files.list(dir)) {
                files.filter(f -> dayOf(f).isPresent()).forEach(rotated::add);
            }
        }
        rotated.sort(Comparator.comparing((Path f) -> dayOf(f).orElseThrow()).thenComparingInt(TrackingFiles::indexOf));
        Path current = dir.resolve(CURRENT);
        if (Files.isRegularFile(current)) {
            rotated.add(current);
        }
        return rotated;
    }

    /** Opens a tracking file for reading, plain or gzip (by its magic bytes, not its name). */
    public static BufferedReader open(Path file) throws IOException {
        InputStream in = new java.io.BufferedInputStream(Files.newInputStream(file));
        try {
            in.mark(2);
            int first = in.read();
            int second = in.read();
            in.reset();
            if (first == 0x1f && second == 0x8b) {
                in = new GZIPInputStream(in, 64 * 1024);
            }
            return new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8), 64 * 1024);
        } catch (IOException e) {
            in.close();
            throw e;
        }
    }
}
