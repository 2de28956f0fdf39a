package io.opentmr.tmr;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.backend.BackendWatcher;
import io.opentmr.tmr.backend.PeerGroup;
import io.opentmr.tmr.license.TmrLicense;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The virtual container {@code 131-n} of one TMR group (the containers of the three backends that share a
 * CmActId): it counts the copies of every TMR license ({@link Quorum}) and tells each {@link TmrLicense}
 * which copies count, lists the licenses with two or more usable copies, routes accesses to their license
 * and handle requests of other sessions (RESUME, a repeated RELEASE) to the license that holds the handle,
 * and lists a backend's allocations for the re-syncs its licenses ask for.
 *
 * <p>It also decides when the node serves ({@link NodeStatus}): only while it holds the lease certificate,
 * and only once, since it (re)gained it, every license recovered its journal and re-synced two or more
 * backends. Until then clients are told NOT_ACTIVE and come back.
 */
public final class VirtualContainer extends AbstractBehavior<VirtualContainer.Command> {

    private static final Logger LOG = LoggerFactory.getLogger(VirtualContainer.class);
    private static final Logger INTEGRITY = LoggerFactory.getLogger("opentmr.integrity");
    /** Allocations asked for per LIST_ALLOCATIONS page: well inside a frame. */
    static final int PAGE = 1000;
    /** Closed handles remembered, so that a RELEASE repeated on another connection still finds its license. */
    static final int CLOSED_MEMORY = 8192;

    public sealed interface Command {
    }

    public record Reported(BackendWatcher.Report report) implements Command {
    }

    /** The virtual container as LIST_CONTAINERS shows it. */
    public record Listed(ContainerInfo container) {
    }

    public record ListContainers(ActorRef<Listed> replyTo) implements Command {
    }

    public record Access(long firmCode, long productCode, long featureBits, AccessMode mode, TmrLicense.Client client,
                         long requestId, ActorRef<TmrLicense.Reply> replyTo) implements Command {
    }

    /** A request for a handle the asking session does not know the license of (RESUME, RELEASE). */
    public record ToHandle(long handleId, TmrLicense.Command command, ActorRef<TmrLicense.Reply> replyTo)
            implements Command {
    }

    record SeatsChanged(LicenseKey key, long inUse, int handles, int usable) implements Command {
    }

    record HandleOpened(LicenseKey key, long handleId) implements Command {
    }

    record HandleClosed(LicenseKey key, long handleId) implements Command {
    }

    record NeedsResync(LicenseKey key, int backend) implements Command {
    }

    record LicenseRecovered(LicenseKey key, ActorRef<TmrLicense.Command> license) implements Command {
    }

    private record StartResync(int backend) implements Command {
    }

    private record Page(int backend, long generation, Message reply, Throwable failure) implements Command {
    }

    private enum CheckLease implements Command {
        INSTANCE
    }

    /** How a license is made: its key, and the parent it reports to. */
    @FunctionalInterface
    public interface LicenseFactory {
        Behavior<TmrLicense.Command> create(LicenseKey key, TmrLicense.Parent parent);
    }

    private final Serial serial;
    private final PeerGroup peers;
    private final LicenseFactory licenseFactory;
    private final TimerScheduler<Command> timers;
    private final NodeStatus status;
    private final Clock clock;
    private final Duration reconcileTimeout;
    private final TmrLicense.Parent parent;
    private final ContainerInfo[] containers;
    private final String[] names;
    private final Map<LicenseKey, Quorum> quorums = new TreeMap<>(VirtualContainer::compare);
    private final Map<LicenseKey, ActorRef<TmrLicense.Command>> licenses = new HashMap<>();
    private final Set<LicenseKey> recovered = new HashSet<>();
    private final Map<LicenseKey, Long> inUse = new HashMap<>();
    /** Backends each license can use now (counted and re-synced): it is listed and served with 2 or more. */
    private final Map<LicenseKey, Integer> usable = new HashMap<>();
    private final Map<Long, LicenseKey> handles = new HashMap<>();
    private final LinkedHashMap<Long, LicenseKey> closed = new LinkedHashMap<>();
    private final long[] resyncGeneration;
    private final List<List<Allocation>> resyncPages = new ArrayList<>();
    private final boolean[] resyncRunning;
    /** Licenses waiting for a re-sync of each backend. */
    private final List<Set<LicenseKey>> wanting = new ArrayList<>();
    private long cmActId;
    private boolean leaseHeld;
    private long leaseSince;

    /**
     * @param licenses the behavior of the license of a key (spawned as a child when the key is first seen)
     * @param watchers the backend watchers, by name, reporting to the given reference (spawned as children)
     */
    public static Behavior<Command> create(Serial serial, PeerGroup peers, NodeStatus status, Clock clock,
                                           Duration heartbeat, Duration reconcileTimeout, LicenseFactory licenses,
                                           Function<ActorRef<BackendWatcher.Report>,
                                                   Map<String, Behavior<BackendWatcher.Command>>> watchers) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers -> {
            VirtualContainer container = new VirtualContainer(context, timers, serial, peers, status, clock,
                    reconcileTimeout, licenses);
            ActorRef<BackendWatcher.Report> reports = context.messageAdapter(BackendWatcher.Report.class,
                    Reported::new);
            watchers.apply(reports).forEach((name, watcher) -> context.spawn(watcher, name));
            timers.startTimerWithFixedDelay(CheckLease.INSTANCE, heartbeat);
            return container;
        }));
    }

    private VirtualContainer(ActorContext<Command> context, TimerScheduler<Command> timers, Serial serial,
                             PeerGroup peers, NodeStatus status, Clock clock, Duration reconcileTimeout,
                             LicenseFactory licenseFactory) {
        super(context);
        this.timers = timers;
        this.serial = serial;
        this.peers = peers;
        this.status = status;
        this.clock = clock;
        this.reconcileTimeout = reconcileTimeout;
        this.licenseFactory = licenseFactory;
        int backends = peers.size();
        this.containers = new ContainerInfo[backends];
        this.names = new String[backends];
        this.resyncGeneration = new long[backends];
        this.resyncRunning = new boolean[backends];
        for (int i = 0; i < backends; i++) {
            resyncPages.add(new ArrayList<>());
            wanting.add(new HashSet<>());
        }
        ActorRef<Command> self = context.getSelf();
        this.parent = new TmrLicense.Parent() {
            @Override
            public void seatsChanged(LicenseKey key, long seats, int count, int usableNow) {
                self.tell(new SeatsChanged(key, seats, count, usableNow));
            }

            @Override
            public void opened(LicenseKey key, io.opentmr.tmr.license.Seat seat) {
                self.tell(new HandleOpened(key, seat.handleId()));
            }

            @Override
            public void closed(LicenseKey key, long handleId) {
                self.tell(new HandleClosed(key, handleId));
            }

            @Override
            public void needsResync(LicenseKey key, int backend) {
                self.tell(new NeedsResync(key, backend));
            }

            @Override
            public void recovered(LicenseKey key, ActorRef<TmrLicense.Command> license) {
                self.tell(new LicenseRecovered(key, license));
            }
        };
    }

    private static int compare(LicenseKey a, LicenseKey b) {
        int byFirm = Long.compare(a.firmCode(), b.firmCode());
        if (byFirm != 0) {
            return byFirm;
        }
        int byProduct = Long.compare(a.productCode(), b.productCode());
        return byProduct != 0 ? byProduct : Long.compare(a.tmrId(), b.tmrId());
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Reported.class, reported -> onReport(reported.report()))
                .onMessage(ListContainers.class, this::onList)
                .onMessage(Access.class, this::onAccess)
                .onMessage(ToHandle.class, this::onToHandle)
                .onMessage(SeatsChanged.class, changed -> {
                    inUse.put(changed.key(), changed.inUse());
                    usable.put(changed.key(), changed.usable());
                    checkServing();
                    return this;
                })
                .onMessage(HandleOpened.class, opened -> {
                    handles.put(opened.handleId(), opened.key());
                    closed.remove(opened.handleId());
                    return this;
                })
                .onMessage(HandleClosed.class, gone -> {
                    handles.remove(gone.handleId());
                    closed.put(gone.handleId(), gone.key());
                    if (closed.size() > CLOSED_MEMORY) {
                        closed.remove(closed.keySet().iterator().next());
                    }
                    return this;
                })
                .onMessage(NeedsResync.class, needs -> {
                    wanting.get(needs.backend()).add(needs.key());
                    timers.startSingleTimer("resync-" + needs.backend(), new StartResync(needs.backend()),
                            Duration.ofMillis(200));
                    return this;
                })
                .onMessage(LicenseRecovered.class, this::onRecovered)
                .onMessage(StartResync.class, start -> {
                    startResync(start.backend());
                    return this;
                })
                .onMessage(Page.class, this::onPage)
                .onMessage(CheckLease.class, check -> {
                    checkServing();
                    return this;
                })
                .build();
    }

    // --- serving ------------------------------------------------------------------------------------------

    /**
     * The node serves while it holds the lease, once every license re-synced since it was gained. When the
     * lease comes (back), every license re-syncs every backend first: another node may have written meanwhile.
     */
    private void checkServing() {
        boolean held = peers.holdsLease();
        if (held && !leaseHeld) {
            leaseHeld = true;
            leaseSince = clock.millis();
            LOG.info("The node holds the lease (epoch {}); reconciling {} license(s) with the backends before it "
                    + "serves", peers.epoch(), licenses.size());
            usable.replaceAll((key, count) -> 0);
            licenses.values().forEach(license -> license.tell(TmrLicense.ResyncAll.INSTANCE));
        } else if (!held && leaseHeld) {
            leaseHeld = false;
            if (status.reconciled()) {
                LOG.warn("The node lost its lease certificate: it serves no client until it holds the lease again "
                        + "and has re-synced every license");
            }
            status.reconciled(false);
        }
        if (!held || status.reconciled()) {
            return;
        }
        int inventoried = 0;
        for (ContainerInfo container : containers) {
            inventoried += container != null ? 1 : 0;
        }
        List<LicenseKey> behind = new ArrayList<>();
        for (Quorum quorum : quorums.values()) {
            LicenseKey key = quorum.key();
            if (!recovered.contains(key) || quorum.valid() && usable.getOrDefault(key, 0) < 2) {
                behind.add(key);
            }
        }
        long waited = clock.millis() - leaseSince;
        if (inventoried >= 2 && behind.isEmpty()) {
            status.reconciled(true);
            LOG.info("Virtual container {} serves clients: {} license(s) reconciled with the backends in {} ms",
                    serial, quorums.size(), waited);
        } else if (waited >= reconcileTimeout.toMillis()) {
            status.reconciled(true);
            LOG.warn("Virtual container {} serves clients after {} ms although license(s) {} are not reconciled yet "
                    + "({} backend(s) inventoried); they answer 130 until they are", serial, waited, behind, inventoried);
        }
    }

    private Behavior<Command> onRecovered(LicenseRecovered recovered) {
        this.recovered.add(recovered.key());
        Quorum quorum = quorums.get(recovered.key());
        if (quorum != null) {
            // Also after a restart of the license: it forgot what counts, and re-syncs every backend.
            recovered.license().tell(new TmrLicense.Copies(quorum.counted(), quorum.agreed().orElse(null)));
            recovered.license().tell(TmrLicense.ResyncAll.INSTANCE);
        }
        checkServing();
        return this;
    }

    // --- backends and copies ------------------------------------------------------------------------------

    private Behavior<Command> onReport(BackendWatcher.Report report) {
        int backend = report.backend();
        if (report instanceof BackendWatcher.Inventory inventory) {
            names[backend] = inventory.name();
            containers[backend] = groupContainer(backend, inventory.containers());
        } else {
            containers[backend] = null;
            resyncGeneration[backend]++;
            resyncRunning[backend] = false;
        }
        Map<LicenseKey, ProductInfo> held = new HashMap<>();
        if (containers[backend] != null) {
            for (ProductInfo product : containers[backend].products()) {
                if (product.tmrId() != 0) {
                    held.put(new LicenseKey(product.firmCode(), product.productCode(), product.tmrId()), product);
                }
            }
        }
        for (LicenseKey key : held.keySet()) {
            quorums.computeIfAbsent(key, k -> new Quorum(k, peers.size()));
        }
        for (Quorum quorum : quorums.values()) {
            BitSet differingBefore = quorum.differing();
            boolean validBefore = quorum.valid();
            BitSet countedBefore = quorum.counted();
            quorum.update(backend, held.get(quorum.key()));
            BitSet differing = quorum.differing();
            if (!differing.equals(differingBefore) && !differing.isEmpty()) {
                INTEGRITY.warn("TMR license {}: the copy on backend(s) {} differs from the others and is not counted "
                        + "({})", quorum.key(), TmrLicense.indices(differing), quorum.agreed().isEmpty()
                        ? "no two copies agree" : "agreed: quantity " + quorum.agreed().get().quantity());
            }
            if (validBefore != quorum.valid()) {
                LOG.info("TMR license {} {} in virtual container {} ({} counted copies)", quorum.key(),
                        quorum.valid() ? "is available" : "is withdrawn", serial, quorum.counted().cardinality());
            }
            boolean known = licenses.containsKey(quorum.key());
            if (!known || !countedBefore.equals(quorum.counted()) || validBefore != quorum.valid()) {
                license(quorum.key()).tell(new TmrLicense.Copies(quorum.counted(), quorum.agreed().orElse(null)));
            }
        }
        checkServing();
        return this;
    }

    /** A backend's container of this group: the CmActId two or more backends share. */
    private ContainerInfo groupContainer(int backend, List<ContainerInfo> offered) {
        if (offered.isEmpty()) {
            return null;
        }
        ContainerInfo container = offered.get(0);
        if (cmActId == 0) {
            cmActId = container.cmActId();
        } else if (container.cmActId() != cmActId) {
            LOG.warn("Backend {} ({}) holds CmActId {}, not the group's {}: its copies are not counted", backend + 1,
                    names[backend], container.cmActId(), cmActId);
            return null;
        }
        return container;
    }

    private ActorRef<TmrLicense.Command> license(LicenseKey key) {
        return licenses.computeIfAbsent(key, k -> getContext().spawn(licenseFactory.create(k, parent),
                "license-" + k.firmCode() + "-" + k.productCode() + "-" + k.tmrId()));
    }

    // --- clients ----------------------------------------------------------------------------------------

    private Behavior<Command> onList(ListContainers list) {
        List<ProductInfo> products = new ArrayList<>();
        for (Quorum quorum : quorums.values()) {
            if (quorum.valid() && usable.getOrDefault(quorum.key(), 0) >= 2) {
                ProductInfo agreed = quorum.agreed().orElseThrow();
                long units = Math.max(0, quorum.majorityUnits());
                products.add(new ProductInfo(agreed.firmCode(), agreed.productCode(), agreed.featureMap(),
                        agreed.text(), agreed.quantity(), inUse.getOrDefault(quorum.key(), 0L), agreed.tmrId(),
                        agreed.hasUnitCounter(), units, agreed.expiresAtMillis(), agreed.activatesAtMillis(),
                        agreed.usagePeriodSeconds(), agreed.usageStartedAtMillis(), agreed.borrowMaxSeconds()));
            }
        }
        list.replyTo().tell(new Listed(new ContainerInfo(serial, cmActId, Bytes.of(new byte[0]), products)));
        return this;
    }

    private Behavior<Command> onAccess(Access access) {
        boolean known = false;
        for (Quorum quorum : quorums.values()) {
            LicenseKey key = quorum.key();
            if (key.firmCode() != access.firmCode() || key.productCode() != access.productCode() || !quorum.known()) {
                continue;
            }
            known = true;
            if (!quorum.valid()) {
                continue;
            }
            license(key).tell(new TmrLicense.Access(access.featureBits(), access.mode(), access.client(),
                    access.requestId(), access.replyTo()));
            return this;
        }
        access.replyTo().tell(known
                ? new TmrLicense.Refused(CmError.REDUNDANCY_SERVER_MISSING, "TMR license " + access.firmCode() + ":"
                        + access.productCode() + " has fewer than 2 available copies")
                : new TmrLicense.Refused(CmError.ENTRY_NOT_FOUND, "virtual container " + serial + " holds no license "
                        + access.firmCode() + ":" + access.productCode()));
        return this;
    }

    private Behavior<Command> onToHandle(ToHandle request) {
        LicenseKey key = handles.get(request.handleId());
        if (key == null) {
            key = closed.get(request.handleId());
        }
        ActorRef<TmrLicense.Command> license = key == null ? null : licenses.get(key);
        if (license == null) {
            request.replyTo().tell(new TmrLicense.Refused(CmError.INVALID_HANDLE, "handle "
                    + Long.toUnsignedString(request.handleId()) + " is unknown, released or reclaimed"));
        } else {
            license.tell(request.command());
        }
        return this;
    }

    // --- re-syncs ------------------------------------------------------------------------------------------

    private void startResync(int backend) {
        if (containers[backend] == null || resyncRunning[backend] || wanting.get(backend).isEmpty()) {
            return;
        }
        resyncRunning[backend] = true;
        long generation = ++resyncGeneration[backend];
        resyncPages.set(backend, new ArrayList<>());
        askPage(backend, generation, 0);
    }

    private void askPage(int backend, long generation, long after) {
        getContext().pipeToSelf(peers.call(backend, certificate -> new Message.ListAllocations(after, PAGE)),
                (reply, failure) -> new Page(backend, generation, reply, failure));
    }

    private Behavior<Command> onPage(Page page) {
        int backend = page.backend();
        if (page.generation() != resyncGeneration[backend]) {
            return this;
        }
        if (page.failure() != null || !(page.reply() instanceof Message.AllocationList list)) {
            resyncRunning[backend] = false;
            LOG.warn("Cannot list the allocations of backend {} for its re-sync; trying again: {}", backend + 1,
                    page.failure() == null ? page.reply() : page.failure().toString());
            timers.startSingleTimer("resync-" + backend, new StartResync(backend), Duration.ofSeconds(1));
            return this;
        }
        List<Allocation> collected = resyncPages.get(backend);
        collected.addAll(list.allocations());
        if (list.more() && !list.allocations().isEmpty()) {
            askPage(backend, page.generation(), list.allocations().get(list.allocations().size() - 1).tmrHandleId());
            return this;
        }
        resyncRunning[backend] = false;
        Map<LicenseKey, List<Allocation>> byKey = new HashMap<>();
        for (Allocation allocation : collected) {
            byKey.computeIfAbsent(allocation.key(), k -> new ArrayList<>()).add(allocation);
        }
        Set<LicenseKey> asked = wanting.get(backend);
        wanting.set(backend, new HashSet<>());
        for (LicenseKey key : asked) {
            ActorRef<TmrLicense.Command> license = licenses.get(key);
            if (license != null) {
                license.tell(new TmrLicense.Resync(backend, byKey.getOrDefault(key, List.of())));
            }
        }
        resyncPages.set(backend, new ArrayList<>());
        return this;
    }
}
