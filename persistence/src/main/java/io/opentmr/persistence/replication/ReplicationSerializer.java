package io.opentmr.persistence.replication;

import io.opentmr.persistence.replication.ReplicationProtocol.Append;
import io.opentmr.persistence.replication.ReplicationProtocol.Appended;
import io.opentmr.persistence.replication.ReplicationProtocol.Diverged;
import io.opentmr.persistence.replication.ReplicationProtocol.Heartbeat;
import io.opentmr.persistence.replication.ReplicationProtocol.Hello;
import io.opentmr.persistence.replication.ReplicationProtocol.Refused;
import io.opentmr.persistence.replication.ReplicationProtocol.Welcome;
import java.io.NotSerializableException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.SerializerWithStringManifest;

/**
 * Pekko serializer of the {@link ReplicationProtocol} messages: a fixed big-endian layout per message (one-letter
 * manifest), records as raw bytes, actor refs in Pekko's string form. Not Java serialization, and no Jackson tree
 * around megabytes of records.
 */
public final class ReplicationSerializer extends SerializerWithStringManifest {

    /** Registered in reference.conf; unique among the actor system's serializers. */
    public static final int IDENTIFIER = 7321;

    private final ExtendedActorSystem system;
    private volatile ActorRefResolver resolver;

    public ReplicationSerializer(ExtendedActorSystem system) {
        this.system = system;
    }

    @Override
    public int identifier() {
        return IDENTIFIER;
    }

    private ActorRefResolver resolver() {
        ActorRefResolver r = resolver;
        if (r == null) {
            r = ActorRefResolver.get(Adapter.toTyped(system));
            resolver = r;
        }
        return r;
    }

    @Override
    public String manifest(Object o) {
        if (o instanceof Hello) {
            return "H";
        } else if (o instanceof Welcome) {
            return "W";
        } else if (o instanceof Diverged) {
            return "D";
        } else if (o instanceof Refused) {
            return "R";
        } else if (o instanceof Append) {
            return "A";
        } else if (o instanceof Heartbeat) {
            return "B";
        } else if (o instanceof Appended) {
            return "K";
        }
        throw new IllegalArgumentException("not a replication message: " + o.getClass().getName());
    }

    @Override
    public byte[] toBinary(Object o) {
        if (o instanceof Append a) {
            ByteBuffer b = ByteBuffer.allocate(8 + 8 + 8 + 1 + 4 + a.bytes().length);
            b.putLong(a.session()).putLong(a.seq()).putLong(a.from()).put((byte) (a.last() ? 1 : 0))
                    .putInt(a.bytes().length).put(a.bytes());
            return b.array();
        } else if (o instanceof Appended k) {
            return ByteBuffer.allocate(24).putLong(k.session()).putLong(k.seq()).putLong(k.durableNext()).array();
        } else if (o instanceof Heartbeat h) {
            return ByteBuffer.allocate(16).putLong(h.session()).putLong(h.nextSeq()).array();
        } else if (o instanceof Hello h) {
            byte[] ref = ref(h.follower());
            byte[] name = h.name().getBytes(StandardCharsets.UTF_8);
            return ByteBuffer.allocate(8 + 8 + 4 + ref.length + 4 + name.length).putLong(h.next())
                    .putLong(h.lastEpoch()).putInt(ref.length).put(ref).putInt(name.length).put(name).array();
        } else if (o instanceof Welcome w) {
            byte[] ref = ref(w.leader());
            return ByteBuffer.allocate(24 + 4 + ref.length).putLong(w.session()).putLong(w.leaderEpoch())
                    .putLong(w.start()).putInt(ref.length).put(ref).array();
        } else if (o instanceof Diverged d) {
            return ByteBuffer.allocate(24).putLong(d.leaderEpoch()).putLong(d.epoch()).putLong(d.end()).array();
        } else if (o instanceof Refused r) {
            byte[] reason = r.reason().getBytes(StandardCharsets.UTF_8);
            return ByteBuffer.allocate(12 + reason.length).putLong(r.leaderEpoch()).putInt(reason.length).put(reason)
                    .array();
        }
        throw new IllegalArgumentException("not a replication message: " + o.getClass().getName());
    }

    private byte[] ref(ActorRef<?> ref) {
        return resolver().toSerializationFormat(ref).getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public Object fromBinary(byte[] bytes, String manifest) throws NotSerializableException {
        ByteBuffer b = ByteBuffer.wrap(bytes);
        try {
            switch (manifest) {
                case "A" -> {
                    long session = b.getLong();
                    long seq = b.getLong();
                    long from = b.getLong();
                    boolean last = b.get() != 0;
                    byte[] records = new byte[b.getInt()];
                    b.get(records);
                    return new Append(session, seq, from, last, records);
                }
                case "K" -> {
                    return new Appended(b.getLong(), b.getLong(), b.getLong());
                }
                case "B" -> {
                    return new Heartbeat(b.getLong(), b.getLong());
                }
                case "H" -> {
                    long next = b.getLong();
                    long lastEpoch = b.getLong();
                    ActorRef<ReplicationProtocol.ToFollower> follower = resolver().resolveActorRef(string(b));
                    return new Hello(follower, string(b), next, lastEpoch);
                }
                case "W" -> {
                    long session = b.getLong();
                    long epoch = b.getLong();
                    long start = b.getLong();
                    ActorRef<ReplicationProtocol.ToLeader> leader = resolver().resolveActorRef(string(b));
                    return new Welcome(leader, session, epoch, start);
                }
                case "D" -> {
                    return new Diverged(b.getLong(), b.getLong(), b.getLong());
                }
                case "R" -> {
                    long epoch = b.getLong();
                    return new Refused(epoch, string(b));
                }
                default -> throw new NotSerializableException("unknown replication manifest '" + manifest + "'");
            }
        } catch (BufferUnderflowException | NegativeArraySizeException e) {
            throw new NotSerializableException("malformed replication message '" + manifest + "' of " + bytes.length
                    + " bytes");
        }
    }

    private static String string(ByteBuffer b) {
        byte[] s = new byte[b.getInt()];
        b.get(s);
        return new String(s, StandardCharsets.UTF_8);
    }
}
