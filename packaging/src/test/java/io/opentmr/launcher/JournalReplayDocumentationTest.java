package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.opentmr.tmr.replay.ContainerView;
import io.opentmr.tmr.replay.HandleView;
import io.opentmr.tmr.replay.JournalView;
import io.opentmr.tmr.replay.LicenseView;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * {@code docs/journal-replay.md} is the contract the node's management routes match: its field tables name every field
 * {@code tmr journal replay --json} writes, and no other.
 */
class JournalReplayDocumentationTest {

    private static final Pattern FIELD_ROW = Pattern.compile("(?m)^\\| `([A-Za-z\\[\\]\\.]+)` \\|");
    private static final Pattern JOURNAL_FIELD = Pattern.compile("^(containers|licenses)\\[\\]\\.journal\\.(.+)$");

    @Test
    void theFieldTablesNameEveryFieldTheJsonHasAndNoOther() throws Exception {
        Path module = Path.of(System.getProperty("basedir", "."));
        String doc = Files.readString(module.resolve("../docs/journal-replay.md"), StandardCharsets.UTF_8);
        Set<String> documented = new TreeSet<>();
        Matcher row = FIELD_ROW.matcher(doc);
        while (row.find()) {
            documented.add(row.group(1));
        }

        // Every optional object present, so that every field shows.
        JournalView journal = new JournalView("tmr-license|6000010-101-1", 8, 9, JournalView.SNAPSHOT,
                new JournalView.Snapshot(6, "2027-03-01T09:12:44.239Z"), 2, 3, "2027-03-01T09:12:44.615Z");
        NodeJournalReplay.Result result = new NodeJournalReplay.Result("/j", "/j/snapshots", null, null, null,
                List.of(new ContainerView("131-1", 7, List.of("6000010:101#1"), journal)),
                List.of(new LicenseView("6000010:101#1", 6000010, 101, 1, "131-1", new LicenseView.Seats(1L, 10L), 1,
                        5L, 3, "12", journal)),
                List.of(new HandleView("12", "6000010:101#1", "EXCLUSIVE", 0, new HandleView.Owner("ws", "10.0.0.1",
                        "ann", 7), "-3", 1, "2027-03-01T09:12:43.910Z", 9L, List.of(1, 2))),
                List.of(new NodeJournalReplay.Skipped("tmr-handle|1", 2, "why")), List.of("a note"));
        Set<String> written = new TreeSet<>();
        paths("", new ObjectMapper().readTree(Output.toJson(result.json())), written);

        assertEquals(documented, written, "docs/journal-replay.md's field tables and the JSON written");
    }

    /** Every field's path: {@code a.b} in objects, {@code a[].b} in arrays of objects; a container's journal as {@code journal.x}. */
    private static void paths(String prefix, JsonNode node, Set<String> out) {
        if (node.isObject()) {
            for (Map.Entry<String, JsonNode> field : node.properties()) {
                String path = prefix.isEmpty() ? field.getKey() : prefix + "." + field.getKey();
                Matcher journal = JOURNAL_FIELD.matcher(path);
                out.add(journal.matches() ? "journal." + journal.group(2) : path);
                paths(path, field.getValue(), out);
            }
        } else if (node.isArray()) {
            for (JsonNode element : node) {
                if (element.isObject()) {
                    paths(prefix + "[]", element, out);
                }
            }
        }
    }

    @Test
    void theUsageLineNamesEveryOption() throws IOException {
        Path module = Path.of(System.getProperty("basedir", "."));
        String doc = Files.readString(module.resolve("../docs/journal-replay.md"), StandardCharsets.UTF_8);
        String usage = Tmr.commandLine().getSubcommands().get("journal").getSubcommands().get("replay").getUsageMessage();
        for (String option : List.of("--dir", "--snapshot-dir", "--at", "--persistence-id", "--json")) {
            assertEquals(true, usage.contains(option) && doc.contains("| `" + option + "` |"), option);
        }
    }
}
