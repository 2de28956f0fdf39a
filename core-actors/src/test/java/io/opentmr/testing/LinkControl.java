package io.opentmr.testing;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.Message;
import io.opentmr.tmr.backend.PeerLink;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * What the network between a TMR node and one backend does to the node's links, as a test sets it: up,
 * cut (connections closed, reconnects refused), frozen (requests reach the backend, answers are withheld
 * until {@link #thaw()}), and answers delayed by a random time in a range, so answers of one link overtake
 * each other and those of the other links. The delays come from a seeded {@link Random}: the same seed
 * draws the same delays (the scheduling threads still decide the exact interleaving).
 *
 * <p>Every link the node opens to this backend goes through {@link #wrap}; a test holds this object and
 * changes it while the node runs.
 */
public final class LinkControl {

    private final int backend;
    private final ScheduledExecutorService scheduler;
    private final Random random;
    private final List<PeerLink> links = new ArrayList<>();
    private final List<Runnable> withheld = new ArrayList<>();
    private boolean cut;
    private boolean frozen;
    /** While frozen, the requests whose answers are withheld (all of them unless a test chose some). */
    private java.util.function.Predicate<Message> freezing = request -> true;
    private long minDelayNanos;
    private long maxDelayNanos;
    private long answersDelivered;

    LinkControl(int backend, ScheduledExecutorService scheduler, long seed) {
        this.backend = backend;
        this.scheduler = scheduler;
        this.random = new Random(seed);
    }

    /** Closes every open link to the backend and refuses new ones until {@link #restore()}. */
    public void cut() {
        List<PeerLink> closing;
        synchronized (this) {
            cut = true;
            closing = new ArrayList<>(links);
            links.clear();
        }
        closing.forEach(PeerLink::close);
    }

    /** Answers of this backend are withheld (requests still reach it) until {@link #thaw()}. */
    public synchronized void freeze() {
        freeze(request -> true);
    }

    /**
     * Answers to the requests {@code which} accepts are withheld (those requests still reach the backend) until
     * {@link #thaw()}; other answers pass, so that the lease's renewals go on.
     */
    public synchronized void freeze(java.util.function.Predicate<Message> which) {
        freezing = which;
        frozen = true;
    }

    /** Delivers the withheld answers in the order they arrived, and answers pass again. */
    public void thaw() {
        List<Runnable> release;
        synchronized (this) {
            frozen = false;
            release = new ArrayList<>(withheld);
            withheld.clear();
        }
        release.forEach(Runnable::run);
    }

    /** Up again: not cut, not frozen (withheld answers delivered), no delay. */
    public void restore() {
        synchronized (this) {
            cut = false;
            minDelayNanos = 0;
            maxDelayNanos = 0;
        }
        thaw();
    }

    /** Every answer from now on arrives after a delay drawn uniformly from {@code [min, max]}. */
    public synchronized void delay(Duration min, Duration max) {
        if (min.isNegative() || max.compareTo(min) < 0) {
            throw new IllegalArgumentException("delay range [" + min + ", " + max + "]");
        }
        minDelayNanos = min.toNanos();
        maxDelayNanos = max.toNanos();
    }

    public synchronized boolean isCut() {
        return cut;
    }

    /** Answers held back by a freeze, not yet delivered. */
    public synchronized int withheldAnswers() {
        return withheld.size();
    }

    /** Answers (and failures) passed on to the node so far, delayed or not. */
    public synchronized long answersDelivered() {
        return answersDelivered;
    }

    /** The link as the node sees it, or null when the backend is cut off (the connect is refused). */
    synchronized PeerLink wrap(PeerLink real) {
        if (cut) {
            return null;
        }
        PeerLink link = new ControlledLink(real);
        links.add(link);
        return link;
    }

    private synchronized void forget(PeerLink link) {
        links.remove(link);
    }

    /** Decides, at the moment an answer arrives, when the node gets it. */
    private void pass(Message request, Runnable deliver) {
        long delay;
        synchronized (this) {
            if (frozen && freezing.test(request)) {
                withheld.add(deliver);
                return;
            }
            delay = maxDelayNanos == 0 ? 0
                    : minDelayNanos + (long) (random.nextDouble() * (maxDelayNanos - minDelayNanos));
        }
        if (delay == 0) {
            deliver.run();
        } else {
            scheduler.schedule(deliver, delay, TimeUnit.NANOSECONDS);
        }
    }

    private final class ControlledLink implements PeerLink {

        private final PeerLink real;

        ControlledLink(PeerLink real) {
            this.real = real;
            real.closed().whenComplete((done, failure) -> forget(this));
        }

        @Override
        public CompletionStage<Message> request(Message request) {
            synchronized (LinkControl.this) {
                if (cut) {
                    return CompletableFuture.failedFuture(new CmFailure(CmError.NETWORK_FAULT,
                            "backend " + (backend + 1) + " is cut off by the test"));
                }
            }
            CompletableFuture<Message> answer = new CompletableFuture<>();
            real.request(request).whenComplete((reply, failure) -> pass(request, () -> {
                synchronized (LinkControl.this) {
                    answersDelivered++;
                }
                if (failure != null) {
                    answer.completeExceptionally(failure);
                } else {
                    answer.complete(reply);
                }
            }));
            return answer;
        }

        @Override
        public CompletionStage<Void> closed() {
            return real.closed();
        }

        @Override
        public String backendName() {
            return real.backendName();
        }

        @Override
        public void close() {
            real.close();
        }
    }
}
