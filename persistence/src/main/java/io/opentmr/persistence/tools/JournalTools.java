package io.opentmr.persistence.tools;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.cbor.CBORFactory;
import io.opentmr.persistence.log.LogRecord;
import io.opentmr.persistence.log.LogScanner;
import io.opentmr.persistence.log.RecordCodec;
import io.opentmr.persistence.log.RecordType;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.Writer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;

/**
 * Offline journal tools, wrapped later by {@code tmr journal}: {@link #dump} and {@link #verify}. Both only read:
 * no lock is taken and nothing is truncated, so they are safe on the journal of a running node (they then see the
 * records written up to the moment each segment is read).
 */
public final class JournalTools {

    /** Serializer ids of pekko-serialization-jackson (its reference.conf): payloads we can show as JSON. */
    static final int JACKSON_JSON = 31;
    static final int JACKSON_CBOR = 33;
    private static final int MAX_RECORD_BYTES = RecordCodec.MAX_RECORD_BYTES;

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ObjectMapper CBOR = new ObjectMapper(new CBORFactory());

    private JournalTools() {
    }

    /**
     * Writes the records selected by {@code filter} to {@code out} as JSON lines, in log order. The payload is shown
     * as JSON when its serializer is Jackson (CBOR or JSON), else as base64.
     */
    public static DumpResult dump(Path dir, DumpFilter filter, Writer out) throws IOException {
        Map<String, Long> deletedTo = new HashMap<>();
        LogScanner.scan(dir, MAX_RECORD_BYTES, false, (file, offset, length, r) -> {
            if (r.type() == RecordType.TOMBSTONE) {
                deletedTo.merge(r.persistenceId(), r.sequenceNr(), Math::max);
            }
        });
        long[] counts = new long[2];
        IOException[] failure = new IOException[1];
        LogScanner.Result result = LogScanner.scan(dir, MAX_RECORD_BYTES, false, (file, offset, length, r) -> {
            counts[1]++;
            if (failure[0] != null || !filter.matches(r.persistenceId(), r.sequenceNr())) {
                return;
            }
            ObjectNode line = toJson(r, file, offset, deletedTo.getOrDefault(r.persistenceId(), 0L));
            try {
                out.write(JSON.writeValueAsString(line));
                out.write('\n');
                counts[0]++;
            } catch (IOException e) {
                failure[0] = e;
            }
        });
        if (failure[0] != null) {
            throw failure[0];
        }
        out.flush();
        return new DumpResult(counts[0], counts[1], result.damages());
    }

    private static ObjectNode toJson(LogRecord r, Path file, int offset, long deletedTo) {
        ObjectNode n = JSON.createObjectNode();
        n.put("position", r.position());
        n.put("epoch", r.epoch());
        n.put("type", r.type() == RecordType.EVENT ? "event" : "tombstone");
        n.put("persistenceId", r.persistenceId());
        n.put("sequenceNr", r.sequenceNr());
        if (r.type() == RecordType.EVENT) {
            n.put("deleted", r.sequenceNr() <= deletedTo);
            n.put("timestamp", r.timestamp());
            n.put("writerUuid", r.writerUuid());
            n.put("serializerId", r.serializerId());
            n.put("manifest", r.manifest());
            if (!r.adapterManifest().isEmpty()) {
                n.put("adapterManifest", r.adapterManifest());
            }
            ArrayNode tags = n.putArray("tags");
            r.tags().forEach(tags::add);
            putPayload(n, "payload", r.serializerId(), r.payload());
            if (r.metadata() != null) {
                n.put("metadataSerializerId", r.metadata().serializerId());
                n.put("metadataManifest", r.metadata().manifest());
                putPayload(n, "metadata", r.metadata().serializerId(), r.metadata().bytes());
            }
        }
        n.put("segment", file.getFileName().toString());
        n.put("offset", offset);
        return n;
    }

    /** Puts {@code bytes} as JSON under {@code field} when a Jackson serializer wrote them, else as base64. */
    private static void putPayload(ObjectNode n, String field, int serializerId, byte[] bytes) {
        JsonNode json = decode(serializerId, bytes);
        if (json != null) {
            n.set(field, json);
        } else {
            n.put(field + "Base64", Base64.getEncoder().encodeToString(bytes));
        }
    }

    /** The bytes as a JSON tree when a Jackson serializer wrote them, else null. */
    private static JsonNode decode(int serializerId, byte[] bytes) {
        try {
            if (serializerId == JACKSON_CBOR) {
                return CBOR.readTree(uncompressed(bytes));
            }
            if (serializerId == JACKSON_JSON) {
                return JSON.readTree(uncompressed(bytes));
            }
        } catch (IOException e) {
            // Not what the serializer id promised (or a compression we do not know): fall back to base64.
            return null;
        }
        return null;
    }

    /** Pekko's Jackson serializers may gzip big payloads; the gzip magic says so. */
    private static InputStream uncompressed(byte[] bytes) throws IOException {
        InputStream in = new ByteArrayInputStream(bytes);
        if (bytes.length > 2 && (bytes[0] & 0xFF) == 0x1F && (bytes[1] & 0xFF) == 0x8B) {
            return new GZIPInputStream(in);
        }
        return in;
    }

    /**
     * Checks every record's CRC and framing, that positions are dense within each segment, and that each persistence
     * id's sequence numbers increase. A torn tail is a note (normal after a crash, truncated on the next open);
     * anything else is a problem. Sequence number gaps are notes: a rejected write (an event that could not be
     * serialized) legitimately leaves one.
     */
    public static VerifyReport verify(Path dir) throws IOException {
        Map<String, Long> lastSeq = new HashMap<>();
        List<String> notes = new ArrayList<>();
        List<String> problems = new ArrayList<>();
        long[] counts = new long[3];
        LogScanner.Result result = LogScanner.scan(dir, MAX_RECORD_BYTES, false, (file, offset, length, r) -> {
            counts[0]++;
            if (r.type() == RecordType.TOMBSTONE) {
                counts[2]++;
                lastSeq.merge(r.persistenceId(), r.sequenceNr(), Math::max);
                return;
            }
            counts[1]++;
            Long last = lastSeq.get(r.persistenceId());
            if (last != null && r.sequenceNr() <= last) {
                problems.add("sequence number " + r.sequenceNr() + " of " + r.persistenceId()
                        + " does not follow " + last + " (duplicate or out of order) in " + file + " at offset "
                        + offset);
            } else if (last != null && r.sequenceNr() > last + 1) {
                notes.add("sequence numbers " + (last + 1) + ".." + (r.sequenceNr() - 1) + " of "
                        + r.persistenceId() + " are missing before " + file + " offset " + offset
                        + " (rejected writes leave such gaps)");
            }
            lastSeq.merge(r.persistenceId(), r.sequenceNr(), Math::max);
        });
        for (LogScanner.Damage d : result.damages()) {
            if (d.tail()) {
                notes.add(d + " (normal after a crash; truncated on the next open)");
            } else {
                problems.add(d.toString());
            }
        }
        return new VerifyReport(result.segments().size(), counts[0], counts[1], counts[2], lastSeq.size(), notes,
                problems);
    }
}
