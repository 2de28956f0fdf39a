package io.opentmr.tracking;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Instant;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/** A tracking line is the text the JSON mapper writes for the line's map, whatever its fields hold. */
class TrackingLineTest {

    @Property(tries = 300)
    void aLineIsWhatTheMapperWritesForItsFields(@ForAll("fields") Map<String, Object> fields,
                                                @ForAll("texts") String event) throws Exception {
        Instant at = Instant.ofEpochMilli(1_700_000_000_123L);
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("time", at.toString());
        line.put("event", event);
        line.put("container", "3-1234567");
        line.putAll(fields);
        assertEquals(TrackingLine.json().writeValueAsString(line), TrackingLine.of(at, event, "3-1234567", fields));
    }

    @Provide
    Arbitrary<String> texts() {
        // Quotes, backslashes, control characters, non-ASCII and surrogate pairs: escaped as the mapper escapes.
        return Arbitraries.strings().withChars("aZ09 \"\\\n\t\u0001\u007f\u00e9\u20ac").withCharRange('\ud83d', '\ud83d')
                .ofMaxLength(12).map(s -> s.replace("\ud83d", "\ud83d\ude00"))
                .injectDuplicates(0.1).edgeCases(c -> c.add(""));
    }

    @Provide
    Arbitrary<Map<String, Object>> fields() {
        Arbitrary<String> names = Arbitraries.of("firm", "product", "handle", "owner", "acknowledged", "text",
                "recovered", "time", "event", "container", "é\"x", "");
        return Arbitraries.maps(names, values(2)).ofMaxSize(8).map(LinkedHashMap::new);
    }

    private Arbitrary<Object> values(int depth) {
        List<Arbitrary<?>> kinds = new ArrayList<>(List.of(
                texts(), Arbitraries.longs(), Arbitraries.integers(), Arbitraries.of(true, false),
                Arbitraries.just(null), Arbitraries.doubles().ofScale(3), Arbitraries.shorts(),
                Arbitraries.longs().between(0, 99).map(n -> BitSet.valueOf(new long[] {n})),
                Arbitraries.integers().between(0, 9).map(n -> Map.of(n, "non-string key")),
                Arbitraries.longs().array(long[].class).ofMaxSize(3)));
        if (depth > 0) {
            kinds.add(Arbitraries.maps(texts(), values(depth - 1)).ofMaxSize(3).map(LinkedHashMap::new));
            kinds.add(values(depth - 1).list().ofMaxSize(3));
        }
        return Arbitraries.oneOf(kinds.stream().map(a -> a.map(v -> (Object) v)).toList());
    }
}
