package io.opentmr.launcher;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * CPU time of other processes, read from {@code /proc/PID/stat} (Linux only): user plus system time
 * ({@code utime + stime}, fields 14 and 15), in clock ticks of {@code getconf CLK_TCK} (100 on Linux
 * as shipped). {@code tmr bench --demo} samples the demo's processes at the start and the end of each
 * measured phase and divides by the pairs measured: the CPU a pair costs each server, so capacity on a
 * given machine is read off, not guessed.
 */
final class ProcessCpu {

    /** What Linux uses (USER_HZ) on every common architecture; taken when {@code getconf} gives nothing. */
    static final long DEFAULT_CLOCK_TICKS = 100;

    /** One process's counters at one moment; {@code startTicks} tells a restarted process (a reused pid). */
    record Stat(long cpuTicks, long startTicks) {
    }

    /** Named processes' CPU over a phase, in milliseconds; an empty value where a process could not be read. */
    record Usage(long clockTicksPerSecond, Map<String, Optional<Double>> millis) {

        /** Milliseconds per pair for each process ({@code "n/a"} where unknown), for the JSON output. */
        Map<String, Object> perPair(long pairs) {
            Map<String, Object> m = new LinkedHashMap<>();
            millis.forEach((name, ms) -> m.put(name, ms.isPresent() && pairs > 0
                    ? (Object) BenchCommand.Result.round(ms.get() / pairs) : NOT_AVAILABLE));
            return m;
        }

        /** Milliseconds of each process over the phase ({@code "n/a"} where unknown). */
        Map<String, Object> total() {
            Map<String, Object> m = new LinkedHashMap<>();
            millis.forEach((name, ms) -> m.put(name, ms.isPresent() ? (Object) BenchCommand.Result.round(ms.get())
                    : NOT_AVAILABLE));
            return m;
        }

        /** The sum over all processes per pair, when every one of them was read. */
        Optional<Double> allPerPair(long pairs) {
            if (pairs <= 0 || millis.values().stream().anyMatch(Optional::isEmpty)) {
                return Optional.empty();
            }
            return Optional.of(millis.values().stream().mapToDouble(Optional::get).sum() / pairs);
        }

        /** {@code backend-1 0.61 ms, …, node-a 2.10 ms; all 4.05 ms}, or why not. */
        String text(long pairs) {
            if (pairs <= 0) {
                return "n/a (no pairs measured)";
            }
            StringBuilder s = new StringBuilder();
            millis.forEach((name, ms) -> {
                if (!s.isEmpty()) {
                    s.append(", ");
                }
                s.append(name).append(' ').append(ms.map(v -> String.format(Locale.ROOT, "%.2f ms", v / pairs))
                        .orElse(NOT_AVAILABLE));
            });
            allPerPair(pairs).ifPresent(all -> s.append(String.format(Locale.ROOT, "; all %.2f ms", all)));
            return s.toString();
        }
    }

    static final String NOT_AVAILABLE = "n/a";

    private final Path proc;
    private final long clockTicksPerSecond;

    ProcessCpu(Path proc, long clockTicksPerSecond) {
        if (clockTicksPerSecond <= 0) {
            throw new IllegalArgumentException("clock ticks per second must be positive: " + clockTicksPerSecond);
        }
        this.proc = proc;
        this.clockTicksPerSecond = clockTicksPerSecond;
    }

    /** The reader of this machine's {@code /proc}, or empty where there is none (not Linux). */
    static Optional<ProcessCpu> ofThisMachine() {
        Path proc = Path.of("/proc");
        if (!System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux")
                || !Files.isReadable(proc.resolve("self").resolve("stat"))) {
            return Optional.empty();
        }
        return Optional.of(new ProcessCpu(proc, clockTicks()));
    }

    long clockTicksPerSecond() {
        return clockTicksPerSecond;
    }

    /** {@code getconf CLK_TCK}, bounded; {@link #DEFAULT_CLOCK_TICKS} when it cannot be run or says nothing useful. */
    static long clockTicks() {
        try {
            Process getconf = new ProcessBuilder("getconf", "CLK_TCK").redirectErrorStream(true).start();
            getconf.getOutputStream().close();
            String out;
            try (InputStream in = getconf.getInputStream()) {
                if (!getconf.waitFor(5, TimeUnit.SECONDS)) {
                    getconf.destroyForcibly();
                    return DEFAULT_CLOCK_TICKS;
                }
                out = new String(in.readAllBytes(), StandardCharsets.US_ASCII);
            }
            return getconf.exitValue() == 0 ? parseClockTicks(out) : DEFAULT_CLOCK_TICKS;
        } catch (IOException e) {
            return DEFAULT_CLOCK_TICKS;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return DEFAULT_CLOCK_TICKS;
        }
    }

    /** The output of {@code getconf CLK_TCK}; {@link #DEFAULT_CLOCK_TICKS} unless it is one positive number. */
    static long parseClockTicks(String getconfOutput) {
        try {
            long ticks = Long.parseLong(getconfOutput.strip());
            return ticks > 0 ? ticks : DEFAULT_CLOCK_TICKS;
        } catch (NumberFormatException e) {
            return DEFAULT_CLOCK_TICKS;
        }
    }

    /**
     * Parses one {@code /proc/PID/stat} line. The second field, the command name in parentheses, may itself hold
     * spaces and parentheses, so the fields are counted from the last {@code ')'}: state is field 3, utime 14,
     * stime 15, starttime 22 (proc(5)).
     *
     * @throws IllegalArgumentException when the line is not of that form
     */
    static Stat parseStat(String line) {
        int close = line.lastIndexOf(')');
        if (close < 0 || close + 2 > line.length()) {
            throw new IllegalArgumentException("not a /proc/PID/stat line: " + line);
        }
        String[] fields = line.substring(close + 2).strip().split(" +");
        // fields[0] is field 3 (state); field n is fields[n - 3].
        if (fields.length < 20) {
            throw new IllegalArgumentException("a /proc/PID/stat line with " + (fields.length + 2)
                    + " fields, fewer than 22: " + line);
        }
        try {
            return new Stat(Long.parseLong(fields[11]) + Long.parseLong(fields[12]), Long.parseLong(fields[19]));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a /proc/PID/stat line: " + line, e);
        }
    }

    /** The process's counters now, or empty when it is gone or unreadable. */
    Optional<Stat> read(long pid) {
        try {
            return Optional.of(parseStat(Files.readString(proc.resolve(Long.toString(pid)).resolve("stat"),
                    StandardCharsets.US_ASCII)));
        } catch (IOException | IllegalArgumentException e) {
            return Optional.empty();
        }
    }

    /** Counters of each named process now. */
    Map<String, Optional<Stat>> sample(Map<String, Long> pids) {
        Map<String, Optional<Stat>> sample = new LinkedHashMap<>();
        pids.forEach((name, pid) -> sample.put(name, read(pid)));
        return sample;
    }

    /**
     * CPU milliseconds of each process between two samples; unknown for a process missing from either, or
     * restarted in between (another start time under the same pid).
     */
    Usage between(Map<String, Optional<Stat>> before, Map<String, Optional<Stat>> after) {
        Map<String, Optional<Double>> millis = new LinkedHashMap<>();
        before.forEach((name, first) -> {
            Optional<Stat> last = after.getOrDefault(name, Optional.empty());
            if (first.isPresent() && last.isPresent() && first.get().startTicks() == last.get().startTicks()) {
                long ticks = last.get().cpuTicks() - first.get().cpuTicks();
                millis.put(name, Optional.of(ticks * 1000.0 / clockTicksPerSecond));
            } else {
                millis.put(name, Optional.empty());
            }
        });
        return new Usage(clockTicksPerSecond, millis);
    }
}
