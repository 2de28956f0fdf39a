package io.opentmr.tmr;

import static io.opentmr.testing.TmrTestGroup.FIRM;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.license.LicenseIssuer;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.Await;
import io.opentmr.testing.TmrTestGroup;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What a client can send wrong, through the TMR node: each mistake answered with a clear CodeMeter error number, the
 * same number a backend answers for the same mistake (each case is sent to both: the node over TMR licenses, backend
 * 1 directly over ordinary licenses of the same kind). Borrow tickets are not in this list (borrowing's own tests).
 */
@Timeout(60)
@ExtendWith(NoLeaks.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class NodeBadInputTest {

    /** The products on the node (TMR licenses) and on backend 1 (ordinary licenses of the same kind). */
    private static final long NODE_SEATS = 51;
    private static final long NODE_UNITS = 52;
    private static final long BACKEND_SEATS = 61;
    private static final long BACKEND_UNITS = 62;
    private static final long FEATURE_MAP = 0xFF;
    private static final long UNITS = 10;

    private TmrTestGroup group;
    private final AtomicLong pids = new AtomicLong(1000);
    private final List<RawConnection> opened = new ArrayList<>();

    @BeforeAll
    void start(@TempDir Path dir) throws Exception {
        group = new TmrTestGroup(dir);
        group.issueTmr(request(NODE_SEATS, true, null));
        group.issueTmr(request(NODE_UNITS, true, UNITS));
        group.issueOrdinary(0, request(BACKEND_SEATS, false, null));
        group.issueOrdinary(0, request(BACKEND_UNITS, false, UNITS));
        group.startNode(Map.of());
        Await.until("the node serves", group.node()::serving);
        Target node = node();
        try (RawConnection client = node.connect()) {
            Await.until("both licenses listed", () -> TmrTestGroup.listed(client).products().size() == 2);
        }
    }

    @AfterEach
    void closeConnections() throws IOException {
        for (RawConnection connection : opened) {
            connection.close();
        }
        opened.clear();
    }

    @AfterAll
    void stop() {
        if (group != null) {
            group.close();
        }
    }

    private static LicenseIssuer.Request request(long product, boolean tmr, Long units) {
        return new LicenseIssuer.Request(FIRM, product, 100, tmr, units, null, null, null, null, FEATURE_MAP,
                "bad input " + product);
    }

    private Target node() {
        return new Target("node", group.nodeAddress(), NODE_SEATS, NODE_UNITS);
    }

    private Target backend() {
        return new Target("backend 1", group.backend(0).address(), BACKEND_SEATS, BACKEND_UNITS);
    }

    /** Where a case is sent, and the products it uses there. */
    private final class Target {
        final String name;
        final InetSocketAddress address;
        final long seats;
        final long units;

        Target(String name, InetSocketAddress address, long seats, long units) {
            this.name = name;
            this.address = address;
            this.seats = seats;
            this.units = units;
        }

        /** A connection before HELLO (closed after the case). */
        RawConnection open() throws IOException {
            RawConnection connection = new RawConnection(address);
            opened.add(connection);
            return connection;
        }

        /** A client of its own process after HELLO: its request ids are not taken for another's re-sent ones. */
        RawConnection connect() throws IOException {
            RawConnection connection = open();
            Message hello = connection.request(new Message.Hello("bad-input-test", "ws-bad", "tester",
                    pids.incrementAndGet()));
            if (hello instanceof Message.NotActive) {
                throw new NotServing();
            }
            assertInstanceOf(Message.HelloOk.class, hello, hello.toString());
            return connection;
        }

        /** A handle of {@code product} held by {@code client}. */
        long handle(RawConnection client, long product) throws IOException {
            Message granted = client.request(new Message.Access(FIRM, product, 0, AccessMode.USERLIMIT));
            return assertInstanceOf(Message.AccessOk.class, granted, name + ": " + granted).handleId();
        }
    }

    /**
     * The node answered NOT_ACTIVE: it lost the lease for a moment (a loaded machine's late renewal) and is reconciling;
     * a client comes back, and so does the case.
     */
    private static final class NotServing extends RuntimeException {
        private static final long serialVersionUID = 1L;

        NotServing() {
            super("the node answered NOT_ACTIVE", null, false, false);
        }
    }

    /** One mistake: what the client sends, and the answer it gets (an ERROR, if the server sees the mistake). */
    @FunctionalInterface
    interface Mistake {
        Message send(Target target) throws IOException;
    }

    /** A frame broken after HELLO: the server answers one ERROR and closes the connection. */
    private static Mistake broken(java.util.function.UnaryOperator<byte[]> breaking) {
        return target -> {
            RawConnection client = target.connect();
            byte[] access = RawConnection.encode(new Frame(7, new Message.Access(FIRM, target.seats, 0,
                    AccessMode.USERLIMIT)));
            client.sendRaw(breaking.apply(access));
            Message answer = client.read().message();
            assertTrue(client.closedByServer(), target.name + " closes the connection after " + answer);
            return answer;
        };
    }

    static Stream<Arguments> mistakes() {
        return Stream.of(
                mistake("ACCESS of a product no license has", CmError.ENTRY_NOT_FOUND,
                        t -> t.connect().request(new Message.Access(FIRM, 999, 0, AccessMode.USERLIMIT))),
                mistake("ACCESS of a firm no license has", CmError.ENTRY_NOT_FOUND,
                        t -> t.connect().request(new Message.Access(1_234_567, t.seats, 0, AccessMode.USERLIMIT))),
                mistake("ACCESS with feature bits the license does not serve", CmError.ENTRY_NOT_FOUND,
                        t -> t.connect().request(new Message.Access(FIRM, t.seats, 0x100, AccessMode.USERLIMIT))),
                mistake("RELEASE of a handle id never given", CmError.INVALID_HANDLE,
                        t -> t.connect().request(new Message.Release(123_456_789))),
                mistake("RELEASE of another session's handle", CmError.INVALID_HANDLE, t -> {
                    long handle = t.handle(t.connect(), t.seats);
                    return t.connect().request(new Message.Release(handle));
                }),
                mistake("GET_INFO of another session's handle", CmError.INVALID_HANDLE, t -> {
                    long handle = t.handle(t.connect(), t.seats);
                    return t.connect().request(new Message.GetInfo(handle));
                }),
                mistake("RESUME of a handle with a wrong token", CmError.INVALID_HANDLE, t -> {
                    long handle = t.handle(t.connect(), t.seats);
                    return t.connect().request(new Message.Resume(handle, Bytes.of(new byte[16])));
                }),
                mistake("RELEASE of a handle released already, then GET_INFO of it", CmError.INVALID_HANDLE, t -> {
                    RawConnection client = t.connect();
                    long handle = t.handle(client, t.seats);
                    assertInstanceOf(Message.Ok.class, client.request(new Message.Release(handle)));
                    return client.request(new Message.GetInfo(handle));
                }),
                mistake("CRYPT on a handle id never given", CmError.INVALID_HANDLE,
                        t -> t.connect().request(new Message.Crypt(987_654_321, CryptDirection.ENCRYPT, 1,
                                Bytes.of(new byte[16])))),
                mistake("DECREMENT_UNITS of a license without a unit counter", CmError.NO_UNIT_COUNTER, t -> {
                    RawConnection client = t.connect();
                    return client.request(new Message.DecrementUnits(t.handle(client, t.seats), 1, 1));
                }),
                mistake("DECREMENT_UNITS of more units than are left", CmError.UNIT_COUNTER_TOO_SMALL, t -> {
                    RawConnection client = t.connect();
                    return client.request(new Message.DecrementUnits(t.handle(client, t.units), 1, UNITS + 1));
                }),
                mistake("a request before HELLO", CmError.INVALID_PARAMETER,
                        t -> t.open().request(new Message.Access(FIRM, t.seats, 0, AccessMode.USERLIMIT))),
                mistake("HELLO twice", CmError.INVALID_PARAMETER,
                        t -> t.connect().request(new Message.Hello("again", "ws-bad", "tester", 1))),
                mistake("a reply sent as a request", CmError.INVALID_PARAMETER,
                        t -> t.connect().request(new Message.Ok())),
                mistake("a frame of an unknown message type", CmError.INVALID_PARAMETER, broken(frame -> {
                    frame[Integer.BYTES + 1] = (byte) 0xEE;
                    return frame;
                })),
                mistake("an ACCESS with an unknown access mode", CmError.INVALID_PARAMETER, broken(frame -> {
                    // u32 length, u8 version, u8 type, u32 request id, then u32 firm, product, feature bits, u16 mode
                    ByteBuffer.wrap(frame).putShort(Integer.BYTES + 6 + 12, (short) 0x777);
                    return frame;
                })),
                mistake("a frame of another protocol version", CmError.INVALID_PARAMETER, broken(frame -> {
                    frame[Integer.BYTES] = 99;
                    return frame;
                })),
                mistake("a frame longer than the maximum frame size", CmError.INVALID_PARAMETER, broken(frame -> {
                    ByteBuffer.wrap(frame).putInt(0, 1_048_577);
                    return frame;
                })),
                mistake("a frame shorter than its header", CmError.INVALID_PARAMETER, broken(frame -> {
                    ByteBuffer.wrap(frame).putInt(0, 3);
                    return frame;
                })),
                // Mistakes only a node can be sent: it is no backend and holds no license files.
                nodeOnly("a peer request (PEER_HELLO) to the node", CmError.INVALID_PARAMETER,
                        t -> t.open().request(new Message.PeerHello("not-a-node", Bytes.of(new byte[32])))),
                nodeOnly("a peer request after HELLO", CmError.INVALID_PARAMETER,
                        t -> t.connect().request(new Message.ListAllocations(0, 10))),
                nodeOnly("a license update file sent to the node", CmError.ACCESS_DENIED,
                        t -> t.connect().request(new Message.LicenseUpdate("", Bytes.of(new byte[] {'{', '}'})))));
    }

    private static Arguments mistake(String what, CmError expected, Mistake mistake) {
        return Arguments.of(what, expected, mistake, true);
    }

    private static Arguments nodeOnly(String what, CmError expected, Mistake mistake) {
        return Arguments.of(what, expected, mistake, false);
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("mistakes")
    void eachMistakeHasItsNumberOnTheNodeAsOnABackend(String what, CmError expected, Mistake mistake,
                                                      boolean onBackend) throws IOException, InterruptedException {
        for (Target target : onBackend ? List.of(node(), backend()) : List.of(node())) {
            Message answer = null;
            for (int attempt = 1; answer == null; attempt++) {
                try {
                    answer = mistake.send(target);
                } catch (NotServing e) {
                    answer = new Message.NotActive("");
                }
                if (answer instanceof Message.NotActive && attempt < 5) {
                    closeConnections();
                    Await.until("the node serves again", group.node()::serving);
                    answer = null;
                }
            }
            Message.Error error = assertInstanceOf(Message.Error.class, answer, target.name + ", " + what + ": "
                    + answer);
            assertEquals(expected.code(), error.code(), target.name + ", " + what + ": " + error.text());
            assertTrue(!error.text().isBlank(), target.name + " says why");
        }
    }
}
