package io.opentmr.launcher;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.opentmr.client.CmException;
import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.Map;

/** What commands print: text for people, one JSON object with {@code --json} for scripts. Logs go to stderr. */
final class Output {

    static final int OK = 0;
    static final int CM_ERROR = 1;
    static final int USAGE = 2;
    /**
     * A twin node's exit when its stopped incarnation's actor system does not terminate: its supervisor (systemd's
     * {@code Restart=}, or {@code tmr demo}) starts it afresh, as the standby. EX_TEMPFAIL of sysexits.h.
     */
    static final int RESTART = 75;

    private static final ObjectMapper JSON = JsonMapper.builder().build();

    private final boolean json;
    private final PrintStream out;
    private final PrintStream err;

    Output(boolean json, PrintStream out, PrintStream err) {
        this.json = json;
        this.out = out;
        this.err = err;
    }

    /** Prints {@code fields} as JSON, or {@code text} for people. */
    void result(String text, Map<String, ?> fields) {
        if (json) {
            out.println(toJson(fields));
        } else {
            out.println(text);
        }
    }

    /** A CodeMeter error: exit code 1, and {@code {"error": N, "message": "…"}} with --json. */
    int cmError(CmException e) {
        if (json) {
            Map<String, Object> fields = new LinkedHashMap<>();
            fields.put("error", e.code());
            fields.put("message", e.text());
            out.println(toJson(fields));
        } else {
            err.println("tmr: error " + e.code() + ": " + e.text());
        }
        return CM_ERROR;
    }

    static String toJson(Object value) {
        try {
            return JSON.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("output not representable as JSON", e);
        }
    }
}
