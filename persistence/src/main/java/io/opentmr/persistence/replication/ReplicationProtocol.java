package io.opentmr.persistence.replication;

import org.apache.pekko.actor.typed.ActorRef;

/**
 * The messages between {@link ReplicationLeader} and {@link ReplicationFollower}, serialized by
 * {@link ReplicationSerializer}. A session is one handshake's stream: every message after the handshake names it, and a
 * side ignores any session but its current one.
 */
public final class ReplicationProtocol {

    private ReplicationProtocol() {
    }

    /** Every message that crosses the network; bound to {@link ReplicationSerializer} in reference.conf. */
    public interface Message {
    }

    /** What the leader receives. */
    public interface ToLeader extends Message {
    }

    /** What the follower receives. */
    public interface ToFollower extends Message {
    }

    /** Follower → leader: my log ends before {@code next}, its last record has {@code lastEpoch} (-1: empty). */
    public record Hello(ActorRef<ToFollower> follower, String name, long next, long lastEpoch) implements ToLeader {
    }

    /** Leader → follower: your log is a prefix of mine; records from {@code start} follow in this session. */
    public record Welcome(ActorRef<ToLeader> leader, long session, long leaderEpoch, long start) implements ToFollower {
    }

    /**
     * Leader → follower: your log has records I do not. {@code epoch} is my newest epoch not above yours (-1: none),
     * {@code end} the first position after my records of epochs up to it. Truncate, then say Hello again.
     */
    public record Diverged(long leaderEpoch, long epoch, long end) implements ToFollower {
    }

    /** Leader → follower: no session, and why (a follower with a newer epoch than the leader's). */
    public record Refused(long leaderEpoch, String reason) implements ToFollower {
    }

    /**
     * Leader → follower: the {@code seq}-th message of the session, a piece of the records from position {@code from};
     * {@code last} says the piece completes them (a chunk larger than a message comes in several pieces).
     */
    public record Append(long session, long seq, long from, boolean last, byte[] bytes) implements ToFollower {
    }

    /** Leader → follower when it has sent nothing for a while: {@code nextSeq} lets a lost message be noticed. */
    public record Heartbeat(long session, long nextSeq) implements ToFollower {
    }

    /** Follower → leader: messages up to {@code seq} received, my log durable below {@code durableNext}. */
    public record Appended(long session, long seq, long durableNext) implements ToLeader {
    }
}
