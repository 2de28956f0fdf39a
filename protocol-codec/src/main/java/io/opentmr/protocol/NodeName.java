package io.opentmr.protocol;

import java.util.regex.Pattern;

/**
 * What a TMR node may call itself. The name is the node's identity towards the backends: it is bound
 * into the peer challenge (PEER_PROOF), the backends hold the active lease under it, and it appears in
 * their logs and tracking files. So it is short, printable ASCII, and one token: 1 to {@value #MAX_CHARS}
 * characters of letters, digits and {@code . _ - : @}, starting with a letter or digit.
 */
public final class NodeName {

    public static final int MAX_CHARS = 64;

    private static final Pattern VALID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._:@-]*");

    private NodeName() {
    }

    /** Why {@code name} is not a valid node name, or {@code null} when it is. */
    public static String problem(String name) {
        if (name == null || name.isEmpty()) {
            return "a node name must not be empty";
        }
        if (name.length() > MAX_CHARS) {
            return "a node name has at most " + MAX_CHARS + " characters, not " + name.length();
        }
        if (!VALID.matcher(name).matches()) {
            return "a node name is letters, digits and . _ - : @, starting with a letter or digit; '"
                    + printable(name) + "' is not";
        }
        return null;
    }

    /** The name for an error text: control and non-ASCII characters escaped, so a log line stays one line. */
    private static String printable(String name) {
        StringBuilder out = new StringBuilder();
        name.codePoints().limit(MAX_CHARS + 1L).forEach(cp -> {
            if (cp >= 0x20 && cp < 0x7F) {
                out.appendCodePoint(cp);
            } else {
                out.append(String.format("\\u%04x", cp));
            }
        });
        return out.toString();
    }
}
