package io.opentmr.client;

import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.Serial;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.LongConsumer;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Borrowed licenses kept as files in one directory, so that a program can start without a server until
 * its borrows expire.
 *
 * <pre>{@code
 * BorrowStore store = BorrowStore.open(Path.of(System.getProperty("user.home"), ".opentmr", "borrows"));
 * // online, once:
 * try (LicenseHandle handle = client.access(6000010, 42)) {
 *     store.borrow(client, handle, Duration.ofDays(7), BorrowStore.clientId(options));
 * }
 * // offline, at every start:
 * BorrowedLicense license = store.offlineAccess(6000010, 42, BorrowStore.clientId(options), Clock.systemUTC());
 * // back online, to free the seat before the week is over:
 * store.returnBorrow(client, license.ticketId());
 * }</pre>
 *
 * <p><b>Files.</b> One file per ticket, named {@code ticket-<ticketId>.borrow} (the id as an unsigned
 * decimal number), big-endian binary:
 * <pre>
 *   4 bytes  magic "OTBR"
 *   u8       format version, 1
 *   u64      ticketId
 *   u32      firmCode
 *   u32      productCode
 *   u16 + n  clientId, UTF-8
 *   i64      expiresAt, epoch milliseconds, not negative
 *   u8       issuer mask
 *   u32      issuer number
 *   u16 + n  signature (Ed25519, 64 bytes; a virtual container's: its backends' signatures and the
 *            vendor's statement of the group's keys, see BorrowTicket.GroupSignature)
 *   u16 + n  issuer public key (raw Ed25519, 32 bytes; for a virtual container the vendor's key)
 * </pre>
 * and nothing after it; a file is at most {@value #MAX_FILE_BYTES} bytes. The ticket fields are those
 * of {@link BorrowTicket}, so the signature covers all of them; the file name must name the id inside.
 * A file is written to a temporary file in the same directory, forced to disk and renamed over the old
 * one, so a reader sees either the old file or the new one whole. Where the file system has POSIX
 * permissions, files are created with mode 0600 and a directory this class creates with 0700.
 *
 * <p><b>Refused files.</b> A file that does not follow the format is refused with 105, one whose
 * signature does not hold (an edited expiry, a swapped client) with 231; neither escapes as anything
 * but a {@link CmException}. {@link #all()} skips such files with a warning in the log.
 *
 * <p><b>Trust.</b> The issuer's public key is recorded beside the ticket, taken from the server's
 * CONTAINER_LIST at borrow time. Someone who can write this directory can therefore plant a ticket
 * signed with a key of his own, unless the store is opened with
 * {@link #open(Path, Map) trusted issuer keys}: then a ticket counts only if its issuer is among them
 * with the very key recorded in its file. Copying a ticket file elsewhere gains nothing, since the
 * ticket names its client ({@code host/user}); copying it to the same host and user does, which
 * is inherent in offline tickets and bounded by their expiry.
 *
 * <p><b>Tickets of a TMR node</b> (virtual container, mask 131) are checked against the vendor's public key:
 * the ticket carries the vendor's signed statement of its group's three container keys, and two of those
 * containers must have signed it ({@link BorrowedLicense}). A store opened with
 * {@link #open(Path, Map, Set) trusted vendor keys} accepts only statements signed by one of them, so it needs
 * nothing from the server to trust a ticket: this is how a program should open it (the vendor's public key is
 * what it ships with). A store without vendor keys records the vendor key the statement names, as it records
 * an issuer's listed key, and is open to the same planted files.
 *
 * <p>Thread-safe; several processes may share a directory, since every write is one atomic rename.
 */
public final class BorrowStore {

    /** The largest ticket file read; real ones are about 200 bytes. */
    public static final int MAX_FILE_BYTES = 4096;

    private static final Logger LOG = LoggerFactory.getLogger(BorrowStore.class);
    private static final byte[] MAGIC = {'O', 'T', 'B', 'R'};
    private static final int VERSION = 1;
    private static final Pattern FILE_NAME = Pattern.compile("ticket-(\\d{1,20})\\.borrow");
    private static final Set<PosixFilePermission> FILE_MODE = PosixFilePermissions.fromString("rw-------");
    private static final Set<PosixFilePermission> DIRECTORY_MODE = PosixFilePermissions.fromString("rwx------");

    private final Path directory;
    private final Map<Serial, Bytes> trustedIssuers;
    private final Set<Bytes> trustedVendorKeys;
    private final boolean posix;

    private BorrowStore(Path directory, Map<Serial, Bytes> trustedIssuers, Set<Bytes> trustedVendorKeys) {
        this.directory = directory;
        this.trustedIssuers = trustedIssuers;
        this.trustedVendorKeys = trustedVendorKeys;
        this.posix = directory.getFileSystem().supportedFileAttributeViews().contains("posix");
    }

    /**
     * A store in {@code directory}, created (with its parents) if missing. Tickets count with the issuer
     * key recorded beside them.
     *
     * @throws UncheckedIOException when the directory cannot be created
     */
    public static BorrowStore open(Path directory) {
        return open(directory, null);
    }

    /**
     * A store in {@code directory}, created if missing, that accepts only tickets of these issuers signed
     * with these keys: a ticket whose issuer is missing from the map, or whose recorded key differs from
     * the trusted one, is refused with 231. {@code null} trusts the recorded keys.
     *
     * @param trustedIssuers container serial to its raw Ed25519 public key, e.g. read from the backends'
     *                       license contexts when the program was installed
     * @throws UncheckedIOException when the directory cannot be created
     */
    public static BorrowStore open(Path directory, Map<Serial, Bytes> trustedIssuers) {
        return open(directory, trustedIssuers, null);
    }

    /**
     * A store in {@code directory}, created if missing, that accepts a TMR node's ticket (virtual container, mask
     * 131) only when the statement of its group's keys is signed by one of {@code trustedVendorKeys}; other
     * tickets as {@link #open(Path, Map)}. Refused with 231 otherwise.
     *
     * @param trustedIssuers    as for {@link #open(Path, Map)}; {@code null} trusts the recorded keys
     * @param trustedVendorKeys the vendors' raw Ed25519 public keys (the {@code vendor.pub} of {@code tmr license
     *                          keygen}); {@code null} trusts the vendor key a ticket's statement names
     * @throws UncheckedIOException when the directory cannot be created
     */
    public static BorrowStore open(Path directory, Map<Serial, Bytes> trustedIssuers, Set<Bytes> trustedVendorKeys) {
        Objects.requireNonNull(directory, "directory");
        BorrowStore store = new BorrowStore(directory, trustedIssuers == null ? null : Map.copyOf(trustedIssuers),
                trustedVendorKeys == null ? null : Set.copyOf(trustedVendorKeys));
        store.createDirectory();
        return store;
    }

    /**
     * The client id a backend writes into the tickets it issues to a client connected with
     * {@code options}: {@code host + "/" + user}, as the client said in HELLO.
     */
    public static String clientId(TmrClientOptions options) {
        return options.host() + "/" + options.user();
    }

    /** The directory the files are in. */
    public Path directory() {
        return directory;
    }

    /**
     * Borrows {@code handle}'s seat for {@code duration}, checks the ticket against the issuer's public key
     * from {@code client}'s CONTAINER_LIST, and stores it. The ticket must be for the handle's firm and
     * product and for {@code clientId} (usually {@link #clientId(TmrClientOptions)} of the options the
     * client was connected with). If the ticket cannot be checked or stored, its seat is returned (RETURN)
     * before the error is thrown, so a refused borrow does not hold a seat until it expires; a RETURN that
     * fails too is attached as a suppressed exception.
     *
     * @return the stored license
     * @throws CmException          the server's refusal of BORROW (106, 231 borrowing not allowed, 100/101);
     *                              231 when the issuer is not listed, has no key, does not match a trusted
     *                              key, the signature does not hold, or the ticket is for another product
     *                              or client
     * @throws UncheckedIOException when the file cannot be written
     */
    public BorrowedLicense borrow(TmrClient client, LicenseHandle handle, Duration duration, String clientId) {
        Objects.requireNonNull(clientId, "clientId");
        return borrowOver(client, handle, duration, clientId);
    }

    /**
     * {@link #borrow(TmrClient, LicenseHandle, Duration, String)} without checking whom the ticket was
     * issued to; {@link #offlineAccess} checks that later.
     *
     * @return the stored license
     * @throws CmException          as the four-argument form, except for another client
     * @throws UncheckedIOException when the file cannot be written
     */
    public BorrowedLicense borrow(TmrClient client, LicenseHandle handle, Duration duration) {
        return borrowOver(client, handle, duration, null);
    }

    private BorrowedLicense borrowOver(TmrClient client, LicenseHandle handle, Duration duration, String clientId) {
        Objects.requireNonNull(client, "client");
        Objects.requireNonNull(handle, "handle");
        Objects.requireNonNull(duration, "duration");
        return borrow(client::listContainers, () -> handle.borrow(duration), client::returnBorrow,
                handle.firmCode(), handle.productCode(), clientId);
    }

    /**
     * The borrow steps over plain functions, for tests without a server: {@code containers} is asked once
     * before the borrow (so the key is at hand even if the connection breaks after it) and once more if
     * the issuer was not listed then.
     */
    BorrowedLicense borrow(Supplier<List<ContainerInfo>> containers, Supplier<BorrowTicket> borrower,
            LongConsumer giveBack, long firmCode, long productCode, String clientId) {
        List<ContainerInfo> before = containers.get();
        BorrowTicket ticket = borrower.get();
        try {
            Bytes key = ticket.issuer().mask() == BorrowedLicense.VIRTUAL_MASK
                    ? BorrowedLicense.statementOf(ticket).vendorKey() : issuerKey(before, ticket.issuer());
            if (key == null) {
                key = issuerKey(containers.get(), ticket.issuer());
            }
            if (key == null) {
                throw new CmException(CmError.ACCESS_DENIED, "the server does not list container "
                        + ticket.issuer() + " that issued borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                        + ", so its signature cannot be checked");
            }
            BorrowedLicense license = trusted(BorrowedLicense.of(ticket, key));
            if (ticket.firmCode() != firmCode || ticket.productCode() != productCode) {
                throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                        + " is for " + ticket.firmCode() + "/" + ticket.productCode() + ", not for the borrowed "
                        + firmCode + "/" + productCode);
            }
            if (clientId != null && !ticket.clientId().equals(clientId)) {
                throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                        + " was issued to client '" + ticket.clientId() + "', not to '" + clientId + "'");
            }
            save(license);
            LOG.info("borrowed ticket {} for {}/{} until {} from container {}", Long.toUnsignedString(ticket.ticketId()),
                    ticket.firmCode(), ticket.productCode(), license.expiresAt(), ticket.issuer());
            return license;
        } catch (RuntimeException e) {
            try {
                giveBack.accept(ticket.ticketId());
            } catch (RuntimeException returnFailed) {
                e.addSuppressed(returnFailed);
            }
            throw e;
        }
    }

    /**
     * Frees a borrowed seat early: removes the ticket file, so offline access stops at once, then sends
     * RETURN. A server that no longer knows the ticket (106 or 200: it expired or was returned already)
     * counts as done. If RETURN fails otherwise (no connection: 100/101), the file is put back unchanged
     * and the error thrown, so the borrow can be returned later and is still usable until then.
     *
     * @throws CmException          the server's refusal of RETURN other than 106/200, 309, 100/101
     * @throws UncheckedIOException when the file cannot be removed or put back
     */
    public void returnBorrow(TmrClient client, long ticketId) {
        Objects.requireNonNull(client, "client");
        giveBack(ticketId, client::returnBorrow);
    }

    /** {@link #returnBorrow(TmrClient, long)} over a plain function, for tests without a server. */
    void giveBack(long ticketId, LongConsumer returner) {
        Path file = fileOf(ticketId);
        byte[] kept;
        try {
            kept = readRaw(file);
        } catch (CmException unreadable) {
            // Not worth keeping: the seat is returned all the same.
            kept = null;
        }
        remove(ticketId);
        try {
            returner.accept(ticketId);
        } catch (CmException e) {
            if (e.code() == CmError.INVALID_HANDLE.code() || e.code() == CmError.ENTRY_NOT_FOUND.code()) {
                LOG.info("borrow ticket {} was no longer held by the server: {}", Long.toUnsignedString(ticketId),
                        e.text());
                return;
            }
            if (kept != null) {
                write(file, kept);
            }
            throw e;
        }
        LOG.info("returned borrow ticket {}", Long.toUnsignedString(ticketId));
    }

    /**
     * Stores {@code license}, replacing a file of the same ticket id.
     *
     * @throws CmException          231 when the store has trusted issuer keys and the license's issuer or
     *                              key is not among them
     * @throws UncheckedIOException when the file cannot be written
     */
    public void save(BorrowedLicense license) {
        Objects.requireNonNull(license, "license");
        trusted(license);
        write(fileOf(license.ticketId()), encode(license));
    }

    /**
     * Removes the file of ticket {@code ticketId}; without telling the server (see
     * {@link #returnBorrow(TmrClient, long)} for that).
     *
     * @return whether there was a file
     * @throws UncheckedIOException when the file exists but cannot be removed
     */
    public boolean remove(long ticketId) {
        try {
            return Files.deleteIfExists(fileOf(ticketId));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove borrow ticket file " + fileOf(ticketId), e);
        }
    }

    /**
     * The stored license of ticket {@code ticketId}, whatever its client and expiry.
     *
     * @throws CmException 200 when no file holds it, 105 for a file that does not follow the format, 231
     *                     when its signature does not hold or its issuer is not trusted
     */
    public BorrowedLicense load(long ticketId) {
        Path file = fileOf(ticketId);
        byte[] data = readRaw(file);
        if (data == null) {
            throw new CmException(CmError.ENTRY_NOT_FOUND, "no borrow ticket " + Long.toUnsignedString(ticketId)
                    + " in " + directory);
        }
        Stored stored = decode(file, data, ticketId);
        return trusted(BorrowedLicense.of(stored.ticket(), stored.issuerKey()));
    }

    /**
     * Every stored license whose file is well-formed, signed and (with trusted keys) trusted, expired ones
     * included, by ticket id. Other files are skipped with a warning in the log.
     *
     * @throws UncheckedIOException when the directory cannot be listed
     */
    public List<BorrowedLicense> all() {
        List<BorrowedLicense> licenses = new ArrayList<>();
        for (Path file : ticketFiles()) {
            try {
                licenses.add(load(idOf(file)));
            } catch (CmException e) {
                warnSkipped(file, e);
            }
        }
        licenses.sort(Comparator.comparing(BorrowedLicense::ticketId, Long::compareUnsigned));
        return licenses;
    }

    /**
     * The stored license that grants {@code clientId} offline access to the product item now: a
     * well-formed, signed, trusted ticket for this firm and product, issued to this client and not
     * expired. Of several, the one that lasts longest.
     *
     * @param clock the time source; tests pass a fixed one
     * @throws CmException 200 when no ticket for firm/product is stored (the text names unreadable files
     *                     that were skipped); otherwise the refusal of the tickets for it: 35 if one of
     *                     them was this client's and has expired, else 231 (signature, client or issuer)
     * @throws UncheckedIOException when the directory cannot be listed
     */
    public BorrowedLicense offlineAccess(long firmCode, long productCode, String clientId, Clock clock) {
        Objects.requireNonNull(clientId, "clientId");
        Instant now = clock.instant();
        BorrowedLicense best = null;
        CmException refusal = null;
        int unreadable = 0;
        for (Path file : ticketFiles()) {
            Stored stored;
            try {
                byte[] data = readRaw(file);
                if (data == null) {
                    continue;
                }
                stored = decode(file, data, idOf(file));
            } catch (CmException e) {
                warnSkipped(file, e);
                unreadable++;
                continue;
            }
            BorrowTicket ticket = stored.ticket();
            if (ticket.firmCode() != firmCode || ticket.productCode() != productCode) {
                continue;
            }
            try {
                BorrowedLicense license = trusted(BorrowedLicense.of(ticket, stored.issuerKey()));
                license.verify(clientId, now);
                if (best == null || license.expiresAt().isAfter(best.expiresAt())) {
                    best = license;
                }
            } catch (CmException e) {
                // An expired ticket of this client says more than a foreign or forged one.
                if (refusal == null || e.code() == CmError.EXPIRED.code() && refusal.code() != e.code()) {
                    refusal = e;
                }
            }
        }
        if (best != null) {
            return best;
        }
        if (refusal != null) {
            throw refusal;
        }
        throw new CmException(CmError.ENTRY_NOT_FOUND, "no borrowed license for " + firmCode + "/" + productCode
                + " in " + directory + (unreadable == 0 ? "" : " (" + unreadable + " unreadable ticket files skipped)"));
    }

    /**
     * Removes the files of licenses that have expired at {@code now}; malformed and untrusted files stay
     * for a person to look at.
     *
     * @return how many files were removed
     * @throws UncheckedIOException when a file cannot be removed or the directory listed
     */
    public int removeExpired(Instant now) {
        int removed = 0;
        for (BorrowedLicense license : all()) {
            if (license.isExpired(now) && remove(license.ticketId())) {
                removed++;
            }
        }
        return removed;
    }

    @Override
    public String toString() {
        return "BorrowStore[" + directory + (trustedIssuers == null ? "" : ", trusted " + trustedIssuers.keySet())
                + (trustedVendorKeys == null ? "" : ", " + trustedVendorKeys.size() + " trusted vendor key(s)") + "]";
    }

    // ---------------------------------------------------------------- trust

    private BorrowedLicense trusted(BorrowedLicense license) {
        if (trustedVendorKeys != null && license.issuer().mask() == BorrowedLicense.VIRTUAL_MASK
                && !trustedVendorKeys.contains(license.issuerPublicKey())) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + Long.toUnsignedString(license.ticketId())
                    + " of virtual container " + license.issuer() + ": the statement of its group's keys is signed by "
                    + "vendor key " + io.opentmr.protocol.Ed25519Keys.fingerprint(license.issuerPublicKey().toArray())
                    + ", which is not among the trusted vendor keys");
        }
        if (trustedIssuers == null) {
            return license;
        }
        Bytes key = trustedIssuers.get(license.issuer());
        if (key == null || !key.equals(license.issuerPublicKey())) {
            throw new CmException(CmError.ACCESS_DENIED, "borrow ticket " + Long.toUnsignedString(license.ticketId())
                    + " was issued by container " + license.issuer() + (key == null ? ", which is not trusted"
                    : " with a key other than the trusted one"));
        }
        return license;
    }

    private static Bytes issuerKey(List<ContainerInfo> containers, Serial issuer) {
        for (ContainerInfo container : containers) {
            if (container.serial().equals(issuer)) {
                return container.publicKey();
            }
        }
        return null;
    }

    // ---------------------------------------------------------------- format

    private record Stored(BorrowTicket ticket, Bytes issuerKey) {
    }

    private static byte[] encode(BorrowedLicense license) {
        BorrowTicket ticket = license.ticket();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(256);
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            out.write(MAGIC);
            out.writeByte(VERSION);
            out.writeLong(ticket.ticketId());
            out.writeInt((int) ticket.firmCode());
            out.writeInt((int) ticket.productCode());
            writeBytes(out, ticket.clientId().getBytes(StandardCharsets.UTF_8));
            out.writeLong(ticket.expiresAtMillis());
            out.writeByte(ticket.issuer().mask());
            out.writeInt((int) ticket.issuer().number());
            writeBytes(out, ticket.signature().toArray());
            writeBytes(out, license.issuerPublicKey().toArray());
        } catch (IOException e) {
            throw new UncheckedIOException("writing to memory failed", e);
        }
        if (bytes.size() > MAX_FILE_BYTES) {
            throw new IllegalArgumentException("borrow ticket " + Long.toUnsignedString(ticket.ticketId())
                    + " needs " + bytes.size() + " bytes, more than a ticket file may hold (" + MAX_FILE_BYTES + ")");
        }
        return bytes.toByteArray();
    }

    private static void writeBytes(DataOutputStream out, byte[] value) throws IOException {
        out.writeShort(value.length);
        out.write(value);
    }

    /** Parses a file's bytes; the structure only, the signature is the caller's business. */
    private static Stored decode(Path file, byte[] data, long expectedId) {
        ByteBuffer in = ByteBuffer.wrap(data);
        try {
            byte[] magic = new byte[MAGIC.length];
            in.get(magic);
            if (!Arrays.equals(magic, MAGIC)) {
                throw malformed(file, "it is not a borrow ticket file");
            }
            int version = in.get() & 0xFF;
            if (version != VERSION) {
                throw malformed(file, "format version " + version + " is not " + VERSION);
            }
            long ticketId = in.getLong();
            long firmCode = in.getInt() & 0xFFFF_FFFFL;
            long productCode = in.getInt() & 0xFFFF_FFFFL;
            String clientId = utf8(file, bytes(in));
            long expiresAt = in.getLong();
            int mask = in.get() & 0xFF;
            long number = in.getInt() & 0xFFFF_FFFFL;
            Bytes signature = Bytes.of(bytes(in));
            Bytes issuerKey = Bytes.of(bytes(in));
            if (in.hasRemaining()) {
                throw malformed(file, in.remaining() + " bytes follow the ticket");
            }
            if (ticketId != expectedId) {
                throw malformed(file, "it holds ticket " + Long.toUnsignedString(ticketId) + ", not the one its name says");
            }
            return new Stored(new BorrowTicket(ticketId, firmCode, productCode, clientId, expiresAt,
                    new Serial(mask, number), signature), issuerKey);
        } catch (BufferUnderflowException e) {
            throw malformed(file, "it is truncated");
        } catch (IllegalArgumentException e) {
            throw malformed(file, e.getMessage());
        }
    }

    private static byte[] bytes(ByteBuffer in) {
        int length = in.getShort() & 0xFFFF;
        if (length > in.remaining()) {
            throw new BufferUnderflowException();
        }
        byte[] value = new byte[length];
        in.get(value);
        return value;
    }

    private static String utf8(Path file, byte[] value) {
        try {
            CharBuffer chars = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(value));
            return chars.toString();
        } catch (CharacterCodingException e) {
            throw malformed(file, "the client id is not UTF-8");
        }
    }

    private static CmException malformed(Path file, String why) {
        return new CmException(CmError.INVALID_PARAMETER, "borrow ticket file " + file + " is refused: " + why);
    }

    private static void warnSkipped(Path file, CmException e) {
        LOG.warn("skipping borrow ticket file {}: error {}: {}", file, e.code(), e.text());
    }

    // ---------------------------------------------------------------- files

    private Path fileOf(long ticketId) {
        return directory.resolve("ticket-" + Long.toUnsignedString(ticketId) + ".borrow");
    }

    private static long idOf(Path file) {
        Matcher name = FILE_NAME.matcher(file.getFileName().toString());
        if (!name.matches()) {
            throw malformed(file, "its name is not ticket-<id>.borrow");
        }
        try {
            return Long.parseUnsignedLong(name.group(1));
        } catch (NumberFormatException e) {
            throw malformed(file, "the ticket id in its name is out of range");
        }
    }

    private List<Path> ticketFiles() {
        List<Path> files = new ArrayList<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(directory,
                entry -> FILE_NAME.matcher(entry.getFileName().toString()).matches())) {
            entries.forEach(files::add);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list borrow ticket directory " + directory, e);
        }
        files.sort(Comparator.naturalOrder());
        return files;
    }

    /**
     * The file's bytes, or {@code null} if there is no file. A file too large, not a regular file or
     * unreadable is refused with 105: it is the file that is wrong, not the store.
     */
    private static byte[] readRaw(Path file) {
        if (Files.exists(file) && !Files.isRegularFile(file)) {
            // Opening a pipe would block; a directory or device is no ticket either.
            throw malformed(file, "it is not a regular file");
        }
        try (InputStream in = Files.newInputStream(file)) {
            byte[] data = in.readNBytes(MAX_FILE_BYTES + 1);
            if (data.length > MAX_FILE_BYTES) {
                throw malformed(file, "it is larger than " + MAX_FILE_BYTES + " bytes");
            }
            return data;
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            throw malformed(file, "it cannot be read (" + e + ")");
        }
    }

    private void createDirectory() {
        try {
            if (posix && !Files.isDirectory(directory)) {
                Files.createDirectories(directory, PosixFilePermissions.asFileAttribute(DIRECTORY_MODE));
            } else {
                Files.createDirectories(directory);
            }
        } catch (FileAlreadyExistsException e) {
            throw new UncheckedIOException("borrow ticket directory " + directory + " is a file", e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create borrow ticket directory " + directory, e);
        }
    }

    private void write(Path file, byte[] data) {
        Path temp = null;
        try {
            FileAttribute<?>[] mode = posix
                    ? new FileAttribute<?>[] {PosixFilePermissions.asFileAttribute(FILE_MODE)}
                    : new FileAttribute<?>[0];
            temp = Files.createTempFile(directory, ".ticket-", ".tmp", mode);
            try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.WRITE)) {
                ByteBuffer buffer = ByteBuffer.wrap(data);
                while (buffer.hasRemaining()) {
                    channel.write(buffer);
                }
                channel.force(true);
            }
            try {
                Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temp, file, StandardCopyOption.REPLACE_EXISTING);
            }
            temp = null;
            forceDirectory();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write borrow ticket file " + file, e);
        } finally {
            if (temp != null) {
                try {
                    Files.deleteIfExists(temp);
                } catch (IOException e) {
                    LOG.warn("cannot remove temporary file {}: {}", temp, e.toString());
                }
            }
        }
    }

    /** Makes the rename durable where the platform allows opening a directory (not on Windows). */
    private void forceDirectory() {
        try (FileChannel channel = FileChannel.open(directory, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException | RuntimeException e) {
            LOG.debug("cannot force directory {}: {}", directory, e.toString());
        }
    }
}
