package io.opentmr.tracking;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.time.Duration;
import java.time.LocalDate;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.zip.GZIPOutputStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A tracking log file that its own thread appends to: {@code DIR/tracking.log}, rotated at the first line of a
 * new day (in {@code zone}) into {@code tracking.yyyy-MM-dd.log.gz}, rotated days kept {@code keepDays} days.
 *
 * <p>{@link #append} only queues the line: the caller (an actor deciding a seat) never waits for the disk, unless
 * {@value #QUEUE_LINES} lines wait already, when it waits rather than lose one. The thread writes what is queued
 * in one write to the operating system (no fsync), so a line reaches the file within milliseconds; a process that
 * dies meanwhile loses the lines still queued (the TMR node writes again, from its journal, those of journaled
 * events). A file that cannot be written loses its lines, counted in an ERROR log line.
 */
public final class TrackingFile implements AutoCloseable {

    /** Lines that may wait for the writer thread before {@link #append} waits too. */
    public static final int QUEUE_LINES = 100_000;
    /**
     * After writing lines the writer waits this long before it takes the next ones: on a busy node it then writes a
     * few hundred lines at a time, and the actors that queue them seldom have to wake it (a wake-up per line cost a
     * context switch on each side). A line reaches the file at most this much later; nothing waits for it. Not after
     * a full batch: a burst is written as fast as the disk takes it.
     */
    static final long LINGER_MILLIS = 10;
    /** Lines (and barriers) the writer takes at a time; after a full batch it does not linger. */
    private static final int BATCH_LINES = 4097;
    private static final Logger LOG = LoggerFactory.getLogger(TrackingFile.class);
    private static final Object STOP = new Object();

    private final Path dir;
    private final Path current;
    private final Clock clock;
    private final ZoneId zone;
    private final int keepDays;
    private final BlockingQueue<Object> queue = new ArrayBlockingQueue<>(QUEUE_LINES);
    private final Thread thread;
    private volatile boolean closed;
    // The writer thread's own:
    private Writer out;
    private LocalDate day;
    private long lost;

    /**
     * Opens (creates) {@code dir/tracking.log}; a file left from an earlier day is rotated first.
     *
     * @throws IOException when the directory or the file cannot be written
     */
    public TrackingFile(Path dir, Clock clock, ZoneId zone, int keepDays) throws IOException {
        if (keepDays < 1) {
            throw new IllegalArgumentException("keepDays must be at least 1: " + keepDays);
        }
        this.dir = dir;
        this.current = dir.resolve(TrackingFiles.CURRENT);
        this.clock = clock;
        this.zone = zone;
        this.keepDays = keepDays;
        Files.createDirectories(dir);
        LocalDate today = today();
        if (Files.exists(current)) {
            LocalDate written = LocalDate.ofInstant(Files.getLastModifiedTime(current).toInstant(), zone);
            if (written.isBefore(today) && Files.size(current) > 0) {
                day = written;
                rotate();
            }
        }
        day = today;
        out = openCurrent();
        thread = new Thread(this::run, "opentmr-tracking-" + dir.getFileName());
        thread.setDaemon(true);
        thread.start();
    }

    public Path file() {
        return current;
    }

    /** Queues one line (without its line break); after {@link #close} it is dropped. */
    public void append(String line) {
        if (closed) {
            LOG.warn("Tracking line after the log was closed, not written: {}", line);
            return;
        }
        try {
            queue.put(line);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            LOG.warn("Interrupted while the tracking log's queue was full; line not written: {}", line);
        }
    }

    /** Completes once every line queued before this call is in the file (handed to the operating system). */
    public CompletableFuture<Void> written() {
        CompletableFuture<Void> barrier = new CompletableFuture<>();
        if (closed) {
            barrier.complete(null);
            return barrier;
        }
        try {
            queue.put(barrier);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            barrier.completeExceptionally(e);
        }
        return barrier;
    }

    private void run() {
        List<Object> batch = new ArrayList<>();
        boolean stop = false;
        while (!stop) {
            try {
                batch.add(queue.take());
            } catch (InterruptedException e) {
                break;
            }
            queue.drainTo(batch, BATCH_LINES - 1);
            List<CompletableFuture<Void>> barriers = new ArrayList<>();
            for (Object item : batch) {
                if (item == STOP) {
                    stop = true;
                } else if (item instanceof CompletableFuture<?> barrier) {
                    @SuppressWarnings("unchecked")
                    CompletableFuture<Void> done = (CompletableFuture<Void>) barrier;
                    barriers.add(done);
                } else {
                    write((String) item);
                }
            }
            // A full batch is a burst (a take-over's rebuilt seats): the next is written at once.
            boolean linger = batch.size() > barriers.size() && batch.size() < BATCH_LINES;
            batch.clear();
            flush();
            barriers.forEach(barrier -> barrier.complete(null));
            if (linger && !stop) {
                try {
                    Thread.sleep(LINGER_MILLIS);
                } catch (InterruptedException e) {
                    break;
                }
            }
        }
        try {
            if (out != null) {
                out.close();
            }
        } catch (IOException e) {
            LOG.error("Tracking log {} not closed cleanly: {}", current, e.toString());
        }
        // Whoever waits for lines queued after the close hears of it now.
        for (Object item = queue.poll(); item != null; item = queue.poll()) {
            if (item instanceof CompletableFuture<?> barrier) {
                barrier.complete(null);
            }
        }
    }

    private void write(String line) {
        try {
            LocalDate today = today();
            if (!today.equals(day)) {
                if (out != null) {
                    out.close();
                    out = null;
                }
                rotate();
                day = today;
                out = openCurrent();
            }
            if (out == null) {
                out = openCurrent();
            }
            out.write(line);
            out.write('\n');
        } catch (IOException e) {
            failed(e);
        }
    }

    private void flush() {
        try {
            if (out != null) {
                out.flush();
            }
        } catch (IOException e) {
            failed(e);
        }
    }

    /** A line (or a buffer of them) lost: counted, logged now and then; the next line opens the file again. */
    private void failed(IOException e) {
        lost++;
        if (lost == 1 || lost % 1000 == 0) {
            LOG.error("Tracking log {} cannot be written ({} line(s) lost so far): {}", current, lost, e.toString());
        }
        try {
            if (out != null) {
                out.close();
            }
        } catch (IOException ignored) {
            // Already failing: the next line opens the file again.
        }
        out = null;
    }

    private Writer openCurrent() throws IOException {
        OutputStream stream = Files.newOutputStream(current, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        return new BufferedWriter(new OutputStreamWriter(stream, StandardCharsets.UTF_8), 64 * 1024);
    }

    /** {@code tracking.log} of {@link #day} becomes its day's gzip file; days beyond {@code keepDays} go. */
    private void rotate() throws IOException {
        if (!Files.exists(current)) {
            return;
        }
        Path target = null;
        for (int index = 0; target == null || Files.exists(target); index++) {
            target = dir.resolve(TrackingFiles.rotatedName(day, index));
        }
        Path partial = dir.resolve(target.getFileName() + ".part");
        try (InputStream in = Files.newInputStream(current);
             OutputStream gz = new GZIPOutputStream(Files.newOutputStream(partial), 64 * 1024)) {
            in.transferTo(gz);
        }
        Files.move(partial, target, StandardCopyOption.ATOMIC_MOVE);
        Files.delete(current);
        LocalDate oldest = today().minusDays(keepDays);
        for (Path file : TrackingFiles.inDirectory(dir)) {
            if (TrackingFiles.dayOf(file).map(d -> d.isBefore(oldest)).orElse(false)) {
                Files.deleteIfExists(file);
            }
        }
        LOG.info("Tracking log of {} rotated to {}", day, target);
    }

    private LocalDate today() {
        return LocalDate.ofInstant(clock.instant(), zone);
    }

    /** Writes what is queued, then stops the thread (bounded: 10 s). */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            if (!queue.offer(STOP, 10, TimeUnit.SECONDS)) {
                thread.interrupt();
            }
            thread.join(Duration.ofSeconds(10).toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (thread.isAlive()) {
            LOG.warn("Tracking log {} did not close within 10 s", current);
        }
    }
}
