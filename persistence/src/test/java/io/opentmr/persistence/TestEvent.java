package io.opentmr.persistence;

/** An event for the tests, serialized with Jackson CBOR. */
public record TestEvent(String value) implements CborSerializable {
}
