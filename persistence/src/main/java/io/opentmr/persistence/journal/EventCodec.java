package io.opentmr.persistence.journal;

import io.opentmr.persistence.Serialized;
import io.opentmr.persistence.log.LogRecord;
import java.io.NotSerializableException;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.ActorRef;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.persistence.PersistentRepr;
import org.apache.pekko.persistence.journal.Tagged;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Turns Pekko's persistent representations into log records and back, through the configured Pekko serializers
 * (Jackson CBOR for our events). Knows no domain type: the serializer id and manifest stored with each record say
 * how to read it.
 *
 * <p>Serializing runs with the actor system's transport information set ({@link Serialized#of}), as Pekko's own
 * plugins do, so payloads holding actor refs serialize; deserializing through
 * {@link Serialization#deserialize(byte[], int, String)} sets it by itself.
 */
public final class EventCodec {

    private final ExtendedActorSystem system;
    private final Serialization serialization;

    public EventCodec(ExtendedActorSystem system) {
        this.system = system;
        this.serialization = SerializationExtension.get(system);
    }

    /** The record for {@code repr}; throws {@link NotSerializableException} if no serializer accepts the payload. */
    public LogRecord toRecord(PersistentRepr repr, long nowMillis) throws NotSerializableException {
        Object payload = repr.payload();
        List<String> tags = List.of();
        if (payload instanceof Tagged tagged) {
            payload = tagged.payload();
            tags = new ArrayList<>(CollectionConverters.asJava(tagged.tags()));
        }
        String of = " of " + repr.persistenceId() + " seqNr " + repr.sequenceNr();
        Serialized event = Serialized.of(system, payload, "event" + of + ":");
        LogRecord.Metadata metadata = null;
        if (repr.metadata().isDefined()) {
            Serialized m = Serialized.of(system, repr.metadata().get(), "event metadata" + of + ":");
            metadata = new LogRecord.Metadata(m.serializerId(), m.manifest(), m.bytes());
        }
        long timestamp = repr.timestamp() > 0 ? repr.timestamp() : nowMillis;
        return LogRecord.event(repr.persistenceId(), repr.sequenceNr(), timestamp, repr.writerUuid(),
                event.serializerId(), event.manifest(), repr.manifest(), tags, event.bytes()).withMetadata(metadata);
    }

    /** The event payload of a record; throws if its serializer is not configured or cannot read it. */
    public Object payload(LogRecord record) {
        return serialization.deserialize(record.payload(), record.serializerId(), record.manifest()).get();
    }

    /** The event metadata of a record, or null if it has none. */
    public Object metadata(LogRecord record) {
        LogRecord.Metadata m = record.metadata();
        return m == null ? null : serialization.deserialize(m.bytes(), m.serializerId(), m.manifest()).get();
    }

    /** The persistent representation of an event record, as replay hands it to a persistent actor. */
    public PersistentRepr toRepr(LogRecord record) {
        PersistentRepr repr = PersistentRepr.apply(payload(record), record.sequenceNr(), record.persistenceId(),
                record.adapterManifest(), false, ActorRef.noSender(), record.writerUuid())
                .withTimestamp(record.timestamp());
        Object metadata = metadata(record);
        return metadata == null ? repr : repr.withMetadata(metadata);
    }
}
