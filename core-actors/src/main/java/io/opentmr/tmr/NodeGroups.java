package io.opentmr.tmr;

import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.backend.PeerGroup;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
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
 * The node's virtual containers beyond the first (docs/several-containers.md §2): one per CmActId that two or more
 * backends list besides the first group's. The first group's quorums tell it what the backends list
 * ({@link Quorums.Discovered}, from inventories of every container); a CmActId listed by two or more backends
 * becomes a group once, for the life of the node. A group is the first group's pieces over the backends' containers
 * of its CmActId: its own {@link PeerGroup} (links that name the CmActId in PEER_HELLO, its own lease and
 * certificate), its {@link Quorums} with the CmActId given, and its {@link VirtualContainer} with a serial of its own
 * ({@link Parts#serial}, kept).
 *
 * <p>The active role stays the first group's lease: every other group wants its lease exactly while the first
 * group's is held and its container runs, and asks for it at the first group's epoch. Its container runs while the
 * first group's does (a twin's standby runs none); it serves once its own lease is held and its licenses are
 * reconciled, and until then its licenses answer 130 ({@link TmrSession}). A node over backends of one container
 * forms no group: no connection, no request more than before.
 */
public final class NodeGroups extends AbstractBehavior<NodeGroups.Command> {

    private static final Logger LOG = LoggerFactory.getLogger(NodeGroups.class);

    public sealed interface Command {
    }

    /** What the first group's quorums learnt of the backends. */
    public record Discovered(Quorums.Discovered discovered) implements Command {
    }

    private enum Follow implements Command {
        INSTANCE
    }

    private record ViewOf(long cmActId, VirtualContainer.Counted view) implements Command {
    }

    /** How a group's pieces are made (the node's settings, journal, licenses). */
    public interface Parts {
        /** A serial for the group of {@code cmActId}, kept for it; empty when none can be had (logged). */
        Optional<Serial> serial(long cmActId);

        /** The group's connections and lease, not wanted yet. */
        PeerGroup peerGroup();

        /** The group's quorums and backend watchers, whose links name {@code cmActId}. */
        Behavior<Quorums.Command> quorums(Serial serial, long cmActId, PeerGroup peers, NodeStatus status,
                                          ActorRef<VirtualContainer.Counted> views);

        /** The group's virtual container. */
        Behavior<VirtualContainer.Command> container(Serial serial, PeerGroup peers, NodeStatus status);
    }

    /** One group beyond the first. */
    private static final class Group {
        final long cmActId;
        final Serial serial;
        final PeerGroup peers;
        final NodeStatus status;
        ActorRef<VirtualContainer.Command> container;
        VirtualContainer.Counted lastView;

        Group(long cmActId, Serial serial, PeerGroup peers) {
            this.cmActId = cmActId;
            this.serial = serial;
            this.peers = peers;
            this.status = new NodeStatus(peers);
        }
    }

    private final Parts parts;
    private final PeerGroup first;
    private final NodeStatus firstStatus;
    private final TmrNode.ContainerHolder holder;
    private final Map<Long, Group> groups = new TreeMap<>();
    /** CmActIds for which no serial could be had: not tried again. */
    private final Set<Long> refused = new HashSet<>();

    /**
     * @param first       the first group's connections and lease
     * @param firstStatus the first group's status (its licenses: a key it knows counts there only)
     * @param holder      where the first group's running container is, and where the others' are published
     * @param heartbeat   how often the groups' leases follow the first group's
     */
    public static Behavior<Command> create(Parts parts, PeerGroup first, NodeStatus firstStatus,
                                           TmrNode.ContainerHolder holder, Duration heartbeat) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers -> {
            timers.startTimerWithFixedDelay(Follow.INSTANCE, heartbeat);
            return new NodeGroups(context, parts, first, firstStatus, holder);
        }));
    }

    private NodeGroups(ActorContext<Command> context, Parts parts, PeerGroup first, NodeStatus firstStatus,
                       TmrNode.ContainerHolder holder) {
        super(context);
        this.parts = parts;
        this.first = first;
        this.firstStatus = firstStatus;
        this.holder = holder;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Discovered.class, discovered -> onDiscovered(discovered.discovered()))
                .onMessage(ViewOf.class, this::onView)
                .onMessageEquals(Follow.INSTANCE, this::follow)
                .build();
    }

    private Behavior<Command> onDiscovered(Quorums.Discovered discovered) {
        if (discovered.groupCmActId() == 0) {
            // The first group is not decided yet: it takes the CmActId the connections' containers share first.
            return this;
        }
        Map<Long, Integer> backendsOf = new TreeMap<>();
        for (List<Long> listed : discovered.cmActIds()) {
            new HashSet<>(listed).forEach(id -> backendsOf.merge(id, 1, Integer::sum));
        }
        boolean formed = false;
        for (Map.Entry<Long, Integer> entry : backendsOf.entrySet()) {
            long cmActId = entry.getKey();
            if (entry.getValue() < 2 || cmActId == discovered.groupCmActId() || groups.containsKey(cmActId)
                    || refused.contains(cmActId)) {
                continue;
            }
            Optional<Serial> serial = parts.serial(cmActId);
            if (serial.isEmpty()) {
                refused.add(cmActId);
                continue;
            }
            Group group = new Group(cmActId, serial.get(), parts.peerGroup());
            groups.put(cmActId, group);
            holder.expectAlso(cmActId);
            ActorRef<VirtualContainer.Counted> views = getContext().messageAdapter(VirtualContainer.Counted.class,
                    view -> new ViewOf(cmActId, view));
            getContext().spawn(parts.quorums(group.serial, cmActId, group.peers, group.status, views), "quorums-" + cmActId);
            LOG.info("Backends share containers of CmActId {}: virtual container {} serves them ({} backend(s) list "
                    + "it)", cmActId, group.serial, entry.getValue());
            formed = true;
        }
        if (formed) {
            follow();
        }
        holder.discovered(discovered);
        return this;
    }

    private Behavior<Command> onView(ViewOf view) {
        Group group = groups.get(view.cmActId());
        group.lastView = view.view();
        if (group.container != null) {
            group.container.tell(group.lastView);
        }
        return this;
    }

    /**
     * Every group wants its lease exactly while the first group's is held and its container runs, at the first
     * group's epoch; its container runs while the first group's does.
     */
    private Behavior<Command> follow() {
        if (groups.isEmpty()) {
            return this;
        }
        boolean running = holder.get() != null;
        boolean held = running && first.holdsLease();
        long epoch = first.epoch();
        boolean changed = false;
        for (Group group : groups.values()) {
            if (held) {
                group.peers.followEpoch(epoch);
            }
            group.peers.wantLease(held);
            if (running && group.container == null) {
                group.container = getContext().spawn(parts.container(group.serial, group.peers, group.status),
                        "virtual-container-" + group.cmActId);
                if (group.lastView != null) {
                    group.container.tell(group.lastView);
                }
                changed = true;
            } else if (!running && group.container != null) {
                group.status.retire();
                getContext().stop(group.container);
                group.container = null;
                changed = true;
            }
        }
        if (changed) {
            List<TmrNode.Group> published = new ArrayList<>();
            for (Group group : groups.values()) {
                if (group.container != null) {
                    published.add(new TmrNode.Group(group.serial, group.cmActId, group.container, group.status,
                            group.peers));
                }
            }
            holder.others(published);
        }
        return this;
    }
}
