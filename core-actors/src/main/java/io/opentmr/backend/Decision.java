package io.opentmr.backend;

import io.opentmr.protocol.CmError;
import java.util.List;

/**
 * The outcome of a command against {@link ContainerState}: either the events to persist and the
 * reply to give once they are persisted, or a refusal with its CodeMeter number.
 */
public sealed interface Decision<T> {

    record Accept<T>(List<ContainerEvent> events, T reply) implements Decision<T> {
        public Accept {
            events = List.copyOf(events);
        }
    }

    record Refuse<T>(CmError error, String text) implements Decision<T> {
    }

    static <T> Decision<T> accept(T reply, ContainerEvent... events) {
        return new Accept<>(List.of(events), reply);
    }

    static <T> Decision<T> refuse(CmError error, String text) {
        return new Refuse<>(error, text);
    }

    default boolean accepted() {
        return this instanceof Accept;
    }
}
