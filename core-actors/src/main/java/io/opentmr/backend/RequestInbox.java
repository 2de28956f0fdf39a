package io.opentmr.backend;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The way into the container for the sessions: requests wait here, and the container takes everything that
 * came while it wrote its previous batch as its next batch ({@link Container.Drain}). A session wakes the
 * container only when it sleeps, so a busy container is woken once per group commit and not once per request:
 * on a two-core machine every actor message to an idle actor costs a thread hand-off, and a hand-off per
 * request cost more than the container's own work. This is a mailbox with one difference that an actor's
 * cannot have: the consumer takes all of it at once, between two journal writes.
 *
 * <p>Bounded: beyond {@code maxQueued} waiting requests, a request is refused with 309 at once.
 *
 * <p>A lease renewal does not wait here: it needs no journal write, and it is a TMR node's heartbeat, whose grant
 * runs out after its TTL (2 s by default). Behind a queue of writes, each batch waiting for its fsync, renewals came
 * too late on a loaded machine and the active node lost its lease while it was alive and connected. So once a
 * container has recovered it lends this inbox its {@linkplain #leaseDesk(Predicate) lease desk}, which decides
 * renewals (and the standby's refused acquisitions) at once on the submitting thread (the lease table is shared
 * with the container, see {@link LeaseTable}).
 *
 * <p>Thread-safe: sessions submit from their event loops; only the container attached now takes.
 */
public final class RequestInbox {

    private final ConcurrentLinkedQueue<Container.Request> queue = new ConcurrentLinkedQueue<>();
    private final AtomicInteger size = new AtomicInteger();
    /** True while the container will look at the queue again without being told: it is busy or already told. */
    private final AtomicBoolean awake = new AtomicBoolean(true);
    private final int maxQueued;
    private final int maxBatch;
    /** The container of the moment; null while a new one is being started. */
    private volatile ActorRef<Container.Command> container;
    /**
     * Decides a lease request at once when it can (the recovered container of the moment's); null: every request
     * waits in the queue.
     */
    private volatile Predicate<Container.Request> leaseDesk;

    /**
     * @param maxQueued requests waiting at most; more are refused with 309
     * @param maxBatch  requests the container takes for one journal write at most
     */
    public RequestInbox(int maxQueued, int maxBatch) {
        if (maxQueued < 1 || maxBatch < 1) {
            throw new IllegalArgumentException("maxQueued and maxBatch must be at least 1");
        }
        this.maxQueued = maxQueued;
        this.maxBatch = maxBatch;
    }

    /** Queues a request for the container, or refuses it with 309 when too many wait. */
    public void submit(Container.Request request) {
        Predicate<Container.Request> desk = leaseDesk;
        if (desk != null && (request instanceof Container.RenewLease || request instanceof Container.AcquireLease)
                && desk.test(request)) {
            return;
        }
        if (size.incrementAndGet() > maxQueued) {
            size.decrementAndGet();
            request.refuse(new CmFailure(CmError.REQUEST_OVERLOAD,
                    "the container has " + maxQueued + " requests waiting; try again"));
            return;
        }
        queue.add(request);
        if (awake.compareAndSet(false, true)) {
            wake();
        }
    }

    /** A session's sign of life, for the container of the moment (none while one is being started). */
    public void tell(Container.Command command) {
        ActorRef<Container.Command> now = container;
        if (now != null) {
            now.tell(command);
        }
    }

    /** The next batch, oldest first: at most {@code maxBatch} requests, none when none wait. */
    List<Container.Request> take() {
        List<Container.Request> batch = new ArrayList<>(Math.min(Math.max(size.get(), 1), maxBatch));
        for (Container.Request next; batch.size() < maxBatch && (next = queue.poll()) != null; ) {
            batch.add(next);
        }
        size.addAndGet(-batch.size());
        return batch;
    }

    /**
     * The container found nothing to take and goes to sleep: the next submit wakes it. True when a request came
     * in between and the container must take again instead.
     */
    boolean sleep() {
        awake.set(false);
        return !queue.isEmpty() && awake.compareAndSet(false, true);
    }

    /** A new container takes over (after its recovery it takes what waits, without being told again). */
    void attach(ActorRef<Container.Command> next) {
        container = next;
        awake.set(true);
        next.tell(new Container.Drain(this));
    }

    /**
     * The recovered container of the moment decides lease requests with {@code desk} from now on, on the threads that
     * submit them; one it does not decide (false) waits in the queue. Only the container attached now lends its desk.
     */
    void leaseDesk(Predicate<Container.Request> desk) {
        leaseDesk = desk;
    }

    /** The container stopped: requests wait for the next one. */
    void detach() {
        leaseDesk = null;
        awake.set(true);
        container = null;
    }

    int waiting() {
        return size.get();
    }

    private void wake() {
        ActorRef<Container.Command> now = container;
        if (now != null) {
            now.tell(new Container.Drain(this));
        }
    }
}
