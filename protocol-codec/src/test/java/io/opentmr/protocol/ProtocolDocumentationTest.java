package io.opentmr.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** {@code docs/protocol.md} is the specification: it must name everything the codec knows, exactly. */
class ProtocolDocumentationTest {

    private static String doc;

    @BeforeAll
    static void readDoc() throws IOException {
        Path module = Path.of(System.getProperty("basedir", "."));
        doc = Files.readString(module.resolve("../docs/protocol.md"), StandardCharsets.UTF_8);
    }

    @Test
    void everyMessageTypeHasATableRowAndASection() {
        for (MessageType type : MessageType.values()) {
            String code = String.format("0x%02X", type.code());
            assertTrue(Pattern.compile("(?m)^\\|\\s*" + code + "\\s*\\|\\s*" + type.name() + "\\s*\\|").matcher(doc).find(),
                    "table row '| " + code + " | " + type.name() + " |' in docs/protocol.md section 4");
            assertTrue(doc.contains(type.name() + " (" + code + ")"),
                    "a section '" + type.name() + " (" + code + ")' in docs/protocol.md section 5");
        }
    }

    @Test
    void theTypeTableNamesNoTypeTheCodeLacks() {
        Matcher row = Pattern.compile("(?m)^\\|\\s*0x([0-9A-F]{2})\\s*\\|\\s*([A-Z_]+)\\s*\\|").matcher(doc);
        Set<MessageType> documented = EnumSet.noneOf(MessageType.class);
        while (row.find()) {
            MessageType type = MessageType.fromCode(Integer.parseInt(row.group(1), 16));
            assertTrue(type != null && type.name().equals(row.group(2)), "documented type " + row.group(0));
            documented.add(type);
        }
        assertEquals(EnumSet.allOf(MessageType.class), documented);
    }

    @Test
    void everyErrorNumberIsDocumentedAndNoOther() {
        Matcher row = Pattern.compile("(?m)^\\|\\s*(\\d+)\\s*\\|\\s*([A-Z_]+)\\s*\\|\\s*\\S").matcher(doc);
        Set<CmError> documented = new HashSet<>();
        while (row.find()) {
            CmError error = CmError.fromCode(Integer.parseInt(row.group(1)));
            assertTrue(error != null && error.name().equals(row.group(2)),
                    "documented error " + row.group(1) + " " + row.group(2) + " exists in CmError");
            documented.add(error);
        }
        assertEquals(EnumSet.allOf(CmError.class), documented, "every CmError has a row in section 6");
    }

    @Test
    void hexExamplesAreWhatTheEncoderWrites() {
        Map<String, Frame> examples = Map.of(
                "HELLO", new Frame(1, new Message.Hello("cad", "ws-17", "anna", 4242)),
                "HELLO_OK", new Frame(1, new Message.HelloOk(ServerKind.TMR_ACTIVE, 0x1122334455667788L, 10_000,
                        "node-a")),
                "ACCESS", new Frame(2, new Message.Access(6_000_010, 42, 0, AccessMode.USERLIMIT)),
                "ACCESS_OK", new Frame(2, new Message.AccessOk(1001,
                        Bytes.fromHex("00112233445566778899aabbccddeeff"), new Serial(131, 59_885_682))),
                "ERROR", new Frame(2, new Message.Error(CmError.NO_MORE_LICENSES, "no more licenses")),
                "RESUME_MANY", new Frame(3, new Message.ResumeMany(List.of(
                        new Message.Resume(1001, Bytes.fromHex("00112233445566778899aabbccddeeff")),
                        new Message.Resume(1002, Bytes.fromHex("ffeeddccbbaa99887766554433221100"))))),
                "RESUMED_MANY", new Frame(3, new Message.ResumedMany(List.of(
                        new Message.ResumedMany.Outcome(1001, Message.ResumedMany.RESUMED),
                        new Message.ResumedMany.Outcome(1002, CmError.INVALID_HANDLE.code())))));
        Matcher block = Pattern.compile("<!-- example: ([A-Z_]+) -->\\s*```text\\n(.*?)```", Pattern.DOTALL)
                .matcher(doc);
        Set<String> seen = new HashSet<>();
        while (block.find()) {
            String name = block.group(1);
            Frame expected = examples.get(name);
            assertTrue(expected != null, "example " + name + " is checked by this test");
            byte[] documented = HexFormat.of().parseHex(block.group(2).replaceAll("\\s", ""));
            assertEquals(HexFormat.of().formatHex(Wire.encode(expected)), HexFormat.of().formatHex(documented),
                    "hex example " + name);
            seen.add(name);
        }
        assertEquals(examples.keySet(), seen, "every example is in the document");
    }
}
