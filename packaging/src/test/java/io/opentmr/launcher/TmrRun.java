package io.opentmr.launcher;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;

/** {@code tmr ARGS} run in this JVM, and what it printed: its exit code, stdout (stripped) and stderr. */
record TmrRun(int exit, String out, String err) {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** What it printed on stdout, as JSON. */
    JsonNode json() throws Exception {
        return JSON.readTree(out);
    }

    /** Runs {@code tmr ARGS}; stdout is System.out swapped for the run, so runs take turns. */
    static synchronized TmrRun of(String... args) {
        PrintStream realOut = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        StringWriter err = new StringWriter();
        try (PrintStream capture = new PrintStream(out, true, StandardCharsets.UTF_8)) {
            System.setOut(capture);
            var commandLine = Tmr.commandLine();
            commandLine.setErr(new PrintWriter(err, true));
            int exit = commandLine.execute(args);
            return new TmrRun(exit, out.toString(StandardCharsets.UTF_8).strip(), err.toString());
        } finally {
            System.setOut(realOut);
        }
    }
}
