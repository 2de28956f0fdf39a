package io.opentmr.persistence;

import java.io.NotSerializableException;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.Serialization$;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;

/**
 * A value as the configured Pekko serializer wrote it: what the journal and the snapshot store keep of an event,
 * its metadata or a snapshot.
 */
public record Serialized(int serializerId, String manifest, byte[] bytes) {

    /**
     * Serializes {@code value} with the serializer bound to its class, with the actor system's transport information
     * set, as Pekko's own plugins do: payloads holding actor refs need it. Throws {@link NotSerializableException}
     * (its message starting with {@code what}) if no serializer accepts the value.
     */
    public static Serialized of(ExtendedActorSystem system, Object value, String what)
            throws NotSerializableException {
        Serialization serialization = SerializationExtension.get(system);
        try {
            return Serialization$.MODULE$.withTransportInformation(system, () -> {
                Serializer serializer = serialization.findSerializerFor(value);
                return new Serialized(serializer.identifier(), Serializers.manifestFor(serializer, value),
                        serializer.toBinary(value));
            });
        } catch (Exception e) {
            // Pekko throws NotSerializableException undeclared (Scala) when no serializer is bound.
            NotSerializableException n = new NotSerializableException(
                    what + " " + value.getClass().getName() + " cannot be serialized: " + e.getMessage());
            n.initCause(e);
            throw n;
        }
    }

    /** The value again; throws if its serializer is not configured or cannot read it. */
    public Object deserialize(ExtendedActorSystem system) {
        return SerializationExtension.get(system).deserialize(bytes, serializerId, manifest).get();
    }
}
