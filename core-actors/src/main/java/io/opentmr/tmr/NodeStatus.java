package io.opentmr.tmr;

import io.opentmr.metrics.ServerMetrics;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.tmr.backend.PeerGroup;
import io.opentmr.tmr.license.Seat;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node's status as other threads read it: whether it serves clients now, read by every session on its own
 * thread (it holds the lease certificate, and its licenses were reconciled with the backends since it gained
 * it; the {@link VirtualContainer} decides that part and is the only writer), and the numbers management HTTP
 * shows (open handles, copies and seats per license, integrity warnings, take-overs), written by the actors
 * that know them.
 */
public final class NodeStatus {

    private static final Logger LOG = LoggerFactory.getLogger(NodeStatus.class);

    /** One license's numbers as the virtual container last knew them. */
    public static final class LicenseReading {
        private volatile int copies;
        private volatile long inUse;
        private volatile long quantity;
        private final AtomicLong integrityWarnings = new AtomicLong();

        /** Copies that count now (identical and available). */
        public int copies() {
            return copies;
        }

        public long inUse() {
            return inUse;
        }

        /** Seats of the license as two copies agree on them; 0 while none agree. */
        public long quantity() {
            return quantity;
        }

        /** Warnings logged on {@code opentmr.integrity} about this license since the node started. */
        public long integrityWarnings() {
            return integrityWarnings.get();
        }
    }

    private final PeerGroup peers;
    private volatile boolean reconciled;
    /** At most this many HELLOs wait for the node to serve ({@link #awaitServing}); more hear NOT_ACTIVE at once. */
    public static final int MAX_WAITING = 10_000;
    private final java.util.Set<Runnable> servingWaiters = new java.util.LinkedHashSet<>();
    /** Set once a twin node stops being the active one: this state never serves again, whatever sets reconciled. */
    private volatile boolean retired;
    private volatile String activeAddress = "";
    private volatile int openHandles;
    private final Map<LicenseKey, LicenseReading> licenses = new ConcurrentHashMap<>();
    /** The requests (client process and request id) whose ACCESS opened a handle held in this container now. */
    private final java.util.Set<Seat.RequestKey> openedRequests = ConcurrentHashMap.newKeySet();
    private final AtomicLong integrityWarnings = new AtomicLong();
    private final AtomicLong takeovers = new AtomicLong();
    private volatile long takeoverStartedNanos;
    private volatile ServerMetrics metrics;
    /** Where the epoch the node last served under is kept (null: not kept), and that epoch. */
    private Path epochFile;
    private long lastEpoch;

    public NodeStatus(PeerGroup peers) {
        this.peers = peers;
    }

    /** Serves: answers HELLO with TMR_ACTIVE and carries out requests. Otherwise clients are told NOT_ACTIVE. */
    public boolean serving() {
        return !retired && reconciled && peers.holdsLease();
    }

    public boolean reconciled() {
        return reconciled;
    }

    /** For good: a container still stopping may mark itself reconciled once more, the node must not serve. */
    void retire() {
        retired = true;
    }

    void reconciled(boolean now) {
        reconciled = now;
        if (now) {
            runServingWaiters();
        }
    }

    private void runServingWaiters() {
        List<Runnable> due;
        synchronized (servingWaiters) {
            due = List.copyOf(servingWaiters);
            servingWaiters.clear();
        }
        due.forEach(Runnable::run);
    }

    /**
     * While the node holds the backends' lease but does not serve yet (taking over, or reconciling at start): runs
     * {@code whenServing} once it is reconciled (on the caller's thread of that moment; the callback checks
     * {@link #serving} itself). A HELLO waits for this instead of sending its client away to come back after a
     * backoff ({@code TmrSession}).
     *
     * @return false, and nothing is kept, when the node is not taking over or {@link #MAX_WAITING} wait already
     */
    public boolean awaitServing(Runnable whenServing) {
        synchronized (servingWaiters) {
            if (retired || !peers.holdsLease() || servingWaiters.size() >= MAX_WAITING) {
                return false;
            }
            servingWaiters.add(whenServing);
        }
        if (reconciled) {
            // Reconciled meanwhile: the waiters may have been run before this one was added.
            runServingWaiters();
        }
        return true;
    }

    /** Forgets a callback of {@link #awaitServing} (its HELLO gave up waiting). */
    public void cancelAwait(Runnable whenServing) {
        synchronized (servingWaiters) {
            servingWaiters.remove(whenServing);
        }
    }

    /** The address of the node that serves instead of this one, as NOT_ACTIVE names it; empty when unknown. */
    public String activeAddress() {
        return activeAddress;
    }

    /** Set by whoever learns of the active node (the twin); a single node knows none. */
    public void activeAddress(String address) {
        activeAddress = address == null ? "" : address;
    }

    // --- the numbers of management HTTP ---------------------------------------------------------------------

    /** Where journal writes are timed from now on (the node's metrics). */
    public void metrics(ServerMetrics metrics) {
        this.metrics = metrics;
    }

    void journalWritten(long nanos) {
        ServerMetrics now = metrics;
        if (now != null) {
            now.journalWrite(nanos);
        }
    }

    /** Open handles of the virtual container (granted, or recovered with the seat tables). */
    public int openHandles() {
        return openHandles;
    }

    void openHandles(int count) {
        openHandles = count;
    }

    /** Every license the node knows, with its numbers, by key. */
    public Map<LicenseKey, LicenseReading> licenses() {
        Map<LicenseKey, LicenseReading> sorted = new TreeMap<>(Quorums.ORDER);
        sorted.putAll(licenses);
        return sorted;
    }

    /** Whether a license of this product (firm, product) is known here (a session routes an ACCESS by it). */
    public boolean knows(long firmCode, long productCode) {
        for (LicenseKey key : licenses.keySet()) {
            if (key.firmCode() == firmCode && key.productCode() == productCode) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether an ACCESS of this request (client process and request id) opened a handle this container holds: a
     * re-sent ACCESS goes to it first, among several virtual containers.
     */
    public boolean opened(Seat.RequestKey request) {
        return openedRequests.contains(request);
    }

    void opened(Seat.RequestKey request, boolean held) {
        if (held) {
            openedRequests.add(request);
        } else {
            openedRequests.remove(request);
        }
    }

    void forgetOpened() {
        openedRequests.clear();
    }

    LicenseReading reading(LicenseKey key) {
        return licenses.computeIfAbsent(key, k -> new LicenseReading());
    }

    void copies(LicenseKey key, int copies, long quantity) {
        LicenseReading reading = reading(key);
        reading.copies = copies;
        reading.quantity = quantity;
    }

    void inUse(LicenseKey key, long inUse) {
        reading(key).inUse = inUse;
    }

    /** A warning about {@code key} went to the {@code opentmr.integrity} log. */
    public void integrityWarning(LicenseKey key) {
        integrityWarnings.incrementAndGet();
        reading(key).integrityWarnings.incrementAndGet();
    }

    /** Warnings logged on {@code opentmr.integrity} since the node started. */
    public long integrityWarnings() {
        return integrityWarnings.get();
    }

    /**
     * Keeps the epoch the node last served under in {@code file}, so that a gain of the lease can be told from a
     * take-over across restarts. Read once here; a missing or unreadable file is epoch 0.
     */
    public synchronized void keepEpochIn(Path file) {
        epochFile = file;
        try {
            lastEpoch = Files.exists(file) ? Long.parseLong(Files.readString(file, StandardCharsets.UTF_8).strip()) : 0;
        } catch (IOException | NumberFormatException e) {
            LOG.warn("Cannot read the last lease epoch from {} ({}); counting from 0", file, e.toString());
            lastEpoch = 0;
        }
    }

    /**
     * The node gained the active lease under {@code epoch}. The backends raise the epoch only when the holder
     * changes, so an epoch above the one this node last served under (and above 1, the first holder's) means the
     * active role came from another node: a take-over (fail-over).
     */
    synchronized void leaseGained(long epoch) {
        if (epoch > lastEpoch && epoch > 1) {
            takeovers.incrementAndGet();
            LOG.info("The active role came to this node at epoch {} (it last served at epoch {})", epoch, lastEpoch);
        }
        if (epoch != lastEpoch && epochFile != null) {
            try {
                Path temporary = epochFile.resolveSibling(epochFile.getFileName() + ".tmp");
                Files.writeString(temporary, epoch + "\n", StandardCharsets.UTF_8);
                Files.move(temporary, epochFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (IOException e) {
                LOG.warn("Cannot keep the lease epoch {} in {}: {}", epoch, epochFile, e.toString());
            }
        }
        lastEpoch = epoch;
    }

    /**
     * When ({@link System#nanoTime}) the node saw it holds the backends' lease and began to take over (a twin's
     * standby); 0 when it did not (a single node). The virtual container times its take-over from it.
     */
    public void takeoverStarted(long nanos) {
        takeoverStartedNanos = nanos;
    }

    public long takeoverStartedNanos() {
        return takeoverStartedNanos;
    }

    /** Times the active role came to this node from another node (see {@link #leaseGained}). */
    public long takeovers() {
        return takeovers.get();
    }
}
