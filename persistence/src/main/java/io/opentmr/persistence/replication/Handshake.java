package io.opentmr.persistence.replication;

import io.opentmr.persistence.log.SegmentedLog;

/**
 * The handshake's decisions, as plain functions of the two logs (README "Replication"): whether a follower's log is a
 * prefix of the leader's, and if not, where the follower cuts.
 */
final class Handshake {

    private Handshake() {
    }

    /** The leader's answer to {@code Hello(next, lastEpoch)}: a match, or the divergence to report. */
    record Answer(boolean match, long epoch, long end) {
    }

    static Answer answer(SegmentedLog leader, long next, long lastEpoch) {
        boolean match = next == 0
                || (lastEpoch >= 0 && next <= leader.nextPosition() && leader.epochAt(next - 1) == lastEpoch);
        if (match) {
            return new Answer(true, lastEpoch, next);
        }
        long epoch = leader.newestEpochUpTo(lastEpoch);
        return new Answer(false, epoch, epoch < 0 ? 0 : leader.firstPositionAbove(epoch));
    }

    /**
     * Where the follower truncates from after {@code Diverged(epoch, end)}: below {@code end} and below its own first
     * record of a newer epoch than {@code epoch}; if that would drop nothing, its whole last epoch, so every round
     * shortens the log and the handshake ends.
     */
    static long truncationPoint(SegmentedLog follower, long epoch, long end) {
        long next = follower.nextPosition();
        long at = Math.min(end, follower.firstPositionAbove(epoch));
        if (at >= next) {
            at = follower.startOfLastEpoch();
        }
        return at >= next ? 0 : Math.max(0, at);
    }
}
