package io.opentmr.tracking;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One line of a tracking log: a JSON object that starts with {@code time} (ISO-8601, UTC), {@code event} and
 * {@code container} (the serial whose log it is), then the event's own fields. The backend and the TMR node
 * write the same shape, so one report reads both.
 */
public final class TrackingLine {

    private static final ObjectMapper JSON = JsonMapper.builder().build();

    private TrackingLine() {
    }

    /**
     * The line, without a line break.
     *
     * @throws IllegalArgumentException when a field cannot be written as JSON (a programming error)
     */
    public static String of(Instant at, String event, String container, Map<String, ?> fields) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("time", at.toString());
        line.put("event", event);
        line.put("container", container);
        line.putAll(fields);
        try {
            return JSON.writeValueAsString(line);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("tracking line for " + event + " not written: " + e.getMessage(), e);
        }
    }

    /** A handle's owner as both servers write it: the host the client names, its user, process and session. */
    public static Map<String, Object> owner(String host, String user, long pid, long session) {
        Map<String, Object> owner = new LinkedHashMap<>();
        owner.put("host", host);
        owner.put("user", user);
        owner.put("pid", pid);
        owner.put("session", session);
        return owner;
    }

    /** The mapper a reader of the lines uses (the same settings the lines were written with). */
    public static ObjectMapper json() {
        return JSON;
    }
}
