package io.opentmr.persistence;

/**
 * Test-only marker bound to {@code jackson-cbor} in {@link TestConfig}: the persistence module knows no domain
 * type, so its tests bring their own, the way the domain modules do.
 */
public interface CborSerializable {
}
