package io.opentmr.persistence.tools;

import io.opentmr.persistence.Serialized;
import org.apache.pekko.actor.ExtendedActorSystem;

/**
 * Turns a stored payload (an event or a snapshot) back into its value: {@link #of} does it with the actor system's
 * Pekko serializers, so a replay reads records exactly as recovery does (Jackson migrations of older versions
 * included, a record of a newer version refused).
 */
@FunctionalInterface
public interface Decoder {

    Object decode(int serializerId, String manifest, byte[] bytes) throws Exception;

    /** The serializers of {@code system}, as the journal plugin and the snapshot store use them. */
    static Decoder of(ExtendedActorSystem system) {
        return (serializerId, manifest, bytes) -> new Serialized(serializerId, manifest, bytes).deserialize(system);
    }
}
