package io.opentmr.access;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import io.netty.util.NetUtil;
import java.net.InetAddress;
import java.util.List;
import java.util.Locale;

/**
 * Which clients may talk to a backend: rules are an IP address, a CIDR block, a host name or
 * {@code *.domain}. Deny wins over allow; with an empty allow list everyone not denied is allowed.
 * Addresses are matched against the connection's peer address, names against the host the client
 * names in HELLO: no DNS look-up ever runs on the request path. Shared by the backend
 * ({@code opentmr.backend.access-list}) and the TMR node ({@code opentmr.node.access-list}).
 */
public final class AccessList {

    public static final AccessList OPEN = new AccessList(List.of(), List.of());

    private final List<Rule> allow;
    private final List<Rule> deny;

    private AccessList(List<Rule> allow, List<Rule> deny) {
        this.allow = allow;
        this.deny = deny;
    }

    /** @throws IllegalArgumentException naming the first rule that is neither address, CIDR nor name */
    public static AccessList parse(List<String> allow, List<String> deny) {
        return new AccessList(allow.stream().map(Rule::parse).toList(), deny.stream().map(Rule::parse).toList());
    }

    /** Whether a rule matches by name: those match the host name a client claims, which it can choose. */
    public boolean hasNameRules() {
        return java.util.stream.Stream.concat(allow.stream(), deny.stream()).anyMatch(r -> r.name != null);
    }

    /**
     * The rules under {@code path}: {@code path.allow} and {@code path.deny}, lists of strings.
     *
     * @throws ConfigException.BadValue naming the key and the first bad rule
     */
    public static AccessList fromConfig(Config config, String path) {
        try {
            return parse(config.getStringList(path + ".allow"), config.getStringList(path + ".deny"));
        } catch (IllegalArgumentException e) {
            throw new ConfigException.BadValue(path, e.getMessage());
        }
    }

    /**
     * What an operator is told when the list has host-name rules ({@code path}: where the list is configured):
     * those match the name a client claims, which the client chooses.
     */
    public static String nameRulesWarning(String path) {
        return "The access list (" + path + ") has host-name rules: they match the name a client gives in HELLO, "
                + "which the client chooses. Use addresses or CIDR blocks to keep hosts out.";
    }

    /** For log lines: how many rules of each kind. */
    @Override
    public String toString() {
        return allow.size() + " allow rule(s), " + deny.size() + " deny rule(s)";
    }

    /** The rule that denies this client, or {@code null} if it may connect. */
    public String denial(InetAddress peer, String claimedHost) {
        for (Rule rule : deny) {
            if (rule.matches(peer, claimedHost)) {
                return "denied by rule '" + rule.text + "'";
            }
        }
        if (allow.isEmpty()) {
            return null;
        }
        for (Rule rule : allow) {
            if (rule.matches(peer, claimedHost)) {
                return null;
            }
        }
        return "matches no allow rule";
    }

    private record Rule(String text, byte[] network, int prefixBits, String name) {

        static Rule parse(String text) {
            String rule = text.strip();
            int slash = rule.indexOf('/');
            String addressPart = slash < 0 ? rule : rule.substring(0, slash);
            byte[] address = NetUtil.createByteArrayFromIpAddressString(addressPart);
            if (address != null) {
                int bits = address.length * 8;
                // Java reports an IPv4 peer as a 4-byte address even on an IPv6 socket: a rule written as an
                // IPv4-mapped IPv6 address must become the IPv4 rule it means, or it never matches.
                boolean mapped = address.length == 16 && isIpv4Mapped(address);
                if (slash >= 0) {
                    try {
                        bits = Integer.parseInt(rule.substring(slash + 1));
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("bad prefix length in '" + text + "'");
                    }
                    if (bits < 0 || bits > address.length * 8) {
                        throw new IllegalArgumentException("prefix length out of range in '" + text + "'");
                    }
                }
                if (mapped) {
                    if (bits < 96) {
                        throw new IllegalArgumentException("'" + text + "' covers more than the IPv4-mapped range; "
                                + "write the IPv4 rule instead");
                    }
                    return new Rule(rule, java.util.Arrays.copyOfRange(address, 12, 16), bits - 96, null);
                }
                return new Rule(rule, address, bits, null);
            }
            if (slash >= 0 || rule.isEmpty() || !rule.matches("(\\*\\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")) {
                throw new IllegalArgumentException("'" + text + "' is neither an IP address, a CIDR block nor a host name");
            }
            return new Rule(rule, null, 0, rule.toLowerCase(Locale.ROOT));
        }

        private static boolean isIpv4Mapped(byte[] address) {
            for (int i = 0; i < 10; i++) {
                if (address[i] != 0) {
                    return false;
                }
            }
            return address[10] == (byte) 0xFF && address[11] == (byte) 0xFF;
        }

        boolean matches(InetAddress peer, String claimedHost) {
            if (name != null) {
                String host = claimedHost.toLowerCase(Locale.ROOT);
                return name.startsWith("*.") ? host.endsWith(name.substring(1)) : host.equals(name);
            }
            byte[] candidate = peer.getAddress();
            if (candidate.length != network.length) {
                return false;
            }
            int full = prefixBits / 8;
            for (int i = 0; i < full; i++) {
                if (candidate[i] != network[i]) {
                    return false;
                }
            }
            int rest = prefixBits % 8;
            if (rest == 0) {
                return true;
            }
            int mask = 0xFF << (8 - rest) & 0xFF;
            return (candidate[full] & mask) == (network[full] & mask);
        }
    }
}
