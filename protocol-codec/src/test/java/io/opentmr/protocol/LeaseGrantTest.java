package io.opentmr.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.HexFormat;
import org.junit.jupiter.api.Test;

/** The signed bytes of a lease grant are part of the protocol: a node and three backends must agree on them. */
class LeaseGrantTest {

    private static final LeaseGrant GRANT = new LeaseGrant(LeaseGrant.ACTIVE_LEASE, "node-a", 7, 0x0102030405L,
            2_000, new Serial(129, 12_345_678), Bytes.EMPTY);

    @Test
    void signedPayloadIsTheLabelThenEveryFieldButTheSignature() {
        String expected = HexFormat.of().formatHex("opentmr-lease/1".getBytes(java.nio.charset.StandardCharsets.US_ASCII))
                + "000e" + HexFormat.of().formatHex("opentmr-active".getBytes(java.nio.charset.StandardCharsets.UTF_8))
                + "0006" + HexFormat.of().formatHex("node-a".getBytes(java.nio.charset.StandardCharsets.UTF_8))
                + "0000000000000007" + "0000000102030405" + "000007d0" + "81" + "00bc614e";
        assertEquals(expected, HexFormat.of().formatHex(GRANT.signedPayload()));
    }

    @Test
    void theSignatureIsNotPartOfWhatIsSigned() {
        assertArrayEquals(GRANT.signedPayload(), GRANT.withSignature(Bytes.of(new byte[64])).signedPayload());
        assertEquals("opentmr-active", LeaseGrant.ACTIVE_LEASE);
    }
}
