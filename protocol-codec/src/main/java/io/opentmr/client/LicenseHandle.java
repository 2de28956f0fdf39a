package io.opentmr.client;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.Serial;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;

/**
 * An open license handle, from {@link TmrClient#access}. Close it to give the seat back: it is meant for
 * {@code try}-with-resources.
 *
 * <p>The handle survives reconnects and fail-overs: the client RESUMEs it on the new connection with
 * its id and resume token, both unchanged. Only a RESUME answered 106 (the handle was reclaimed or the
 * token is wrong) makes the handle invalid, and every later call throws 106; any other failed RESUME
 * (a node not ready yet, an overloaded server, a timeout) is tried again on a later connection.
 *
 * <p>Thread-safe: several threads may use one handle.
 */
public final class LicenseHandle implements AutoCloseable {

    private final ClientConnection connection;
    private final long handleId;
    private final Bytes resumeToken;
    private final Serial container;
    private final long firmCode;
    private final long productCode;
    private final long featureBits;
    private final AccessMode accessMode;
    private final AtomicBoolean closed = new AtomicBoolean();
    /** The RELEASE under way or done, from {@link #closeAsync}; null before it. */
    private CompletableFuture<Void> releasing;
    private volatile CmException invalid;

    LicenseHandle(ClientConnection connection, Message.AccessOk granted, Message.Access request) {
        this.connection = connection;
        this.handleId = granted.handleId();
        this.resumeToken = granted.resumeToken();
        this.container = granted.container();
        this.firmCode = request.firmCode();
        this.productCode = request.productCode();
        this.featureBits = request.featureBits();
        this.accessMode = request.accessMode();
    }

    /** The server's id of this handle (64 opaque bits). */
    public long handleId() {
        return handleId;
    }

    /**
     * The token that lets a client re-attach this handle with {@link TmrClient#resume}: from another
     * connection or process. Whoever has it may use and release the handle; keep it like a password.
     */
    public Bytes resumeToken() {
        return resumeToken;
    }

    /** The container that serves the handle: the virtual container (mask 131) through a TMR node. */
    public Serial container() {
        return container;
    }

    /** The firm code asked for in ACCESS. */
    public long firmCode() {
        return firmCode;
    }

    /** The product code asked for in ACCESS. */
    public long productCode() {
        return productCode;
    }

    /** The feature bits asked for in ACCESS. */
    public long featureBits() {
        return featureBits;
    }

    /** The access mode asked for in ACCESS. */
    public AccessMode accessMode() {
        return accessMode;
    }

    /** Whether the handle can still be used: not closed, and not lost in a refused RESUME. */
    public boolean isOpen() {
        return !closed.get() && invalid == null;
    }

    /**
     * Encrypts or decrypts {@code data} with the product item's secret and {@code encryptionCode}.
     * Repeated with the same request id after a reconnect (the transform has no side effect).
     *
     * @return the transformed bytes, a new array
     * @throws CmException 106 for a closed or lost handle, 130/133 through a TMR node without two
     *                     agreeing copies, 100/101 on network failure or timeout
     */
    public byte[] crypt(CryptDirection direction, long encryptionCode, byte[] data) {
        Objects.requireNonNull(direction, "direction");
        Message.Crypt request = new Message.Crypt(handleId, direction, encryptionCode, Bytes.of(data));
        return call(request, true, reply -> expect(request, reply, Message.CryptOk.class).data().toArray());
    }

    /**
     * Subtracts {@code amount} units from the product item's unit counter. The request carries an
     * operation id chosen once per call, so a repetition after a lost reply is not applied twice.
     *
     * @return the units left after the decrement
     * @throws CmException 31 (counter is zero), 32 (counter smaller than {@code amount}), 33 (no unit
     *                     counter), 106, 130, 133, 100/101
     */
    public long decrementUnits(long amount) {
        Message.DecrementUnits request = new Message.DecrementUnits(handleId,
                ThreadLocalRandom.current().nextLong(), amount);
        return call(request, true, reply -> expect(request, reply, Message.UnitsOk.class).remaining());
    }

    /**
     * What the server says about this handle: access mode, container and product item (seats, units,
     * expiration...).
     *
     * @throws CmException 106, 100/101
     */
    public Message.Info info() {
        Message.GetInfo request = new Message.GetInfo(handleId);
        return call(request, true, reply -> expect(request, reply, Message.Info.class));
    }

    /**
     * Borrows this handle's seat for offline use for {@code duration} (whole seconds). Not repeated
     * after a connection loss, since a second BORROW could issue a second ticket: a BORROW whose answer
     * was lost fails with 100.
     *
     * @return the signed ticket; give it back early with {@link TmrClient#returnBorrow(long)}
     * @throws CmException 106, 231 (borrowing not allowed), 100/101
     */
    public BorrowTicket borrow(Duration duration) {
        long seconds = duration.toSeconds();
        if (seconds <= 0) {
            throw new IllegalArgumentException("a borrow lasts at least one second: " + duration);
        }
        Message.Borrow request = new Message.Borrow(handleId, seconds);
        return call(request, false, reply -> expect(request, reply, Message.BorrowOk.class).ticket());
    }

    /**
     * Releases the handle (RELEASE) and frees its seat. Idempotent; a handle lost in a refused RESUME
     * is already gone on the server and is only marked closed. A RELEASE the server answers with 106
     * (the handle was already gone) counts as done.
     *
     * @throws CmException 100/101 when the server could not be told in time; the server then reclaims
     *                     the handle after its cleanup timeout
     * @throws IllegalStateException on the client's I/O thread (in a callback of an asynchronous request); use
     *                               {@link #closeAsync()} there
     */
    @Override
    public void close() {
        if (isOpen()) {
            // Refused before the RELEASE goes out, so that the caller can still use closeAsync().
            connection.refuseToBlockTheLoop(MessageType.RELEASE);
        }
        connection.awaitReply(closeAsync(), MessageType.RELEASE.name());
    }

    /**
     * {@link #close()} without waiting: the handle counts as closed at once, and the future completes when the
     * server has released it; a second call returns the first one's future, and for a handle lost in a refused
     * RESUME it is complete at once. It completes on the client's I/O thread as {@link TmrClient#accessAsync} says
     * (or in the caller's thread when the answer came first), and fails with the {@link CmException}
     * {@code close()} throws. A RELEASE the client refuses before sending it (309 with {@code maxInFlight}
     * requests in flight, 100 once the client is closing) leaves the handle open: close it again later.
     */
    public CompletableFuture<Void> closeAsync() {
        CompletableFuture<Void> released = new CompletableFuture<>();
        synchronized (this) {
            if (!closed.compareAndSet(false, true)) {
                CompletableFuture<Void> first = releasing;
                return first != null ? first : CompletableFuture.completedFuture(null);
            }
            if (invalid != null) {
                return CompletableFuture.completedFuture(null);
            }
            releasing = released;
        }
        Message.Release request = new Message.Release(handleId);
        connection.request(request, true, this, reply -> expect(request, reply, Message.Ok.class))
                .whenComplete((ok, error) -> {
                    boolean gone = error instanceof CmException cm && cm.code() == CmError.INVALID_HANDLE.code();
                    if (error == null || gone) {
                        released.complete(null);
                    } else {
                        released.completeExceptionally(error);
                    }
                });
        return released;
    }

    @Override
    public String toString() {
        return "LicenseHandle[" + Long.toUnsignedString(handleId) + " " + firmCode + "/" + productCode + " "
                + accessMode + (invalid != null ? " lost" : closed.get() ? " closed" : "") + "]";
    }

    // ---------------------------------------------------------------- for ClientConnection

    CmException invalidReason() {
        return invalid;
    }

    /** Whether {@link #close} was called on the open handle: its RELEASE is under way (or done). */
    boolean releasing() {
        return closed.get() && invalid == null;
    }

    /** The RELEASE of {@link #closeAsync} was refused before it was sent: the handle is open again. */
    synchronized void releaseNotSent() {
        releasing = null;
        closed.set(false);
    }

    void invalidate(CmException reason) {
        invalid = reason;
    }

    /** Marks the handle closed; {@code true} if it was open, so the caller owes the server a RELEASE. */
    boolean markClosed() {
        return closed.compareAndSet(false, true) && invalid == null;
    }

    private <T> T call(Message request, boolean retryable, Function<Message, T> onReply) {
        CmException lost = invalid;
        if (lost != null) {
            throw lost.inCallerThread();
        }
        if (closed.get()) {
            throw new CmException(CmError.INVALID_HANDLE, "handle " + Long.toUnsignedString(handleId) + " is closed");
        }
        return connection.call(request, retryable, this, onReply);
    }

    /** The reply as the expected type; an ERROR becomes its {@link CmException}. */
    static <M extends Message> M expect(Message request, Message reply, Class<M> expected) {
        if (reply instanceof Message.Error error) {
            throw new CmException(error.code(), error.text());
        }
        if (expected.isInstance(reply)) {
            return expected.cast(reply);
        }
        throw new CmException(CmError.INVALID_PARAMETER, "the server answered " + request.type() + " with "
                + reply.type());
    }
}
