package io.opentmr.persistence.replication;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.typesafe.config.ConfigFactory;
import io.opentmr.persistence.replication.ReplicationProtocol.Append;
import io.opentmr.persistence.replication.ReplicationProtocol.Appended;
import io.opentmr.persistence.replication.ReplicationProtocol.Diverged;
import io.opentmr.persistence.replication.ReplicationProtocol.Heartbeat;
import io.opentmr.persistence.replication.ReplicationProtocol.Hello;
import io.opentmr.persistence.replication.ReplicationProtocol.Refused;
import io.opentmr.persistence.replication.ReplicationProtocol.ToFollower;
import io.opentmr.persistence.replication.ReplicationProtocol.ToLeader;
import io.opentmr.persistence.replication.ReplicationProtocol.Welcome;
import java.io.NotSerializableException;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Every replication message goes through our serializer (bound in reference.conf) and comes back equal. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ReplicationSerializerTest {

    private static final ActorTestKit KIT = ActorTestKit.create(ConfigFactory.parseString(
            "pekko.actor.allow-java-serialization = off").withFallback(ConfigFactory.load()));

    @AfterAll
    static void stop() {
        KIT.shutdownTestKit();
    }

    @Test
    void everyMessageRoundTripsThroughTheReplicationSerializer() throws Exception {
        TestProbe<ToFollower> follower = KIT.createTestProbe();
        TestProbe<ToLeader> leader = KIT.createTestProbe();
        Serialization serialization = SerializationExtension.get(KIT.system());
        List<Object> messages = List.of(
                new Hello(follower.ref(), "node-b", 42, 3),
                new Welcome(leader.ref(), 7, 4, 42),
                new Diverged(4, 3, 40),
                new Refused(4, "stale: é"),
                new Heartbeat(7, 12),
                new Appended(7, 11, 99));
        for (Object m : messages) {
            assertEquals(m, roundTrip(serialization, m));
        }
        Append a = new Append(7, 3, 100, true, new byte[] {1, 2, 3, 4});
        Append back = (Append) roundTrip(serialization, a);
        assertEquals(List.of(a.session(), a.seq(), a.from()), List.of(back.session(), back.seq(), back.from()));
        assertEquals(a.last(), back.last());
        assertArrayEquals(a.bytes(), back.bytes());
        ReplicationSerializer serializer = (ReplicationSerializer) serialization.findSerializerFor(a);
        assertThrows(NotSerializableException.class, () -> serializer.fromBinary(new byte[] {1, 2}, "A"));
        assertThrows(NotSerializableException.class, () -> serializer.fromBinary(new byte[0], "?"));
    }

    private static Object roundTrip(Serialization serialization, Object m) {
        var serializer = serialization.findSerializerFor(m);
        assertEquals(ReplicationSerializer.IDENTIFIER, serializer.identifier());
        byte[] bytes = serialization.serialize(m).get();
        return serialization.deserialize(bytes, serializer.identifier(), Serializers.manifestFor(serializer, m)).get();
    }
}
