package io.opentmr.persistence.replication;

import com.typesafe.config.Config;
import java.time.Duration;

/**
 * {@code opentmr.persistence.replication}, read once (reference.conf says what each key means and why its default).
 */
public record ReplicationSettings(
        Duration ackTimeout,
        int maxInFlight,
        int maxMessageBytes,
        Duration helloInterval,
        Duration heartbeatInterval,
        Duration sessionTimeout) {

    public static final String PATH = "opentmr.persistence.replication";
    /** Where the leader and follower actors run: they read and write files (page cache mostly). */
    public static final String DISPATCHER = PATH + ".dispatcher";

    public ReplicationSettings {
        positive(ackTimeout, "ack-timeout");
        positive(helloInterval, "hello-interval");
        positive(heartbeatInterval, "heartbeat-interval");
        positive(sessionTimeout, "session-timeout");
        if (maxInFlight < 1) {
            throw new IllegalArgumentException(PATH + ".max-in-flight must be at least 1, got " + maxInFlight);
        }
        if (maxMessageBytes < 1024) {
            throw new IllegalArgumentException(PATH + ".max-message-bytes must be at least 1 KiB, got "
                    + maxMessageBytes);
        }
        if (sessionTimeout.compareTo(heartbeatInterval.multipliedBy(2)) < 0) {
            throw new IllegalArgumentException(PATH + ".session-timeout must be at least two heartbeat intervals, "
                    + "or one late heartbeat ends a session");
        }
    }

    private static void positive(Duration d, String key) {
        if (d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException(PATH + "." + key + " must be positive, got " + d);
        }
    }

    public static ReplicationSettings fromConfig(Config root) {
        Config c = root.getConfig(PATH);
        return new ReplicationSettings(
                c.getDuration("ack-timeout"),
                c.getInt("max-in-flight"),
                Math.toIntExact(c.getBytes("max-message-bytes")),
                c.getDuration("hello-interval"),
                c.getDuration("heartbeat-interval"),
                c.getDuration("session-timeout"));
    }

    /** How often both sides look at their timers: fine enough that ack-timeout is kept within a fifth of it. */
    public Duration tick() {
        Duration fifth = ackTimeout.dividedBy(5);
        Duration t = fifth.compareTo(heartbeatInterval) < 0 ? fifth : heartbeatInterval;
        return t.compareTo(helloInterval) < 0 ? t : helloInterval;
    }
}
