package io.opentmr.cluster;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.AddressFromURIString;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.ClusterEvent;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;
import org.apache.pekko.cluster.typed.GetCurrentState;
import org.apache.pekko.cluster.typed.JoinSeedNodes;
import org.apache.pekko.cluster.typed.SelfUp;
import org.apache.pekko.cluster.typed.Subscribe;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Sees this node into the twin cluster. Pekko joins the seed nodes of {@link TwinSettings#pekkoConfig} by itself;
 * this actor adds what two nodes need beyond that:
 *
 * <ul>
 *   <li><b>Starting without the twin.</b> Only the first seed may form a cluster in Pekko. The other node, not a
 *   member after {@code alone-after}, asks again with itself first: its twin is then answered if it is up by now
 *   (it joins it), or it forms the cluster alone, which the twin joins when it comes.</li>
 *   <li><b>One name, one node.</b> Once Up, a node whose name an older live member already carries (the member role
 *   {@link TwinSettings#nameRole}) refuses to run: it fails {@link #start}'s stage with a {@link NameClashException}
 *   naming the clash, and leaves the cluster and stops its ActorSystem. Age decides, so of two nodes with one name
 *   exactly the second refuses, even when both start at the same instant.</li>
 * </ul>
 */
public final class TwinJoin {

    private static final Logger LOG = LoggerFactory.getLogger(TwinJoin.class);

    public sealed interface Command {
    }

    private record UpNow(SelfUp up) implements Command {
    }

    private record Membership(ClusterEvent.CurrentClusterState state) implements Command {
    }

    private enum AloneTimer implements Command {
        INSTANCE
    }

    /** This node is Up in the twin cluster under a name of its own. */
    public record Joined(Address self, List<Address> members) {
        public Joined {
            members = List.copyOf(members);
        }
    }

    /** Another live member already runs under this node's name. */
    public static final class NameClashException extends IllegalStateException {
        private static final long serialVersionUID = 1L;

        public NameClashException(String message) {
            super(message);
        }
    }

    /** Why a node left right after it joined: its name was taken. */
    public enum NameClash implements CoordinatedShutdown.Reason {
        INSTANCE
    }

    private TwinJoin() {
    }

    /**
     * Watches {@code system}, started with {@code settings.pekkoConfig(system.name())}, join the twin. The stage
     * completes when this node is Up under its own name, and fails with a {@link NameClashException} or when the
     * system stops first. It does not time out: a first seed forms the cluster after {@code seed-node-timeout}, the
     * other node after {@code alone-after}; the caller bounds the wait as it sees fit.
     */
    public static CompletionStage<Joined> start(ActorSystem<?> system, TwinSettings settings) {
        if (!"cluster".equals(system.settings().config().getString("pekko.actor.provider"))) {
            throw new IllegalStateException("the ActorSystem was not started with TwinSettings.pekkoConfig");
        }
        CompletableFuture<Joined> result = new CompletableFuture<>();
        system.getWhenTerminated().thenRun(() -> result.completeExceptionally(new IllegalStateException(
                "node " + settings.name() + ": the ActorSystem stopped before it joined the twin cluster")));
        system.systemActorOf(create(settings, result), "opentmr-twin-join", Props.empty());
        return result;
    }

    static Behavior<Command> create(TwinSettings settings, CompletableFuture<Joined> result) {
        return Behaviors.setup(context -> Behaviors.withTimers(timers -> {
            Cluster cluster = Cluster.get(context.getSystem());
            ActorRef<SelfUp> upAdapter = context.messageAdapter(SelfUp.class, UpNow::new);
            cluster.subscriptions().tell(Subscribe.create(upAdapter, SelfUp.class));
            ActorRef<ClusterEvent.CurrentClusterState> stateAdapter =
                    context.messageAdapter(ClusterEvent.CurrentClusterState.class, Membership::new);
            if (!settings.firstSeed()) {
                timers.startSingleTimer(AloneTimer.INSTANCE, settings.aloneAfter());
            }
            return Behaviors.receive(Command.class)
                    .onMessage(AloneTimer.class, timer -> aloneTimer(context, cluster, settings))
                    // SelfUp carries a state that may lag behind (the classic read view): ask the publisher, which
                    // answers after it published the change that made this node Up and all before it.
                    .onMessage(UpNow.class, up -> {
                        cluster.subscriptions().tell(new GetCurrentState(stateAdapter));
                        return Behaviors.same();
                    })
                    .onMessage(Membership.class, m -> up(context, cluster, settings, m.state(), result))
                    .build();
        }));
    }

    private static Behavior<Command> aloneTimer(ActorContext<Command> context, Cluster cluster, TwinSettings settings) {
        Member self = cluster.selfMember();
        boolean member = false;
        for (Member m : cluster.state().getMembers()) {
            member |= m.uniqueAddress().equals(self.uniqueAddress());
        }
        if (member) {
            return Behaviors.same();
        }
        List<Address> seeds = new ArrayList<>();
        seeds.add(self.address());
        for (TwinSettings.HostPort seed : settings.seeds()) {
            Address address = AddressFromURIString.parse(TwinSettings.address(context.getSystem().name(), seed));
            if (!address.equals(self.address())) {
                seeds.add(address);
            }
        }
        LOG.warn("Node {} at {} is no cluster member after {} ms: joining {} with itself first, so it forms the "
                + "cluster alone unless its twin answers", settings.name(), self.address(),
                settings.aloneAfter().toMillis(), seeds);
        cluster.manager().tell(new JoinSeedNodes(seeds));
        return Behaviors.same();
    }

    private static Behavior<Command> up(ActorContext<Command> context, Cluster cluster, TwinSettings settings,
                                        ClusterEvent.CurrentClusterState state,
                                        CompletableFuture<Joined> result) {
        // This node as the same state has it: its up-number decides who is older.
        Member self = cluster.selfMember();
        List<Member> members = new ArrayList<>();
        for (Member m : state.getMembers()) {
            members.add(m);
            if (m.uniqueAddress().equals(self.uniqueAddress())) {
                self = m;
            }
        }
        Optional<Member> holder = nameHolder(self, members, settings.nameRole());
        if (holder.isPresent()) {
            Member other = holder.get();
            NameClashException clash = new NameClashException("node name '" + settings.name() + "' is taken: the live "
                    + "member " + other.address() + " (" + other.status() + ") runs under it and joined first; this "
                    + "node (" + self.address() + ") leaves. Give each node of the twin its own opentmr.node.name");
            LOG.error("Node {} at {} refuses to run: {}", settings.name(), self.address(), clash.getMessage());
            result.completeExceptionally(clash);
            CoordinatedShutdown.get(context.getSystem()).runAll(NameClash.INSTANCE);
            return Behaviors.stopped();
        }
        List<Address> addresses = members.stream().map(Member::address).toList();
        LOG.info("Node {} is Up in the twin cluster at {}, members {}", settings.name(), self.address(), addresses);
        result.complete(new Joined(self.address(), addresses));
        return Behaviors.stopped();
    }

    /** A live member older than {@code self} that carries {@code nameRole}, if there is one. */
    static Optional<Member> nameHolder(Member self, Iterable<Member> members, String nameRole) {
        for (Member m : members) {
            boolean live = m.status() == MemberStatus.up() || m.status() == MemberStatus.leaving()
                    || m.status() == MemberStatus.exiting();
            if (live && !m.uniqueAddress().equals(self.uniqueAddress()) && m.hasRole(nameRole) && m.isOlderThan(self)) {
                return Optional.of(m);
            }
        }
        return Optional.empty();
    }
}
