package io.opentmr.access;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class AccessListTest {

    /** allow rules, deny rules, peer address, claimed host, allowed? */
    static Stream<Arguments> rules() {
        return Stream.of(
                Arguments.of(List.of(), List.of(), "10.1.2.3", "ws-1", true),
                Arguments.of(List.of("10.1.0.0/16"), List.of(), "10.1.2.3", "ws-1", true),
                Arguments.of(List.of("10.1.0.0/16"), List.of(), "10.2.2.3", "ws-1", false),
                Arguments.of(List.of("10.1.2.3"), List.of(), "10.1.2.3", "ws-1", true),
                Arguments.of(List.of("10.1.2.0/23"), List.of(), "10.1.3.255", "ws-1", true),
                Arguments.of(List.of("10.1.2.0/23"), List.of(), "10.1.4.0", "ws-1", false),
                Arguments.of(List.of("0.0.0.0/0"), List.of("10.1.2.3"), "10.1.2.3", "ws-1", false),
                Arguments.of(List.of(), List.of("10.0.0.0/8"), "10.9.9.9", "ws-1", false),
                Arguments.of(List.of(), List.of("10.0.0.0/8"), "192.168.1.1", "ws-1", true),
                Arguments.of(List.of("ws-1"), List.of(), "10.1.2.3", "WS-1", true),
                Arguments.of(List.of("ws-1"), List.of(), "10.1.2.3", "ws-2", false),
                Arguments.of(List.of("*.plant.example"), List.of(), "10.1.2.3", "cad.plant.example", true),
                Arguments.of(List.of("*.plant.example"), List.of(), "10.1.2.3", "plantexample", false),
                Arguments.of(List.of("*.plant.example"), List.of("cad.plant.example"), "10.1.2.3",
                        "cad.plant.example", false),
                Arguments.of(List.of("fd00::/8"), List.of(), "fd12::1", "ws-1", true),
                Arguments.of(List.of("fd00::/8"), List.of(), "10.1.2.3", "ws-1", false),
                Arguments.of(List.of(), List.of("::ffff:10.0.0.0/104"), "10.9.9.9", "ws-1", false),
                Arguments.of(List.of(), List.of("::ffff:10.0.0.1"), "10.0.0.1", "ws-1", false),
                Arguments.of(List.of(), List.of("::ffff:10.0.0.1"), "10.0.0.2", "ws-1", true),
                // IPv6 blocks, deny winning over a wider allow.
                Arguments.of(List.of("fd00::/8"), List.of("fd00:1::/32"), "fd00:1::5", "ws-1", false),
                Arguments.of(List.of("fd00::/8"), List.of("fd00:1::/32"), "fd00:2::5", "ws-1", true),
                Arguments.of(List.of("2001:db8::/126"), List.of(), "2001:db8::3", "ws-1", true),
                Arguments.of(List.of("2001:db8::/126"), List.of(), "2001:db8::4", "ws-1", false),
                Arguments.of(List.of("::1"), List.of(), "::1", "ws-1", true),
                Arguments.of(List.of("10.0.0.0/8"), List.of("10.1.0.0/16"), "10.1.0.9", "ws-1", false));
    }

    @ParameterizedTest(name = "allow {0} deny {1}: {2} ({3}) -> {4}")
    @MethodSource("rules")
    void rule(List<String> allow, List<String> deny, String peer, String host, boolean allowed) throws Exception {
        String denial = AccessList.parse(allow, deny).denial(InetAddress.getByName(peer), host);
        assertEquals(allowed, denial == null, String.valueOf(denial));
    }

    @Test
    void aDenialSaysWhichRule() throws Exception {
        String denial = AccessList.parse(List.of(), List.of("10.0.0.0/8")).denial(InetAddress.getByName("10.1.1.1"),
                "x");
        assertTrue(denial.contains("10.0.0.0/8"), denial);
        assertNull(AccessList.OPEN.denial(InetAddress.getByName("10.1.1.1"), "x"));
    }

    @Test
    void aRuleThatIsNeitherAddressNorNameIsRefused() {
        for (String bad : List.of("10.0.0.0/33", "10.0.0.0/x", "bad name", "", "host/8", "a_b", "::ffff:0.0.0.0/80")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> AccessList.parse(List.of(bad), List.of()), bad);
            assertTrue(e.getMessage().contains("'"), e.getMessage());
        }
    }
}
