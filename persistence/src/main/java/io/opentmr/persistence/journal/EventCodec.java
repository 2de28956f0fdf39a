package io.opentmr.persistence.journal;

import io.opentmr.persistence.log.LogRecord;
import java.io.NotSerializableException;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.ActorRef;
import org.apache.pekko.persistence.PersistentRepr;
import org.apache.pekko.persistence.journal.Tagged;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Turns Pekko's persistent representations into log records and back, through the configured Pekko serializers
 * (Jackson CBOR for our events). Knows no domain type: the serializer id and manifest stored with each record say
 * how to read it.
 */
public final class EventCodec {

    private final Serialization serialization;

    public EventCodec(Serialization serialization) {
        this.serialization = serialization;
    }

    /** The record for {@code repr}; throws {@link NotSerializableException} if no serializer accepts the payload. */
    public LogRecord toRecord(PersistentRepr repr, long nowMillis) throws NotSerializableException {
        Object payload = repr.payload();
        List<String> tags = List.of();
        if (payload instanceof Tagged tagged) {
            payload = tagged.payload();
            tags = new ArrayList<>(CollectionConverters.asJava(tagged.tags()));
        }
        byte[] bytes;
        Serializer serializer;
        String manifest;
        try {
            serializer = serialization.findSerializerFor(payload);
            manifest = Serializers.manifestFor(serializer, payload);
            bytes = serializer.toBinary(payload);
        } catch (RuntimeException e) {
            NotSerializableException n = new NotSerializableException(
                    "event " + payload.getClass().getName() + " of " + repr.persistenceId() + " seqNr "
                            + repr.sequenceNr() + " cannot be serialized: " + e.getMessage());
            n.initCause(e);
            throw n;
        }
        long timestamp = repr.timestamp() > 0 ? repr.timestamp() : nowMillis;
        return LogRecord.event(repr.persistenceId(), repr.sequenceNr(), timestamp, repr.writerUuid(),
                serializer.identifier(), manifest, repr.manifest(), tags, bytes);
    }

    /** The event payload of a record; throws if its serializer is not configured or cannot read it. */
    public Object payload(LogRecord record) {
        return serialization.deserialize(record.payload(), record.serializerId(), record.manifest()).get();
    }

    /** The persistent representation of an event record, as replay hands it to a persistent actor. */
    public PersistentRepr toRepr(LogRecord record) {
        return PersistentRepr.apply(payload(record), record.sequenceNr(), record.persistenceId(),
                record.adapterManifest(), false, ActorRef.noSender(), record.writerUuid())
                .withTimestamp(record.timestamp());
    }
}
