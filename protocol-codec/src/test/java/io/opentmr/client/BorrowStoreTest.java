package io.opentmr.client;

import static io.opentmr.client.BorrowedLicenseTest.assertCode;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.Serial;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** Storing, reloading and refusing borrowed licenses, and the borrow and return steps without a server. */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class BorrowStoreTest {

    private static final long FIRM = 6_000_010;
    private static final long PRODUCT = 42;
    private static final String CLIENT = "ws-17/anna";
    private static final Instant NOW = Instant.parse("2026-11-23T12:00:00Z");
    private static final Instant EXPIRY = NOW.plusSeconds(7 * 24 * 3600);
    private static final Clock CLOCK = Clock.fixed(NOW, ZoneOffset.UTC);

    @TempDir
    Path dir;

    private final BorrowTestIssuer issuer = new BorrowTestIssuer();

    private BorrowedLicense license(long ticketId, long product, String client, Instant expiry) {
        return BorrowedLicense.of(issuer.issue(ticketId, FIRM, product, client, expiry.toEpochMilli()),
                issuer.publicKey());
    }

    private Path fileOf(long ticketId) {
        return dir.resolve("ticket-" + ticketId + ".borrow");
    }

    @Test
    void aStoredTicketGrantsOfflineAccess() {
        BorrowStore store = BorrowStore.open(dir);
        BorrowedLicense license = license(1, PRODUCT, CLIENT, EXPIRY);
        store.save(license);

        assertEquals(license, store.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
    }

    @Test
    void afterExpiryOfflineAccessIsRefusedWith35() {
        BorrowStore store = BorrowStore.open(dir);
        store.save(license(1, PRODUCT, CLIENT, EXPIRY));

        assertCode(CmError.EXPIRED, () -> store.offlineAccess(FIRM, PRODUCT, CLIENT, Clock.fixed(EXPIRY, ZoneOffset.UTC)));
        assertCode(CmError.EXPIRED, () -> store.offlineAccess(FIRM, PRODUCT, CLIENT,
                Clock.offset(CLOCK, Duration.ofDays(30))));
    }

    @Test
    void anotherClientIsRefusedWith231() {
        BorrowStore store = BorrowStore.open(dir);
        store.save(license(1, PRODUCT, CLIENT, EXPIRY));

        assertCode(CmError.ACCESS_DENIED, () -> store.offlineAccess(FIRM, PRODUCT, "ws-18/bob", CLOCK));
    }

    @Test
    void noTicketForTheProductIs200() {
        BorrowStore store = BorrowStore.open(dir);
        assertCode(CmError.ENTRY_NOT_FOUND, () -> store.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));

        store.save(license(1, PRODUCT + 1, CLIENT, EXPIRY));
        assertCode(CmError.ENTRY_NOT_FOUND, () -> store.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
        assertCode(CmError.ENTRY_NOT_FOUND, () -> store.offlineAccess(FIRM + 1, PRODUCT + 1, CLIENT, CLOCK));
        assertCode(CmError.ENTRY_NOT_FOUND, () -> store.load(1234));
    }

    @Test
    void ofSeveralTicketsTheValidOneThatLastsLongestWins() {
        BorrowStore store = BorrowStore.open(dir);
        store.save(license(1, PRODUCT, CLIENT, NOW.minusSeconds(60)));
        store.save(license(2, PRODUCT, "ws-18/bob", EXPIRY.plusSeconds(3600)));
        store.save(license(3, PRODUCT, CLIENT, EXPIRY));
        store.save(license(4, PRODUCT, CLIENT, EXPIRY.plusSeconds(60)));

        assertEquals(4, store.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK).ticketId());
        // Once all of this client's have expired, that is what it is told, not that bob's is not his.
        assertCode(CmError.EXPIRED, () -> store.offlineAccess(FIRM, PRODUCT, CLIENT,
                Clock.fixed(EXPIRY.plusSeconds(60), ZoneOffset.UTC)));
    }

    @Test
    void aStoreReloadsWhatAnotherSavedAndForgetsWhatIsRemoved() throws IOException {
        BorrowedLicense one = license(1, PRODUCT, CLIENT, EXPIRY);
        BorrowedLicense two = license(-2, PRODUCT + 1, "host with ünïcode/user", EXPIRY.plusSeconds(1));
        BorrowStore writer = BorrowStore.open(dir.resolve("nested").resolve("borrows"));
        writer.save(one);
        writer.save(two);
        writer.save(one);

        BorrowStore reader = BorrowStore.open(dir.resolve("nested").resolve("borrows"));
        assertEquals(List.of(one, two), reader.all());
        assertEquals(two, reader.load(-2));
        assertEquals(one, reader.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));

        assertTrue(reader.remove(1));
        assertFalse(reader.remove(1));
        assertEquals(List.of(two), BorrowStore.open(writer.directory()).all());
        assertCode(CmError.ENTRY_NOT_FOUND, () -> reader.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
        try (Stream<Path> files = Files.list(writer.directory())) {
            assertEquals(List.of("ticket-18446744073709551614.borrow"),
                    files.map(file -> file.getFileName().toString()).toList(), "no temporary files are left");
        }
    }

    @Test
    void filesAreReadableByTheirOwnerOnly() throws IOException {
        Path store = dir.resolve("borrows");
        BorrowStore.open(store).save(license(1, PRODUCT, CLIENT, EXPIRY));
        if (store.getFileSystem().supportedFileAttributeViews().contains("posix")) {
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(fileOf(store, 1))));
            assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(store)));
        }
    }

    private static Path fileOf(Path store, long ticketId) {
        return store.resolve("ticket-" + ticketId + ".borrow");
    }

    @Test
    void anEditedExpiryInTheFileIsRefusedWith231() throws IOException {
        BorrowStore store = BorrowStore.open(dir);
        store.save(license(1, PRODUCT, CLIENT, EXPIRY));
        byte[] data = Files.readAllBytes(fileOf(1));
        // The i64 expiry follows magic (4), version (1), ids (8 + 4 + 4) and the client id (2 + 10).
        int expiry = 4 + 1 + 8 + 4 + 4 + 2 + CLIENT.length();
        data[expiry + 3]++;
        Files.write(fileOf(1), data);

        assertCode(CmError.ACCESS_DENIED, () -> store.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
        assertCode(CmError.ACCESS_DENIED, () -> store.load(1));
        assertEquals(List.of(), store.all());
    }

    @Test
    void everyFlippedBitIsRefusedAsACmException() throws IOException {
        BorrowStore store = BorrowStore.open(dir);
        BorrowedLicense license = license(1, PRODUCT, CLIENT, EXPIRY);
        store.save(license);
        byte[] good = Files.readAllBytes(fileOf(1));
        for (int i = 0; i < good.length; i++) {
            byte[] bad = good.clone();
            bad[i] ^= 0x10;
            Files.write(fileOf(1), bad);
            CmException e = assertThrows(CmException.class, () -> store.load(1), "flipped byte " + i);
            assertTrue(e.code() == 105 || e.code() == 231, "byte " + i + ": " + e.getMessage());
            assertThrows(CmException.class, () -> store.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
        }
        Files.write(fileOf(1), good);
        assertEquals(license, store.load(1));
    }

    @Test
    void garbageFilesAreRefusedWith105AndSkipped() throws IOException {
        BorrowStore store = BorrowStore.open(dir);
        BorrowedLicense valid = license(9, PRODUCT, CLIENT, EXPIRY);
        store.save(valid);
        byte[] good = Files.readAllBytes(fileOf(9));
        List<byte[]> garbage = new ArrayList<>();
        garbage.add(new byte[0]);
        garbage.add("{\"ticketId\": 1}".getBytes(StandardCharsets.UTF_8));
        garbage.add(Arrays.copyOf(good, good.length - 1));
        garbage.add(Arrays.copyOf(good, good.length + 1));
        garbage.add(Arrays.copyOf(good, 20));
        garbage.add(new byte[BorrowStore.MAX_FILE_BYTES + 1]);
        byte[] version = good.clone();
        version[4] = 2;
        garbage.add(version);
        for (byte[] data : garbage) {
            Files.write(fileOf(1), data);
            CmException e = assertCode(CmError.INVALID_PARAMETER, () -> store.load(1));
            assertTrue(e.text().contains("ticket-1.borrow"), e.text());
            assertEquals(List.of(valid), store.all());
            CmException none = assertCode(CmError.ENTRY_NOT_FOUND,
                    () -> store.offlineAccess(FIRM, PRODUCT + 1, CLIENT, CLOCK));
            assertTrue(none.text().contains("1 unreadable"), none.text());
            assertEquals(valid, store.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
        }
    }

    @Test
    void aFileRenamedToAnotherTicketIsRefused() throws IOException {
        BorrowStore store = BorrowStore.open(dir);
        store.save(license(1, PRODUCT, CLIENT, EXPIRY));
        Files.move(fileOf(1), fileOf(2));

        assertCode(CmError.INVALID_PARAMETER, () -> store.load(2));
        assertCode(CmError.ENTRY_NOT_FOUND, () -> store.load(1));
    }

    @Test
    void aDirectoryInPlaceOfAFileIsRefusedNotThrown() throws IOException {
        BorrowStore store = BorrowStore.open(dir);
        Files.createDirectory(fileOf(5));

        assertCode(CmError.INVALID_PARAMETER, () -> store.load(5));
        assertEquals(List.of(), store.all());
        assertCode(CmError.ENTRY_NOT_FOUND, () -> store.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
    }

    @Test
    void aTicketResignedWithAPlantedKeyCountsOnlyWithoutTrustedKeys() throws IOException {
        BorrowTestIssuer planted = new BorrowTestIssuer(issuer.serial());
        BorrowedLicense forged = BorrowedLicense.of(planted.issue(1, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli()),
                planted.publicKey());
        BorrowStore.open(dir).save(forged);

        assertEquals(forged, BorrowStore.open(dir).offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
        BorrowStore pinned = BorrowStore.open(dir, Map.of(issuer.serial(), issuer.publicKey()));
        assertCode(CmError.ACCESS_DENIED, () -> pinned.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
        assertCode(CmError.ACCESS_DENIED, () -> pinned.save(forged));
        assertEquals(List.of(), pinned.all());

        BorrowedLicense genuine = license(2, PRODUCT, CLIENT, EXPIRY.minusSeconds(1));
        pinned.save(genuine);
        assertEquals(genuine, pinned.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
        BorrowStore otherIssuerOnly = BorrowStore.open(dir, Map.of(new Serial(129, 5), issuer.publicKey()));
        assertCode(CmError.ACCESS_DENIED, () -> otherIssuerOnly.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
    }

    @Test
    void aTmrNodesTicketIsCheckedWithTheTrustedVendorKeyAloneAndOthersAreRefused() throws IOException {
        BorrowTestGroup group = new BorrowTestGroup(FIRM);
        BorrowStore pinned = BorrowStore.open(dir, null, java.util.Set.of(group.vendorKey()));
        BorrowTicket ticket = group.issue(21, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli());

        // The server's listing is not needed: the ticket carries what the vendor signed.
        BorrowedLicense license = pinned.borrow(List::of, () -> ticket, returned::add, FIRM, PRODUCT, CLIENT);
        assertEquals(group.vendorKey(), license.issuerPublicKey());
        assertEquals(license, BorrowStore.open(dir, null, java.util.Set.of(group.vendorKey()))
                .offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));

        // A group whose statement another vendor key signed: stored by a store that trusts what tickets name ...
        BorrowTestGroup foreign = new BorrowTestGroup(FIRM);
        BorrowedLicense planted = BorrowedLicense.of(foreign.issue(22, FIRM, PRODUCT, CLIENT,
                EXPIRY.plusSeconds(60).toEpochMilli()), foreign.vendorKey());
        BorrowStore.open(dir).save(planted);
        assertEquals(planted, BorrowStore.open(dir).offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
        // ... counts nowhere for a store that trusts the vendor's key.
        assertEquals(license, pinned.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
        CmException refused = assertCode(CmError.ACCESS_DENIED, () -> pinned.load(22));
        assertTrue(refused.text().contains("not among the trusted vendor keys"), refused.text());
        assertCode(CmError.ACCESS_DENIED, () -> pinned.save(planted));
        assertCode(CmError.ACCESS_DENIED, () -> pinned.borrow(List::of, () -> foreign.issue(23, FIRM, PRODUCT, CLIENT,
                EXPIRY.toEpochMilli()), returned::add, FIRM, PRODUCT, CLIENT));
        // A ticket of the older layout, without a statement: refused and its seat returned.
        BorrowTicket older = group.signed(group.unsigned(24, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli()), null,
                Map.of(0, group.backends[0], 1, group.backends[1]));
        assertCode(CmError.ACCESS_DENIED, () -> BorrowStore.open(dir).borrow(List::of, () -> older, returned::add,
                FIRM, PRODUCT, CLIENT));
        assertEquals(List.of(23L, 24L), returned);
    }

    @Test
    void removeExpiredKeepsTheValidOnes() {
        BorrowStore store = BorrowStore.open(dir);
        store.save(license(1, PRODUCT, CLIENT, NOW.minusSeconds(1)));
        store.save(license(2, PRODUCT, CLIENT, NOW));
        store.save(license(3, PRODUCT, CLIENT, EXPIRY));

        assertEquals(2, store.removeExpired(NOW));
        assertEquals(List.of(3L), store.all().stream().map(BorrowedLicense::ticketId).toList());
    }

    @Test
    void theDefaultClientIdIsHostSlashUser() {
        TmrClientOptions options = TmrClientOptions.builder().addresses("127.0.0.1").host("ws-17").user("anna").build();
        assertEquals(CLIENT, BorrowStore.clientId(options));
    }

    // ---------------------------------------------------------------- borrow and return over functions

    private final List<Long> returned = new ArrayList<>();

    private List<ContainerInfo> containers(Bytes key) {
        return List.of(new ContainerInfo(new Serial(129, 1), 7, Bytes.EMPTY, List.of()),
                new ContainerInfo(issuer.serial(), 7, key, List.of()));
    }

    @Test
    void borrowChecksAndStoresTheTicket() {
        BorrowStore store = BorrowStore.open(dir);
        BorrowTicket ticket = issuer.issue(11, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli());

        BorrowedLicense license = store.borrow(() -> containers(issuer.publicKey()), () -> ticket, returned::add,
                FIRM, PRODUCT, CLIENT);

        assertEquals(ticket, license.ticket());
        assertEquals(List.of(license), store.all());
        assertEquals(List.of(), returned);
    }

    @Test
    void aBorrowThatCannotBeCheckedIsReturnedAndNotStored() {
        BorrowStore store = BorrowStore.open(dir);
        BorrowTicket ticket = issuer.issue(11, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli());
        BorrowTicket forged = new BorrowTestIssuer(issuer.serial()).issue(12, FIRM, PRODUCT, CLIENT,
                EXPIRY.toEpochMilli());
        int[] listed = {0};

        assertCode(CmError.ACCESS_DENIED, () -> store.borrow(() -> {
            listed[0]++;
            return List.of();
        }, () -> ticket, returned::add, FIRM, PRODUCT, CLIENT));
        assertEquals(2, listed[0], "the list is asked again after the borrow");
        assertCode(CmError.ACCESS_DENIED, () -> store.borrow(() -> containers(Bytes.EMPTY), () -> ticket,
                returned::add, FIRM, PRODUCT, CLIENT));
        assertCode(CmError.ACCESS_DENIED, () -> store.borrow(() -> containers(issuer.publicKey()), () -> forged,
                returned::add, FIRM, PRODUCT, CLIENT));
        assertCode(CmError.ACCESS_DENIED, () -> store.borrow(() -> containers(issuer.publicKey()), () -> ticket,
                returned::add, FIRM, PRODUCT, "ws-18/bob"));
        assertCode(CmError.ACCESS_DENIED, () -> store.borrow(() -> containers(issuer.publicKey()), () -> ticket,
                returned::add, FIRM, PRODUCT + 1, CLIENT));

        assertEquals(List.of(11L, 11L, 12L, 11L, 11L), returned);
        assertEquals(List.of(), store.all());
    }

    @Test
    void aFailedReturnOfARefusedBorrowIsAttached() {
        BorrowStore store = BorrowStore.open(dir);
        BorrowTicket ticket = issuer.issue(11, FIRM, PRODUCT, CLIENT, EXPIRY.toEpochMilli());

        CmException refused = assertCode(CmError.ACCESS_DENIED, () -> store.borrow(List::of, () -> ticket, id -> {
            throw new CmException(CmError.NETWORK_FAULT, "connection lost");
        }, FIRM, PRODUCT, CLIENT));
        assertEquals(1, refused.getSuppressed().length);
        assertEquals(100, ((CmException) refused.getSuppressed()[0]).code());
    }

    @Test
    void returningRemovesTheTicketFirst() {
        BorrowStore store = BorrowStore.open(dir);
        store.save(license(1, PRODUCT, CLIENT, EXPIRY));

        store.giveBack(1, id -> {
            assertCode(CmError.ENTRY_NOT_FOUND, () -> store.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
            returned.add(id);
        });

        assertEquals(List.of(1L), returned);
        assertEquals(List.of(), store.all());
    }

    @Test
    void aReturnThatFailsPutsTheTicketBack() {
        BorrowStore store = BorrowStore.open(dir);
        BorrowedLicense license = license(1, PRODUCT, CLIENT, EXPIRY);
        store.save(license);

        CmException lost = new CmException(CmError.NETWORK_FAULT, "connection lost");
        CmException thrown = assertThrows(CmException.class, () -> store.giveBack(1, id -> {
            throw lost;
        }));

        assertSame(lost, thrown);
        assertEquals(license, store.offlineAccess(FIRM, PRODUCT, CLIENT, CLOCK));
    }

    @Test
    void aTicketTheServerNoLongerKnowsCountsAsReturned() {
        BorrowStore store = BorrowStore.open(dir);
        store.save(license(1, PRODUCT, CLIENT, EXPIRY));
        store.save(license(2, PRODUCT, CLIENT, EXPIRY));

        store.giveBack(1, id -> {
            throw new CmException(CmError.INVALID_HANDLE, "no borrow with ticket 1");
        });
        store.giveBack(2, id -> {
            throw new CmException(CmError.ENTRY_NOT_FOUND, "no borrow ticket 2");
        });

        assertEquals(List.of(), store.all());
    }
}
