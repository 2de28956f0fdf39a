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
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
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
 * CmActId): it counts the copies of every TMR license ({@link Quorum}), lists the licenses with two or
 * more counted copies, routes accesses to their {@link TmrLicense}, and re-syncs a backend's allocations
 * when it comes (back). Clients see this container and never the backends' own.
 */
public final class VirtualContainer extends AbstractBehavior<VirtualContainer.Command> {

    private static final Logger LOG = LoggerFactory.getLogger(VirtualContainer.class);
    private static final Logger INTEGRITY = LoggerFactory.getLogger("opentmr.integrity");
    /** Allocations asked for per LIST_ALLOCATIONS page: well inside a frame. */
    static final int PAGE = 1000;

    public sealed interface Command {
    }

    public record Reported(BackendWatcher.Report report) implements Command {
    }

    public record ListContainers(ActorRef<Message> replyTo) implements Command {
    }

    public record Access(long firmCode, long productCode, long featureBits, AccessMode mode, TmrLicense.Client client,
                         ActorRef<Message> replyTo) implements Command {
    }

    /** A command for the license of a key (from a handle). */
    public record ToLicense(LicenseKey key, TmrLicense.Command command) implements Command {
    }

    public record SeatsChanged(LicenseKey key, long inUse, int handles, int usable) implements Command {
    }

    public record NeedsResync(int backend) implements Command {
    }

    private record StartResync(int backend) implements Command {
    }

    private record Page(int backend, long generation, Message reply, Throwable failure) implements Command {
    }

    private final Serial serial;
    private final PeerGroup peers;
    private final java.util.function.Function<LicenseKey, Behavior<TmrLicense.Command>> licenseFactory;
    private final TimerScheduler<Command> timers;
    private final ContainerInfo[] containers = new ContainerInfo[3];
    private final String[] names = new String[3];
    private final Map<LicenseKey, Quorum> quorums = new TreeMap<>(VirtualContainer::compare);
    private final Map<LicenseKey, ActorRef<TmrLicense.Command>> licenses = new HashMap<>();
    private final Map<LicenseKey, Long> inUse = new HashMap<>();
    /** Backends each license can use now (counted and re-synced): it is listed and served with 2 or more. */
    private final Map<LicenseKey, Integer> usable = new HashMap<>();
    private final long[] resyncGeneration = new long[3];
    private final List<List<Allocation>> resyncPages = new ArrayList<>(List.of(new ArrayList<>(), new ArrayList<>(),
            new ArrayList<>()));
    private final boolean[] resyncRunning = new boolean[3];
    private long cmActId;

    /**
     * @param licenses the behavior of the license of a key (spawned as a child when the key is first seen)
     * @param watchers the backend watchers, by name, reporting to the given reference (spawned as children)
     */
    public static Behavior<Command> create(Serial serial, PeerGroup peers,
                                           java.util.function.Function<LicenseKey, Behavior<TmrLicense.Command>> licenses,
                                           java.util.function.Function<ActorRef<BackendWatcher.Report>,
                                                   Map<String, Behavior<BackendWatcher.Command>>> watchers) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers -> {
            VirtualContainer container = new VirtualContainer(context, timers, serial, peers, licenses);
            ActorRef<BackendWatcher.Report> reports = context.messageAdapter(BackendWatcher.Report.class,
                    Reported::new);
            watchers.apply(reports).forEach((name, watcher) -> context.spawn(watcher, name));
            return container;
        }));
    }

    private VirtualContainer(ActorContext<Command> context, TimerScheduler<Command> timers, Serial serial,
                             PeerGroup peers,
                             java.util.function.Function<LicenseKey, Behavior<TmrLicense.Command>> licenseFactory) {
        super(context);
        this.timers = timers;
        this.serial = serial;
        this.peers = peers;
        this.licenseFactory = licenseFactory;
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
                .onMessage(ToLicense.class, this::onToLicense)
                .onMessage(SeatsChanged.class, changed -> {
                    inUse.put(changed.key(), changed.inUse());
                    usable.put(changed.key(), changed.usable());
                    return this;
                })
                .onMessage(NeedsResync.class, needs -> {
                    timers.startSingleTimer("resync-" + needs.backend(), new StartResync(needs.backend()),
                            Duration.ofMillis(500));
                    return this;
                })
                .onMessage(StartResync.class, start -> {
                    startResync(start.backend());
                    return this;
                })
                .onMessage(Page.class, this::onPage)
                .build();
    }

    private Behavior<Command> onReport(BackendWatcher.Report report) {
        int backend = report.backend();
        boolean cameUp = false;
        if (report instanceof BackendWatcher.Inventory inventory) {
            cameUp = containers[backend] == null;
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
            quorums.computeIfAbsent(key, k -> new Quorum(k, 3));
        }
        for (Quorum quorum : quorums.values()) {
            BitSet differingBefore = quorum.differing();
            boolean validBefore = quorum.valid();
            quorum.update(backend, held.get(quorum.key()));
            BitSet differing = quorum.differing();
            if (!differing.equals(differingBefore) && !differing.isEmpty()) {
                INTEGRITY.warn("TMR license {}: the copy on backend(s) {} differs from the others and is not counted "
                        + "({})", quorum.key(), indices(differing), quorum.agreed().isEmpty() ? "no two copies agree"
                        : "agreed: quantity " + quorum.agreed().get().quantity());
            }
            if (validBefore != quorum.valid()) {
                LOG.info("TMR license {} {} in virtual container {} ({} counted copies)", quorum.key(),
                        quorum.valid() ? "is available" : "is withdrawn", serial, quorum.counted().cardinality());
            }
            license(quorum.key()).tell(new TmrLicense.Copies(quorum.counted(),
                    quorum.agreed().orElse(null), quorum.majorityUnits()));
        }
        if (cameUp) {
            startResync(backend);
        }
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
        return licenses.computeIfAbsent(key, k -> getContext().spawn(licenseFactory.apply(k),
                "license-" + k.firmCode() + "-" + k.productCode() + "-" + k.tmrId()));
    }

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
        list.replyTo().tell(new Message.ContainerList(List.of(new ContainerInfo(serial, cmActId, Bytes.of(new byte[0]),
                products))));
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
                    access.replyTo()));
            return this;
        }
        access.replyTo().tell(known
                ? new Message.Error(CmError.REDUNDANCY_SERVER_MISSING, "TMR license " + access.firmCode() + ":"
                        + access.productCode() + " has fewer than 2 available copies")
                : new Message.Error(CmError.ENTRY_NOT_FOUND, "virtual container " + serial + " holds no license "
                        + access.firmCode() + ":" + access.productCode()));
        return this;
    }

    private Behavior<Command> onToLicense(ToLicense forward) {
        license(forward.key()).tell(forward.command());
        return this;
    }

    private void startResync(int backend) {
        if (containers[backend] == null || resyncRunning[backend]) {
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
        for (LicenseKey key : byKey.keySet()) {
            quorums.computeIfAbsent(key, k -> new Quorum(k, 3));
        }
        for (LicenseKey key : quorums.keySet()) {
            license(key).tell(new TmrLicense.Resync(backend, byKey.getOrDefault(key, List.of())));
        }
        resyncPages.set(backend, new ArrayList<>());
        return this;
    }

    private static String indices(BitSet backends) {
        StringBuilder text = new StringBuilder("[");
        for (int i = backends.nextSetBit(0); i >= 0; i = backends.nextSetBit(i + 1)) {
            text.append(text.length() > 1 ? "," : "").append(i + 1);
        }
        return text.append(']').toString();
    }
}
