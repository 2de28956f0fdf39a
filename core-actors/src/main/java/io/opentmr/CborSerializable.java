package io.opentmr;

/**
 * Marker for every message and event that crosses the network between actor systems or goes into
 * the journal: bound to Jackson CBOR in {@code reference.conf}. Java serialization is never used.
 */
public interface CborSerializable {
}
