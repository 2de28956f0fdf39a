package io.opentmr.tmr;

import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.backend.BackendWatcher;
import io.opentmr.tmr.license.TmrLicense;
import java.util.BitSet;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The quorums of one virtual container: from the backend watchers' reports (it spawns them as its children)
 * it keeps, per TMR license key, which copies count ({@link Quorum}, the rule), and after every report tells
 * its {@link VirtualContainer} the whole {@link View}: the group's CmActId, the backends inventoried, and for
 * every license the copies that count and the product item they agree on. The container journals new keys,
 * spawns their licenses and hands each license its {@link TmrLicense.Copies}; it is the licenses' parent and
 * holds their references, so the view goes to it and nothing flows back here.
 *
 * <p>The whole view (tens of licenses) is sent every time rather than changes only: a container restarted
 * from its journal has the complete picture again with the next inventory.
 */
public final class Quorums extends AbstractBehavior<Quorums.Command> {

    private static final Logger LOG = LoggerFactory.getLogger(Quorums.class);
    private static final Logger INTEGRITY = LoggerFactory.getLogger("opentmr.integrity");

    /** Orders license keys as LIST shows them: by firm, product, TMR-Id. */
    public static final Comparator<LicenseKey> ORDER = Comparator.comparingLong(LicenseKey::firmCode)
            .thenComparingLong(LicenseKey::productCode).thenComparingLong(LicenseKey::tmrId);

    public sealed interface Command {
    }

    public record Reported(BackendWatcher.Report report) implements Command {
    }

    /** How each backend looks from its last report (management HTTP). */
    public record GetBackends(ActorRef<Backends> replyTo) implements Command {
    }

    /**
     * One backend as its watcher last reported it.
     *
     * @param name      the server name from its last inventory; null before any
     * @param container its container of this group (serial and CmActId) from the last inventory; null while it is
     *                  down, not inventoried yet, or of another CmActId
     * @param down      why it was last reported down; null while up
     * @param copies    TMR licenses it holds a copy of now
     * @param differing TMR licenses whose copy on it differs from the agreed one (not counted)
     */
    public record BackendView(int backend, String name, ContainerInfo container, String down, int copies,
                              List<LicenseKey> differing) {
    }

    public record Backends(List<BackendView> backends) {
    }

    /**
     * What the first group's quorums learnt of the backends' containers (after every report): the group's CmActId
     * (0 until decided) and, per backend, the CmActIds of every container its last inventory listed (empty while it
     * is down or not read). {@link NodeGroups} forms the other groups from it.
     */
    public record Discovered(long groupCmActId, List<List<Long>> cmActIds) {
        public Discovered {
            cmActIds = List.copyOf(cmActIds);
        }
    }

    /**
     * What the copies of one license decide now.
     *
     * @param counted the backends whose copy counts
     * @param agreed  the product item two or more copies agree on (what changes with use taken out); null: none
     * @param known   whether any backend holds a copy (a missing quorum answers 130, an unknown license 200)
     * @param units   the majority of the counted copies' units left, -1 when no two agree
     * @param usageStart  when two counted copies started the usage period (epoch ms; 0: not yet, or none)
     * @param usageBehind the counted copies whose usage period started later than that, or not at all
     */
    public record Verdict(LicenseKey key, BitSet counted, ProductInfo agreed, boolean known, long units,
                          long usageStart, BitSet usageBehind) {
        public Verdict {
            counted = (BitSet) counted.clone();
            usageBehind = (BitSet) usageBehind.clone();
        }

        public Verdict(LicenseKey key, BitSet counted, ProductInfo agreed, boolean known, long units) {
            this(key, counted, agreed, known, units, 0, new BitSet());
        }

        @Override
        public BitSet usageBehind() {
            return (BitSet) usageBehind.clone();
        }

        /** Whether the license must hear of the usage period's start: it or the copies behind it changed. */
        boolean changesUsage(Verdict before) {
            return usageStart != 0 && (before == null || before.usageStart != usageStart
                    || !before.usageBehind.equals(usageBehind));
        }

        @Override
        public BitSet counted() {
            return (BitSet) counted.clone();
        }

        public boolean valid() {
            return counted.cardinality() >= 2;
        }

        /** Whether the license must hear of this verdict: what counts differs from what it was told before. */
        boolean changesCopies(Verdict before) {
            return before == null || !before.counted.equals(counted) || !java.util.Objects.equals(before.agreed, agreed);
        }
    }

    /**
     * The group as the backends show it.
     *
     * @param cmActId     the CmActId of the group (0 until containers on two backends share one)
     * @param inventoried the backends whose container of the group was read and is up
     * @param licenses    every license key ever seen, in LIST order
     * @param groupKeys   the container key of each backend's container of the group, 32 bytes each by backend,
     *                    the last one read (zeros for a backend never read): what a borrow ticket's signatures
     *                    are checked against
     */
    public record View(long cmActId, BitSet inventoried, Map<LicenseKey, Verdict> licenses, Bytes groupKeys) {
        public View {
            inventoried = (BitSet) inventoried.clone();
            licenses = Collections.unmodifiableMap(new LinkedHashMap<>(licenses));
        }

        public View(long cmActId, BitSet inventoried, Map<LicenseKey, Verdict> licenses) {
            this(cmActId, inventoried, licenses, Bytes.EMPTY);
        }

        @Override
        public BitSet inventoried() {
            return (BitSet) inventoried.clone();
        }
    }

    private final Serial serial;
    private final ActorRef<VirtualContainer.Counted> container;
    private final ContainerInfo[] containers;
    /** Each backend's containers as its last inventory listed them; null while it is down or not read yet. */
    private final List<List<ContainerInfo>> offered;
    /** Backends told about as holding no container of the group (logged once until that changes). */
    private final boolean[] strayWarned;
    private final String[] names;
    private final byte[] groupKeys;
    private final Map<LicenseKey, Quorum> quorums = new TreeMap<>(ORDER);
    private final String[] downReasons;
    private final java.util.function.Consumer<LicenseKey> integrityWarnings;
    /** Told what the backends list after every report (the first group's quorums); null: nobody. */
    private final java.util.function.Consumer<Discovered> discovered;
    /** Which group (CmActId) took each license key first, shared by the node's groups; null: no other group. */
    private final java.util.concurrent.ConcurrentMap<LicenseKey, Long> owners;
    /** Keys another group owns (warned once each). */
    private final java.util.Set<LicenseKey> elsewhere = new java.util.HashSet<>();
    private long cmActId;

    /**
     * @param watchers the backend watchers, by name, reporting to the given reference (spawned as children)
     */
    public static Behavior<Command> create(Serial serial, int backends, ActorRef<VirtualContainer.Counted> container,
                                           Function<ActorRef<BackendWatcher.Report>,
                                                   Map<String, Behavior<BackendWatcher.Command>>> watchers) {
        return create(serial, backends, container, watchers, key -> { });
    }

    /** @param integrityWarnings told of each license whose copies newly differ (logged on opentmr.integrity) */
    public static Behavior<Command> create(Serial serial, int backends, ActorRef<VirtualContainer.Counted> container,
                                           Function<ActorRef<BackendWatcher.Report>,
                                                   Map<String, Behavior<BackendWatcher.Command>>> watchers,
                                           java.util.function.Consumer<LicenseKey> integrityWarnings) {
        return create(serial, backends, container, watchers, integrityWarnings, 0, null, null);
    }

    /**
     * @param cmActId    the group's CmActId, given (a group {@link NodeGroups} formed); 0: decided here from the
     *                   backends' connection containers (the first group)
     * @param discovered told what the backends list after every report; null: nobody
     * @param owners     which group took each license key first, shared by the node's groups (a key under two
     *                   CmActIds counts in the group that saw it first only); null: this is the only group
     */
    public static Behavior<Command> create(Serial serial, int backends, ActorRef<VirtualContainer.Counted> container,
                                           Function<ActorRef<BackendWatcher.Report>,
                                                   Map<String, Behavior<BackendWatcher.Command>>> watchers,
                                           java.util.function.Consumer<LicenseKey> integrityWarnings, long cmActId,
                                           java.util.function.Consumer<Discovered> discovered,
                                           java.util.concurrent.ConcurrentMap<LicenseKey, Long> owners) {
        return Behaviors.setup(context -> {
            Quorums quorums = new Quorums(context, serial, backends, container, integrityWarnings, cmActId,
                    discovered, owners);
            ActorRef<BackendWatcher.Report> reports = context.messageAdapter(BackendWatcher.Report.class,
                    Reported::new);
            watchers.apply(reports).forEach((name, watcher) -> context.spawn(watcher, name, BackendWatcher.PROPS));
            return quorums;
        });
    }

    private Quorums(ActorContext<Command> context, Serial serial, int backends,
                    ActorRef<VirtualContainer.Counted> container,
                    java.util.function.Consumer<LicenseKey> integrityWarnings, long cmActId,
                    java.util.function.Consumer<Discovered> discovered,
                    java.util.concurrent.ConcurrentMap<LicenseKey, Long> owners) {
        super(context);
        this.owners = owners;
        this.cmActId = cmActId;
        this.discovered = discovered;
        this.integrityWarnings = integrityWarnings;
        this.downReasons = new String[backends];
        this.serial = serial;
        this.container = container;
        this.containers = new ContainerInfo[backends];
        this.offered = new java.util.ArrayList<>(Collections.nCopies(backends, null));
        this.strayWarned = new boolean[backends];
        this.names = new String[backends];
        this.groupKeys = new byte[32 * backends];
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Reported.class, reported -> onReport(reported.report()))
                .onMessage(GetBackends.class, get -> {
                    List<BackendView> views = new java.util.ArrayList<>(containers.length);
                    for (int b = 0; b < containers.length; b++) {
                        int copies = 0;
                        List<LicenseKey> differing = new java.util.ArrayList<>();
                        for (Quorum quorum : quorums.values()) {
                            copies += quorum.holds(b) ? 1 : 0;
                            if (quorum.conflicting().get(b)) {
                                differing.add(quorum.key());
                            }
                        }
                        views.add(new BackendView(b, names[b], containers[b], downReasons[b], copies, differing));
                    }
                    get.replyTo().tell(new Backends(views));
                    return this;
                })
                .build();
    }

    private Behavior<Command> onReport(BackendWatcher.Report report) {
        int backend = report.backend();
        if (report instanceof BackendWatcher.Inventory inventory) {
            names[backend] = inventory.name();
            offered.set(backend, List.copyOf(inventory.containers()));
            downReasons[backend] = null;
        } else {
            offered.set(backend, null);
            downReasons[backend] = report instanceof BackendWatcher.Down down ? down.reason() : "down";
        }
        if (cmActId == 0) {
            decideGroup();
        }
        for (int b = 0; b < containers.length; b++) {
            containers[b] = groupContainer(b);
            // Kept while the backend is down: a borrow ticket it signed still names its key.
            if (containers[b] != null && containers[b].publicKey().length() == 32) {
                System.arraycopy(containers[b].publicKey().toArray(), 0, groupKeys, 32 * b, 32);
            }
            List<ContainerInfo> listed = offered.get(b);
            boolean stray = cmActId != 0 && listed != null && !listed.isEmpty() && containers[b] == null;
            if (stray && !strayWarned[b]) {
                LOG.warn("Backend {} ({}): the node's connection reaches its container of CmActId {}, not {}, the "
                        + "group's (it holds CmActId(s) {}): its copies are not counted in virtual container {}", b + 1,
                        names[b], listed.get(0).cmActId(), cmActId, listed.stream().map(ContainerInfo::cmActId)
                        .distinct().toList(), serial);
            }
            strayWarned[b] = stray;
        }
        // Every backend's copies, not only the reporting one's: the group decided now makes earlier ones count.
        List<Map<LicenseKey, ProductInfo>> held = new java.util.ArrayList<>(containers.length);
        for (ContainerInfo container : containers) {
            Map<LicenseKey, ProductInfo> copies = new HashMap<>();
            if (container != null) {
                for (ProductInfo product : container.products()) {
                    if (product.tmrId() != 0) {
                        copies.put(new LicenseKey(product.firmCode(), product.productCode(), product.tmrId()),
                                product);
                    }
                }
            }
            if (owners != null) {
                // A key another group took first is not this group's: one license actor per persistence id.
                copies.keySet().removeIf(key -> {
                    Long owner = owners.putIfAbsent(key, cmActId);
                    boolean other = owner != null && owner != cmActId;
                    if (other && elsewhere.add(key)) {
                        INTEGRITY.warn("TMR license {} is held in the containers of CmActId {} and of CmActId {}: it "
                                + "counts in the virtual container of CmActId {} only", key, cmActId, owner, owner);
                    }
                    return other;
                });
            }
            copies.keySet().forEach(key -> quorums.computeIfAbsent(key, k -> new Quorum(k, containers.length)));
            held.add(copies);
        }
        Map<LicenseKey, Verdict> verdicts = new LinkedHashMap<>();
        for (Quorum quorum : quorums.values()) {
            BitSet differingBefore = quorum.conflicting();
            boolean validBefore = quorum.valid();
            for (int b = 0; b < containers.length; b++) {
                quorum.update(b, held.get(b).get(quorum.key()));
            }
            BitSet differing = quorum.conflicting();
            if (!differing.equals(differingBefore) && !differing.isEmpty()) {
                integrityWarnings.accept(quorum.key());
                INTEGRITY.warn("TMR license {}: the copy on backend(s) {} differs from the others and is not counted "
                        + "({})", quorum.key(), TmrLicense.indices(differing), quorum.agreed().isEmpty()
                        ? "no two copies agree" : "agreed: quantity " + quorum.agreed().get().quantity());
            }
            if (validBefore != quorum.valid()) {
                LOG.info("TMR license {} {} in virtual container {} ({} counted copies)", quorum.key(),
                        quorum.valid() ? "is available" : "is withdrawn", serial, quorum.counted().cardinality());
            }
            verdicts.put(quorum.key(), new Verdict(quorum.key(), quorum.counted(), quorum.agreed().orElse(null),
                    quorum.known(), quorum.majorityUnits(), quorum.agreedUsageStart(), quorum.usageBehind()));
        }
        BitSet inventoried = new BitSet(containers.length);
        for (int i = 0; i < containers.length; i++) {
            if (containers[i] != null) {
                inventoried.set(i);
            }
        }
        container.tell(new VirtualContainer.Counted(new View(cmActId, inventoried, verdicts, Bytes.of(groupKeys.clone()))));
        if (discovered != null) {
            List<List<Long>> listed = new java.util.ArrayList<>(offered.size());
            for (List<ContainerInfo> list : offered) {
                listed.add(list == null ? List.of() : list.stream().map(ContainerInfo::cmActId).distinct().toList());
            }
            discovered.accept(new Discovered(cmActId, listed));
        }
        return this;
    }

    /**
     * Decides the group's CmActId: one that containers on two or more backends share (several: the lowest, logged).
     * Until two do, no backend's container is the group's, so a backend that answers first with a container of
     * another CmActId does not make its own the group. Once decided it stays for the life of these quorums.
     */
    private void decideGroup() {
        Map<Long, Integer> backendsOf = new TreeMap<>();
        for (List<ContainerInfo> list : offered) {
            if (list != null && !list.isEmpty()) {
                // The container the node's connection reaches: an inventory of every container lists it first.
                backendsOf.merge(list.get(0).cmActId(), 1, Integer::sum);
            }
        }
        List<Long> shared = backendsOf.entrySet().stream().filter(e -> e.getValue() >= 2).map(Map.Entry::getKey)
                .toList();
        if (shared.isEmpty()) {
            return;
        }
        cmActId = shared.get(0);
        if (shared.size() > 1) {
            LOG.warn("The backends hold containers of CmActIds {}; virtual container {} joins those of CmActId {} "
                    + "only", shared, serial, cmActId);
        } else {
            LOG.info("Virtual container {} joins the backends' containers of CmActId {}", serial, cmActId);
        }
    }

    /**
     * A backend's container of this group, or null: down, not read, or the node's connection reaches a container of
     * another CmActId. Only that container counts (an inventory of every container lists it first): the group's
     * writes go to it.
     */
    private ContainerInfo groupContainer(int backend) {
        List<ContainerInfo> listed = offered.get(backend);
        if (cmActId == 0 || listed == null || listed.isEmpty()) {
            return null;
        }
        return listed.get(0).cmActId() == cmActId ? listed.get(0) : null;
    }
}
