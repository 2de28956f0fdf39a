package io.opentmr.tracking;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.io.StringWriter;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

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
        // Written field by field with the mapper's own generator: the same text as the mapper writing the map (a
        // value of another type than those below goes to the mapper), without its serializer look-ups and the
        // copy of the fields per line, which a backend and a node write for every grant and release.
        StringWriter text = new StringWriter(256);
        try (JsonGenerator out = JSON.getFactory().createGenerator(text)) {
            out.writeStartObject();
            // A field of the line's head given again among the fields keeps the head's place with the field's value.
            writeField(out, "time", fields.containsKey("time") ? fields.get("time") : at.toString());
            writeField(out, "event", fields.containsKey("event") ? fields.get("event") : event);
            writeField(out, "container", fields.containsKey("container") ? fields.get("container") : container);
            for (Map.Entry<String, ?> field : fields.entrySet()) {
                if (!HEAD.contains(field.getKey())) {
                    writeField(out, field.getKey(), field.getValue());
                }
            }
            out.writeEndObject();
        } catch (IOException e) {
            throw new IllegalArgumentException("tracking line for " + event + " not written: " + e.getMessage(), e);
        }
        return text.toString();
    }

    /** The fields every line starts with, in this order. */
    private static final Set<String> HEAD = Set.of("time", "event", "container");

    private static void writeField(JsonGenerator out, String name, Object value) throws IOException {
        out.writeFieldName(name);
        writeValue(out, value);
    }

    private static void writeValue(JsonGenerator out, Object value) throws IOException {
        if (value == null) {
            out.writeNull();
        } else if (value instanceof String string) {
            out.writeString(string);
        } else if (value instanceof Long || value instanceof Integer || value instanceof Short
                || value instanceof Byte) {
            out.writeNumber(((Number) value).longValue());
        } else if (value instanceof Boolean bool) {
            out.writeBoolean(bool);
        } else if (value instanceof Map<?, ?> map && map.keySet().stream().allMatch(String.class::isInstance)) {
            out.writeStartObject();
            for (Map.Entry<?, ?> field : map.entrySet()) {
                writeField(out, (String) field.getKey(), field.getValue());
            }
            out.writeEndObject();
        } else if (value instanceof List<?> list) {
            out.writeStartArray();
            for (Object item : list) {
                writeValue(out, item);
            }
            out.writeEndArray();
        } else {
            JSON.writeValue(out, value);
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
