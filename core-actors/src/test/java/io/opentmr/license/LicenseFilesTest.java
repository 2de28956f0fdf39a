package io.opentmr.license;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.GroupKeyStatement;
import io.opentmr.protocol.Serial;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyPair;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LicenseFilesTest {

    private static final long FIRM = 6_000_010;
    private static final Clock CLOCK = Clock.fixed(Instant.parse("2026-11-23T10:00:00Z"), ZoneOffset.UTC);

    @TempDir
    Path dir;

    private final KeyPair vendor = Ed25519.generate();
    private final LicenseIssuer issuer = new LicenseIssuer(vendor.getPrivate(), vendor.getPublic(), CLOCK,
            new SecureRandom(new byte[] {1}));

    private static ContainerContext context(long number, long cmActId, long counter) {
        return ContainerContext.of(new Serial(129, number), cmActId, counter == 0 ? Map.of() : Map.of(FIRM, counter),
                Ed25519.raw(Ed25519.generate().getPublic()));
    }

    private static LicenseIssuer.Request request(boolean tmr) {
        return new LicenseIssuer.Request(FIRM, 42, 10, tmr, 500L, Instant.parse("2027-01-01T00:00:00Z"), null,
                Duration.ofDays(7), Duration.ofDays(14), 3, "Simulation");
    }

    @Test
    void keygenWritesAPrivateFileOnlyTheOwnerCanReadAndRefusesToOverwrite() throws IOException {
        KeyPair pair = VendorKeyFiles.generate(dir);
        Path privateFile = dir.resolve(VendorKeyFiles.PRIVATE_FILE);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(privateFile)));
        assertArrayEquals(pair.getPrivate().getEncoded(), VendorKeyFiles.readPrivate(privateFile).getEncoded());
        assertArrayEquals(Ed25519.raw(pair.getPublic()),
                Ed25519.raw(VendorKeyFiles.readPublic(dir.resolve(VendorKeyFiles.PUBLIC_FILE))));
        assertThrows(FileAlreadyExistsException.class, () -> VendorKeyFiles.generate(dir));
    }

    @Test
    void anOrdinaryIssueGivesOneFilePerContainerWithItsNextCounter() throws Exception {
        ContainerContext first = context(1, 7, 0);
        ContainerContext second = context(2, 9, 4);
        LicenseIssuer.Result result = issuer.issue(VendorState.empty(), List.of(first, second), request(false));

        assertEquals(2, result.files().size());
        LicenseUpdate a = LicenseUpdateFile.verify(result.files().get(0).file().toJson(), List.of(vendor.getPublic()));
        LicenseUpdate b = LicenseUpdateFile.verify(result.files().get(1).file().toJson(), List.of(vendor.getPublic()));
        assertEquals("129-1", a.target());
        assertEquals(1, a.firmUpdateCounter());
        assertEquals(5, b.firmUpdateCounter());
        assertEquals(0, a.items().get(0).tmrId());
        assertEquals(500L, a.items().get(0).unitCounter());
        assertEquals(Duration.ofDays(7), a.items().get(0).usagePeriod());
        assertTrue(a.tmrGroupKeys().isEmpty());
        assertEquals(VendorState.empty(), result.state(), "an ordinary issue takes no TMR-Id");
    }

    @Test
    void aTmrIssueGivesThreeIdenticalCopiesWithConsecutiveTmrIds() throws Exception {
        List<ContainerContext> group = List.of(context(1, 7, 0), context(2, 7, 3), context(3, 7, 0));
        LicenseIssuer.Result first = issuer.issue(VendorState.empty(), group, request(true));

        List<LicenseUpdate> copies = first.files().stream().map(f -> verify(f.file())).toList();
        assertEquals(3, copies.size());
        for (LicenseUpdate copy : copies) {
            assertEquals(copies.get(0).items(), copy.items(), "identical product items, secret included");
            assertEquals(1, copy.items().get(0).tmrId());
            assertEquals(group.stream().map(ContainerContext::publicKey).toList(), copy.tmrGroupKeys());
            // One statement of the group, signed by the vendor, in every copy.
            assertEquals(copies.get(0).tmrGroupStatement(), copy.tmrGroupStatement());
            GroupKeyStatement statement = copy.groupStatement();
            assertTrue(statement.signatureHolds());
            assertArrayEquals(Ed25519.raw(vendor.getPublic()), statement.vendorKey().toArray());
            assertEquals(List.of("129-1", "129-2", "129-3"), statement.members().stream()
                    .map(m -> m.serial().toString()).toList());
            assertEquals(FIRM, statement.firmCode());
            assertEquals(7, statement.cmActId());
        }
        assertEquals(null, verify(issuer.issue(VendorState.empty(), List.of(context(4, 7, 0)), request(false)).files()
                .get(0).file()).tmrGroupStatement(), "an ordinary item has no group");
        assertEquals(List.of(1L, 4L, 1L), copies.stream().map(LicenseUpdate::firmUpdateCounter).toList());

        Path stateFile = dir.resolve("vendor-state.json");
        first.state().save(stateFile);
        LicenseIssuer.Result second = issuer.issue(VendorState.load(stateFile), group, request(true));
        assertEquals(2, verify(second.files().get(0).file()).items().get(0).tmrId());
        assertEquals(3, second.state().next(FIRM));
    }

    @Test
    void aTmrIssueNeedsThreeContainersOfOneGroup() {
        LicenseRefusedException two = assertThrows(LicenseRefusedException.class, () ->
                issuer.issue(VendorState.empty(), List.of(context(1, 7, 0), context(2, 7, 0)), request(true)));
        assertTrue(two.getMessage().contains("exactly 3 containers, not 2"));

        LicenseRefusedException mixed = assertThrows(LicenseRefusedException.class, () -> issuer.issue(
                VendorState.empty(), List.of(context(1, 7, 0), context(2, 7, 0), context(3, 8, 0)), request(true)));
        assertTrue(mixed.getMessage().contains("share one CmActId"));

        ContainerContext once = context(1, 7, 0);
        LicenseRefusedException twice = assertThrows(LicenseRefusedException.class, () ->
                issuer.issue(VendorState.empty(), List.of(once, once, context(3, 7, 0)), request(true)));
        assertTrue(twice.getMessage().contains("named twice"));
    }

    @Test
    void aGroupStatementNotSignedByTheFilesVendorIsRefusedAndAFileWithoutOneStillImports() throws Exception {
        List<ContainerContext> group = List.of(context(1, 7, 0), context(2, 7, 0), context(3, 7, 0));
        LicenseUpdate issued = issuer.issue(VendorState.empty(), group, request(true)).files().get(0).update();

        // Another vendor's statement of the same keys, in a file this vendor signs: refused at import.
        KeyPair other = Ed25519.generate();
        String foreign = new LicenseIssuer(other.getPrivate(), other.getPublic(), CLOCK, new SecureRandom())
                .issue(VendorState.empty(), group, request(true)).files().get(0).update().tmrGroupStatement();
        LicenseUpdate mixed = new LicenseUpdate(issued.target(), issued.cmActId(), issued.firmCode(),
                issued.firmUpdateCounter(), issued.issuedAt(), issued.items(), issued.tmrGroupKeys(), foreign);
        LicenseRefusedException refused = assertThrows(LicenseRefusedException.class, () -> LicenseUpdateFile.verify(
                LicenseUpdateFile.sign(mixed, vendor.getPrivate(), vendor.getPublic()).toJson(),
                List.of(vendor.getPublic(), other.getPublic())));
        assertEquals(CmError.ACCESS_DENIED, refused.error());
        assertTrue(refused.getMessage().contains("group key statement"), refused.getMessage());

        // A statement of other containers than the file's group: the file is malformed.
        String otherGroup = issuer.issue(VendorState.empty(), List.of(context(4, 7, 0), context(5, 7, 0),
                context(6, 7, 0)), request(true)).files().get(0).update().tmrGroupStatement();
        assertThrows(IllegalArgumentException.class, () -> new LicenseUpdate(issued.target(), issued.cmActId(),
                issued.firmCode(), issued.firmUpdateCounter(), issued.issuedAt(), issued.items(), issued.tmrGroupKeys(),
                otherGroup));

        // The older format: the same file without a statement still verifies.
        LicenseUpdate older = new LicenseUpdate(issued.target(), issued.cmActId(), issued.firmCode(),
                issued.firmUpdateCounter(), issued.issuedAt(), issued.items(), issued.tmrGroupKeys());
        var body = (com.fasterxml.jackson.databind.node.ObjectNode) LicenseJson.MAPPER.valueToTree(older);
        assertTrue(body.has("tmrGroupStatement"));
        body.remove("tmrGroupStatement");
        byte[] bodyBytes = LicenseJson.MAPPER.writeValueAsBytes(body);
        Base64.Encoder base64 = Base64.getEncoder();
        byte[] olderFile = new LicenseUpdateFile(LicenseUpdateFile.FORMAT, base64.encodeToString(Ed25519.raw(
                vendor.getPublic())), base64.encodeToString(bodyBytes), base64.encodeToString(Ed25519.sign(
                vendor.getPrivate(), bodyBytes))).toJson();
        LicenseUpdate read = LicenseUpdateFile.verify(olderFile, List.of(vendor.getPublic()));
        assertEquals(older, read);
        assertEquals(null, read.groupStatement());
    }

    @Test
    void aFileSignedByAnUntrustedVendorIsRefusedWith231() throws Exception {
        byte[] file = issueOne().toJson();
        LicenseRefusedException refused = assertThrows(LicenseRefusedException.class,
                () -> LicenseUpdateFile.verify(file, List.of(Ed25519.generate().getPublic())));
        assertEquals(CmError.ACCESS_DENIED, refused.error());
        assertTrue(refused.getMessage().contains("does not trust"), refused.getMessage());
    }

    @Test
    void anAlteredBodyIsRefusedWith231() throws Exception {
        LicenseUpdateFile original = issueOne();
        String body = new String(Base64.getDecoder().decode(original.body()), StandardCharsets.UTF_8);
        String altered = body.replace("\"quantity\" : 10", "\"quantity\" : 1000");
        assertFalse(altered.equals(body), "the test really changed the quantity");
        LicenseUpdateFile forged = new LicenseUpdateFile(original.format(), original.vendorKey(),
                Base64.getEncoder().encodeToString(altered.getBytes(StandardCharsets.UTF_8)), original.signature());
        LicenseRefusedException refused = assertThrows(LicenseRefusedException.class,
                () -> LicenseUpdateFile.verify(forged.toJson(), List.of(vendor.getPublic())));
        assertEquals(CmError.ACCESS_DENIED, refused.error());
        assertTrue(refused.getMessage().contains("bad signature"), refused.getMessage());
    }

    @Test
    void malformedFilesAreRefusedWith105() throws Exception {
        LicenseUpdateFile good = issueOne();
        List<byte[]> malformed = List.of(
                "not json at all".getBytes(StandardCharsets.UTF_8),
                "{}".getBytes(StandardCharsets.UTF_8),
                new LicenseUpdateFile("opentmr-license-update/9", good.vendorKey(), good.body(), good.signature())
                        .toJson(),
                new LicenseUpdateFile(good.format(), good.vendorKey(), "%%%", good.signature()).toJson(),
                "{\"format\":\"opentmr-license-update/1\",\"vendorKey\":\"AA==\",\"body\":\"AA==\",\"signature\":\"AA==\",\"extra\":1}"
                        .getBytes(StandardCharsets.UTF_8));
        for (byte[] file : malformed) {
            LicenseRefusedException refused = assertThrows(LicenseRefusedException.class,
                    () -> LicenseUpdateFile.verify(file, List.of(vendor.getPublic())));
            assertEquals(CmError.INVALID_PARAMETER, refused.error(), refused.getMessage());
            assertTrue(refused.getMessage().startsWith("malformed") || refused.getMessage().contains("format"),
                    refused.getMessage());
        }
    }

    @Test
    void aContextSurvivesItsFileAndAMalformedOneIsRefused() throws Exception {
        ContainerContext context = context(59_885_682, 7, 12);
        assertEquals(context, ContainerContext.parse(context.toJson()));
        LicenseRefusedException refused = assertThrows(LicenseRefusedException.class,
                () -> ContainerContext.parse("{\"format\":\"opentmr-context/1\"}".getBytes(StandardCharsets.UTF_8)));
        assertEquals(CmError.INVALID_PARAMETER, refused.error());
    }

    private LicenseUpdateFile issueOne() throws LicenseRefusedException {
        return issuer.issue(VendorState.empty(), List.of(context(1, 7, 0)), request(false)).files().get(0).file();
    }

    private LicenseUpdate verify(LicenseUpdateFile file) {
        try {
            return LicenseUpdateFile.verify(file.toJson(), List.of(vendor.getPublic()));
        } catch (LicenseRefusedException e) {
            throw new AssertionError(e);
        }
    }
}
