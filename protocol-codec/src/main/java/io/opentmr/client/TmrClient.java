package io.opentmr.client;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ServerKind;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;

/**
 * A client of an OpenTMR license server: a backend, or the twin TMR nodes (give both node addresses,
 * or their virtual IP).
 *
 * <pre>{@code
 * try (TmrClient client = TmrClient.connect("tmr.example.com:22350");
 *      LicenseHandle license = client.access(6000010, 42)) {
 *     byte[] key = license.crypt(CryptDirection.ENCRYPT, 0x1234, challenge);
 * }
 * }</pre>
 *
 * <p><b>Threads.</b> One client is meant to be shared by all threads of a program: every method is
 * thread-safe, and requests from many threads travel over one connection, matched to their replies by
 * request id. The client runs one daemon I/O thread. {@link #accessAsync} and {@link LicenseHandle#closeAsync}
 * send without waiting, for callers with many requests in flight.
 *
 * <p><b>Time bounds.</b> Every call returns or throws within {@link TmrClientOptions#requestTimeout()}
 * (plus a second of slack for a stalled I/O thread); {@link #connect} within
 * {@link TmrClientOptions#connectTimeout()}.
 *
 * <p><b>Requests in flight.</b> At most {@link TmrClientOptions#maxInFlight()} requests are outstanding
 * at once; the next one fails at once with {@link CmError#REQUEST_OVERLOAD} (309), the number a server
 * gives for the same reason, instead of blocking. Failing fast keeps a caller's latency bounded by the
 * request timeout alone and shows an overloaded client instead of hiding it in a queue; a caller that
 * prefers to wait retries with its own backoff.
 *
 * <p><b>Connection loss.</b> The client sends KEEPALIVE at the interval the server's HELLO_OK asks for;
 * an unanswered keep-alive counts as a lost connection. A frozen server (a stopped process, a network
 * black hole) keeps its connection open and says nothing, so a connection is also watched while
 * requests wait on it: when one has waited {@link TmrClientOptions#silenceTimeout()} (default 1 s) and
 * nothing at all was read from the connection for as long, a KEEPALIVE probe goes out, and if still
 * nothing is read within {@code silenceTimeout} the connection counts as lost. Any byte read is life:
 * a server that answers the probe but is slow with a request keeps the request, up to its
 * {@code requestTimeout}. On a lost connection it tries its addresses round-robin, each attempt
 * bounded by {@code attemptTimeout} (a failed round waits {@code reconnectBackoffMin}, doubling up to
 * {@code reconnectBackoffMax}), follows a standby's NOT_ACTIVE to the active node, sends HELLO, and
 * RESUMEs every open handle with its token (a client holding many, in RESUME_MANYs of up to 1000 where the server
 * takes them; a server older than that type is asked once and gets one RESUME per handle). After leaving a silent node it starts at the next address,
 * and until a session is up it does not follow a NOT_ACTIVE naming that node (a standby names the
 * frozen active until it takes over) when the node is one of its addresses: each visit would cost an
 * attempt timeout, and its own turn in the round still comes. Then it repeats the requests whose
 * answer was lost, with their original request id: ACCESS, RELEASE, GET_INFO, LIST_CONTAINERS, CRYPT
 * and DECREMENT_UNITS (which also carries an operation id that stays the same). BORROW and RETURN
 * are not repeated; they fail with {@link CmError#NETWORK_FAULT} (100). Request ids come from one
 * counter for the whole process, so two clients of one program never send the same id while either
 * may still repeat it.
 *
 * <p><b>A node that is not ready.</b> A TMR node that is not the active one, or is not ready to serve
 * (restarting, recovering its journal, reconciling with its backends, without a lease certificate),
 * answers HELLO and every request with NOT_ACTIVE, naming the active node's address when it knows it.
 * The client treats that answer as "not now": it leaves the node (also when a KEEPALIVE is answered
 * so), follows the address if there is one, and otherwise keeps trying its addresses with backoff; the
 * request, which was not carried out, is sent again whatever its kind. A RESUME is never the end of a
 * handle unless the server answers it (or its item of a RESUME_MANY) with 106 (unknown handle, wrong token): answered NOT_ACTIVE, 309,
 * 100 or any other error, timed out or cut off, the handle stays open and is resumed on a later
 * connection. A 106 for a handle whose RELEASE was under way means the server carried the RELEASE out
 * before the connection broke: the handle counts as released (logged at INFO), not as lost. Requests made while no session is up wait for one; if none comes within the request
 * timeout they fail with {@link CmError#SERVER_NOT_FOUND} (101), whose text says why the last attempt
 * failed, or with the error a server refused HELLO with. Every other answer is the caller's: a 130
 * (TMR quorum lost) or a server's own 309 or 100 is not repeated.
 */
public final class TmrClient implements AutoCloseable {

    private final ClientConnection connection;

    private TmrClient(ClientConnection connection) {
        this.connection = connection;
    }

    /**
     * Connects to the first of {@code addresses} that answers, with default options.
     *
     * @param addresses {@code HOST:PORT}, {@code [IPv6]:PORT} or {@code HOST} (port 22350)
     * @throws CmException 101 when no address answered within the connect timeout; the server's error
     *                     when it refused HELLO (231 for a denied host)
     */
    public static TmrClient connect(String... addresses) {
        return connect(TmrClientOptions.builder().addresses(addresses).build());
    }

    /**
     * Connects to the first of {@code addresses} that answers, with default options.
     *
     * @throws CmException 101 when no address answered within the connect timeout; the server's error
     *                     when it refused HELLO
     */
    public static TmrClient connect(InetSocketAddress... addresses) {
        return connect(TmrClientOptions.builder().addresses(addresses).build());
    }

    /**
     * Connects with {@code options} and returns once a session is up.
     *
     * @throws CmException 101 when no address answered within {@link TmrClientOptions#connectTimeout()};
     *                     the server's error when it refused HELLO
     */
    public static TmrClient connect(TmrClientOptions options) {
        ClientConnection connection = ClientConnection.open(options);
        return new TmrClient(connection);
    }

    /**
     * Opens a handle on a product item in USERLIMIT mode (one seat) with no feature bits.
     *
     * @throws CmException 200 (no such firm/product), 212 (no free seat), 213 (exclusive conflict),
     *                     35/37/71/72 (time limits), 130 (TMR quorum lost), 231, 309, 100/101
     */
    public LicenseHandle access(long firmCode, long productCode) {
        return access(firmCode, productCode, 0, AccessMode.USERLIMIT);
    }

    /**
     * Opens a handle on a product item whose feature map holds all of {@code featureBits}. Repeated
     * with the same request id if the connection breaks before the answer, so the server grants it once.
     *
     * @throws CmException 200 (no such item, or a feature bit missing), 212, 213, 35/37/71/72, 130, 231,
     *                     309, 100/101
     */
    public LicenseHandle access(long firmCode, long productCode, long featureBits, AccessMode accessMode) {
        Message.Access request = new Message.Access(firmCode, productCode, featureBits, accessMode);
        return connection.call(request, true, null, granted(request));
    }

    /**
     * {@link #access(long, long, long, AccessMode)} without waiting: for a caller with many requests in flight
     * and no thread for each. The request is the same, repeated after a broken connection in the same way, and
     * counts in {@link TmrClientOptions#maxInFlight()} (over it, the future fails at once with 309).
     *
     * <p>The future completes on the client's I/O thread (a callback attached once it is complete runs in the
     * attaching thread), which serves every request of this client: keep what runs there short, and never block
     * in it (a blocking call of this client there throws {@link IllegalStateException}). Move longer work with the
     * future's {@code *Async} methods and an executor. It fails with the {@link CmException} {@code access}
     * throws. Cancelling it does not cancel the request: a handle granted after that stays open until the client is
     * closed.
     */
    public CompletableFuture<LicenseHandle> accessAsync(long firmCode, long productCode, long featureBits,
                                                        AccessMode accessMode) {
        Message.Access request = new Message.Access(firmCode, productCode, featureBits, accessMode);
        return connection.request(request, true, null, granted(request));
    }

    /** The handle of a granted ACCESS, registered for resumes on the I/O thread before the caller sees it. */
    private Function<Message, LicenseHandle> granted(Message.Access request) {
        return reply -> {
            Message.AccessOk granted = LicenseHandle.expect(request, reply, Message.AccessOk.class);
            LicenseHandle handle = new LicenseHandle(connection, granted, request);
            connection.register(handle);
            return handle;
        };
    }

    /**
     * Re-attaches a handle opened elsewhere (another connection or process) by its id and resume token,
     * moving it to this client's session. Its firm, product and access mode are read back with GET_INFO;
     * the feature bits of the original ACCESS are not known here and read as 0.
     *
     * @throws CmException 106 for an unknown handle or a wrong token, 309, 100/101
     */
    public LicenseHandle resume(long handleId, Bytes resumeToken) {
        Message.Resume request = new Message.Resume(handleId, resumeToken);
        Message.AccessOk granted = connection.call(request, true, null,
                reply -> LicenseHandle.expect(request, reply, Message.AccessOk.class));
        Message.GetInfo infoRequest = new Message.GetInfo(handleId);
        Message.Info info = connection.call(infoRequest, true, null,
                reply -> LicenseHandle.expect(infoRequest, reply, Message.Info.class));
        LicenseHandle handle = new LicenseHandle(connection, granted, new Message.Access(info.product().firmCode(),
                info.product().productCode(), 0, info.accessMode()));
        connection.register(handle);
        return handle;
    }

    /**
     * The containers the server shows: through a TMR node, the virtual container (mask 131) with the
     * TMR licenses that have at least two available copies.
     *
     * @throws CmException 309, 100/101
     */
    public List<ContainerInfo> listContainers() {
        Message.ListContainers request = new Message.ListContainers();
        return connection.call(request, true, null,
                reply -> LicenseHandle.expect(request, reply, Message.ContainerList.class).containers());
    }

    /**
     * Returns a borrowed seat early. Not repeated after a connection loss (100).
     *
     * @param ticketId {@link io.opentmr.protocol.BorrowTicket#ticketId()}
     * @throws CmException the server's refusal, 309, 100/101
     */
    public void returnBorrow(long ticketId) {
        Message.Return request = new Message.Return(ticketId);
        connection.call(request, false, null, reply -> LicenseHandle.expect(request, reply, Message.Ok.class));
    }

    /** What the current (or last) server said it is in HELLO_OK: BACKEND or TMR_ACTIVE. */
    public ServerKind serverKind() {
        return connection.serverKind();
    }

    /** The session id from the current (or last) HELLO_OK; it changes with every reconnect. */
    public long sessionId() {
        return connection.sessionId();
    }

    /** The server name from the current (or last) HELLO_OK. */
    public String serverName() {
        return connection.serverName();
    }

    /** The address of the server of the current session, or {@code null} while reconnecting. */
    public InetSocketAddress connectedAddress() {
        return connection.connectedAddress();
    }

    /** Handles opened and not yet released (nor lost in a refused RESUME). */
    public int openHandles() {
        return connection.openHandles();
    }

    /**
     * Releases every open handle if a session is up (within the request timeout), fails every
     * outstanding request with 100, closes the connection and stops the I/O thread. Idempotent; every
     * later call throws 100.
     */
    @Override
    public void close() {
        connection.close();
    }
}
