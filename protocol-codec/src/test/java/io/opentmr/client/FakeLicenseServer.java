package io.opentmr.client;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.GlobalEventExecutor;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.BorrowTicket;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.FrameDecoder;
import io.opentmr.protocol.FrameEncoder;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.ServerKind;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A toy license server for the SDK's tests: a seat table of a few product items behind the real codec,
 * on 127.0.0.1, with knobs to misbehave (NOT_ACTIVE, lost replies, refused RESUME, delays, forced errors)
 * and a log of every request it received. State survives {@link #stop()}/{@link #restart()}, like a
 * TMR node's journal survives a fail-over; sessions do not, so a client must RESUME.
 */
final class FakeLicenseServer implements AutoCloseable {

    static final long FIRM = 6_000_010;
    /** 3 seats, unit counter 100, feature map 0b0111, borrowing allowed. */
    static final long PRODUCT = 42;
    /** 1 seat, no unit counter. */
    static final long SINGLE_SEAT = 43;
    static final Serial CONTAINER = new Serial(Serial.MASK_VIRTUAL_TMR, 59_885_682);

    private final ChannelGroup connections = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
    private final String name;
    private final Table table;
    private final ReentrantLock lock;
    private final Condition received;

    // guarded by lock
    private final Map<MessageType, List<Integer>> requestIds = new EnumMap<>(MessageType.class);
    /** Every request's type in the order requests arrived, over all connections. */
    private final List<MessageType> arrivals = new ArrayList<>();
    private final Set<MessageType> dropAndCloseOnce = EnumSet.noneOf(MessageType.class);
    private final Set<MessageType> neverAnswer = EnumSet.noneOf(MessageType.class);
    private final Map<MessageType, Message> answerOnce = new EnumMap<>(MessageType.class);
    private final Map<MessageType, Duration> delays = new EnumMap<>(MessageType.class);
    private Message helloAnswer;
    private ServerKind kind = ServerKind.BACKEND;
    private long keepAliveMillis = 10_000;
    private boolean refuseResume;
    private boolean knowsResumeMany = true;
    private int notNowOnce;
    /** Handles resumed by the items of RESUME_MANYs. */
    private int resumedItems;
    private int maxInFlight;
    private boolean frozen;

    private NioEventLoopGroup group;
    private Channel serverChannel;
    private int port;

    private FakeLicenseServer(String name, Table table) {
        this.name = name;
        this.table = table;
        this.lock = table.lock;
        this.received = table.received;
    }

    /** Starts a server on an ephemeral port of 127.0.0.1. */
    static FakeLicenseServer start(String name) {
        FakeLicenseServer server = new FakeLicenseServer(name, new Table());
        server.bind(0);
        return server;
    }

    /**
     * Starts a second server that shares this one's seat table, handles and remembered replies, as a
     * TMR twin shares them through the replicated journal.
     */
    FakeLicenseServer startTwin(String twinName) {
        FakeLicenseServer twin = new FakeLicenseServer(twinName, table);
        twin.bind(0);
        return twin;
    }

    int port() {
        return port;
    }

    String address() {
        return "127.0.0.1:" + port;
    }

    /**
     * Closes the listening socket and every connection; the seat table stays. The event loop goes too:
     * NIO frees a closed listening socket's port only when its selector lets go of the key, and closing
     * the selector is the one way to know that has happened before {@link #restart()} binds again.
     */
    void stop() {
        serverChannel.close().syncUninterruptibly();
        connections.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
        group.shutdownGracefully(0, 100, TimeUnit.MILLISECONDS).syncUninterruptibly();
        serverChannel = null;
    }

    /** Listens again on the same port. */
    void restart() {
        bind(port);
    }

    @Override
    public void close() {
        if (serverChannel != null) {
            stop();
        }
    }

    // ---------------------------------------------------------------- knobs

    void answerHelloWith(Message answer) {
        withLock(() -> helloAnswer = answer);
    }

    void serverKind(ServerKind kind) {
        withLock(() -> this.kind = kind);
    }

    void keepAliveMillis(long millis) {
        withLock(() -> keepAliveMillis = millis);
    }

    /** The next request of this type is carried out, but the connection closes instead of the reply. */
    void dropReplyAndCloseOnce(MessageType type) {
        withLock(() -> dropAndCloseOnce.add(type));
    }

    /** Requests of this type are recorded and never answered. */
    void neverAnswer(MessageType type) {
        withLock(() -> neverAnswer.add(type));
    }

    /** The next request of this type is answered with ERROR {@code code}. */
    void errorOnce(MessageType type, int code) {
        answerOnceWith(type, new Message.Error(code, "forced by the test"));
    }

    /** The next request of this type is not carried out but answered with {@code answer}. */
    void answerOnceWith(MessageType type, Message answer) {
        withLock(() -> answerOnce.put(type, answer));
    }

    /**
     * From now on, like a process stopped with SIGSTOP or a host behind a black hole: connections stay
     * open and new ones are accepted, requests arrive (and are recorded), and nothing is carried out or
     * answered, HELLO and KEEPALIVE included.
     */
    void freeze() {
        withLock(() -> frozen = true);
    }

    void delay(MessageType type, Duration delay) {
        withLock(() -> delays.put(type, delay));
    }

    void refuseResume(boolean refuse) {
        withLock(() -> refuseResume = refuse);
    }

    /**
     * False: a server older than RESUME_MANY, whose decoder answers the unknown type with ERROR 105 and closes the
     * connection, as {@link FrameDecoder} does.
     */
    void knowsResumeMany(boolean knows) {
        withLock(() -> knowsResumeMany = knows);
    }

    /**
     * The next RESUME_MANY of more than one item answers its last item with {@code code}, that handle not resumed (a
     * first RESUME_MANY of one handle, the client's probe, is left alone).
     */
    void notNowOnce(int code) {
        withLock(() -> notNowOnce = code);
    }

    /** The handle is gone, as one reclaimed: its seat is free, and RESUME of it is answered 106. */
    void forget(long handleId) {
        withLock(() -> {
            HandleRecord handle = table.handles.remove(handleId);
            if (handle != null && handle.holdsSeat) {
                handle.product.inUse--;
            }
        });
    }

    int resumedItems() {
        lock.lock();
        try {
            return resumedItems;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Like a real server's bound on requests in flight per connection: a request that arrives while
     * {@code max} delayed replies of its connection are outstanding is answered 309 at once. 0: no bound.
     */
    void maxInFlight(int max) {
        withLock(() -> maxInFlight = max);
    }

    // ---------------------------------------------------------------- what happened

    List<Integer> requestIds(MessageType type) {
        lock.lock();
        try {
            return List.copyOf(requestIds.getOrDefault(type, List.of()));
        } finally {
            lock.unlock();
        }
    }

    int received(MessageType type) {
        return requestIds(type).size();
    }

    /** The types of all requests received so far, in the order they arrived. */
    List<MessageType> arrivals() {
        lock.lock();
        try {
            return List.copyOf(arrivals);
        } finally {
            lock.unlock();
        }
    }

    /** Waits, at most {@code timeout}, until {@code count} requests of {@code type} have arrived. */
    boolean awaitReceived(MessageType type, int count, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        lock.lock();
        try {
            while (requestIds.getOrDefault(type, List.of()).size() < count) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                received.awaitNanos(left);
            }
            return true;
        } finally {
            lock.unlock();
        }
    }

    long inUse(long productCode) {
        lock.lock();
        try {
            return table.products.get(productCode).inUse;
        } finally {
            lock.unlock();
        }
    }

    long units(long productCode) {
        lock.lock();
        try {
            return table.products.get(productCode).units;
        } finally {
            lock.unlock();
        }
    }

    int handleCount() {
        lock.lock();
        try {
            return table.handles.size();
        } finally {
            lock.unlock();
        }
    }

    // ---------------------------------------------------------------- serving

    private void bind(int wanted) {
        group = new NioEventLoopGroup(1, new DefaultThreadFactory("fake-server-" + name, true));
        serverChannel = new ServerBootstrap()
                .group(group)
                .channel(NioServerSocketChannel.class)
                .option(ChannelOption.SO_REUSEADDR, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        connections.add(ch);
                        ch.pipeline().addLast(FrameEncoder.INSTANCE, new FrameDecoder(), new Session());
                    }
                })
                .bind(new InetSocketAddress("127.0.0.1", wanted)).syncUninterruptibly().channel();
        port = ((InetSocketAddress) serverChannel.localAddress()).getPort();
    }

    private void withLock(Runnable change) {
        lock.lock();
        try {
            change.run();
        } finally {
            lock.unlock();
        }
    }

    /** One client connection. */
    private final class Session extends SimpleChannelInboundHandler<Frame> {

        private long sessionId;
        private String client;
        /** Delayed replies not written yet; only the connection's event loop touches it. */
        private int outstanding;

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
            MessageType type = frame.message().type();
            Message reply;
            boolean dropAndClose;
            boolean silent;
            Duration delay;
            lock.lock();
            try {
                requestIds.computeIfAbsent(type, t -> new ArrayList<>()).add(frame.requestId());
                arrivals.add(type);
                received.signalAll();
                if (frozen) {
                    return;
                }
                if (maxInFlight > 0 && outstanding >= maxInFlight) {
                    ctx.writeAndFlush(new Frame(frame.requestId(), error(CmError.REQUEST_OVERLOAD,
                            "more than " + maxInFlight + " requests in flight on this connection")));
                    return;
                }
                if (type == MessageType.RESUME_MANY && !knowsResumeMany) {
                    ctx.writeAndFlush(new Frame(frame.requestId(), error(CmError.INVALID_PARAMETER,
                            "unknown message type 0x" + Integer.toHexString(type.code()))))
                            .addListener(io.netty.channel.ChannelFutureListener.CLOSE);
                    return;
                }
                reply = answer(frame);
                dropAndClose = dropAndCloseOnce.remove(type);
                silent = neverAnswer.contains(type);
                delay = delays.get(type);
            } finally {
                lock.unlock();
            }
            if (dropAndClose) {
                ctx.close();
            } else if (silent) {
                return;
            } else if (delay != null) {
                outstanding++;
                ctx.executor().schedule(() -> {
                    outstanding--;
                    ctx.writeAndFlush(new Frame(frame.requestId(), reply));
                }, delay.toNanos(), TimeUnit.NANOSECONDS);
            } else {
                ctx.writeAndFlush(new Frame(frame.requestId(), reply));
            }
        }

        private Message answer(Frame frame) {
            Message request = frame.message();
            if (request instanceof Message.Hello hello) {
                sessionId = table.nextSession++;
                client = hello.clientName() + "@" + hello.host() + "/" + hello.user() + "/" + hello.pid();
                return helloAnswer != null ? helloAnswer : new Message.HelloOk(kind, sessionId, keepAliveMillis, name);
            }
            if (client == null) {
                return error(CmError.INVALID_PARAMETER, "HELLO first");
            }
            Message forced = answerOnce.remove(request.type());
            if (forced != null) {
                return forced;
            }
            // Request ids make a repeated request recognisable: the same answer, carried out once.
            String requestKey = client + "#" + frame.requestId();
            Message earlier = table.repliesByRequest.get(requestKey);
            if (earlier != null) {
                if (earlier instanceof Message.AccessOk granted && table.handles.containsKey(granted.handleId())) {
                    table.handles.get(granted.handleId()).session = sessionId;
                }
                return earlier;
            }
            Message reply = carryOut(request);
            if (request instanceof Message.Access || request instanceof Message.Release
                    || request instanceof Message.DecrementUnits || request instanceof Message.Borrow) {
                table.repliesByRequest.put(requestKey, reply);
            }
            return reply;
        }

        private Message carryOut(Message request) {
            if (request instanceof Message.ListContainers) {
                List<ProductInfo> infos = new ArrayList<>();
                table.products.values().forEach(p -> infos.add(p.info()));
                return new Message.ContainerList(List.of(new ContainerInfo(CONTAINER, 7, Bytes.EMPTY, infos)));
            }
            if (request instanceof Message.KeepAlive) {
                return new Message.Ok();
            }
            if (request instanceof Message.Access access) {
                Product product = access.firmCode() == FIRM ? table.products.get(access.productCode()) : null;
                if (product == null || (access.featureBits() & ~product.featureMap) != 0) {
                    return error(CmError.ENTRY_NOT_FOUND, "no product item " + access.firmCode() + "/"
                            + access.productCode() + " with features " + access.featureBits());
                }
                boolean seat = access.accessMode() != AccessMode.NOUSERLIMIT;
                if (seat && product.inUse >= product.quantity) {
                    return error(CmError.NO_MORE_LICENSES, "all " + product.quantity + " seats are taken");
                }
                if (seat) {
                    product.inUse++;
                }
                long id = table.nextHandle++;
                Bytes token = Bytes.fromHex(String.format("%032x", id * 7919));
                table.handles.put(id, new HandleRecord(product, access.accessMode(), token, sessionId, seat));
                return new Message.AccessOk(id, token, CONTAINER);
            }
            if (request instanceof Message.Resume resume) {
                HandleRecord handle = table.handles.get(resume.handleId());
                if (refuseResume || handle == null || !handle.token.equals(resume.token())) {
                    return error(CmError.INVALID_HANDLE, "cannot resume handle " + resume.handleId());
                }
                handle.session = sessionId;
                return new Message.AccessOk(resume.handleId(), handle.token, CONTAINER);
            }
            if (request instanceof Message.ResumeMany many) {
                List<Message.ResumedMany.Outcome> outcomes = new ArrayList<>();
                for (int i = 0; i < many.items().size(); i++) {
                    Message.Resume item = many.items().get(i);
                    HandleRecord handle = table.handles.get(item.handleId());
                    int code;
                    if (i == many.items().size() - 1 && i > 0 && notNowOnce != 0) {
                        code = notNowOnce;
                        notNowOnce = 0;
                    } else if (refuseResume || handle == null || !handle.token.equals(item.token())) {
                        code = CmError.INVALID_HANDLE.code();
                    } else {
                        handle.session = sessionId;
                        resumedItems++;
                        code = Message.ResumedMany.RESUMED;
                    }
                    outcomes.add(new Message.ResumedMany.Outcome(item.handleId(), code));
                }
                return new Message.ResumedMany(outcomes);
            }
            if (request instanceof Message.Return giveBack) {
                return table.tickets.remove(giveBack.ticketId()) != null ? new Message.Ok()
                        : error(CmError.ENTRY_NOT_FOUND, "no borrow ticket " + giveBack.ticketId());
            }
            long handleId = handleIdOf(request);
            HandleRecord handle = table.handles.get(handleId);
            if (handle == null || handle.session != sessionId) {
                return error(CmError.INVALID_HANDLE, "no handle " + handleId + " in session " + sessionId);
            }
            if (request instanceof Message.Release) {
                table.handles.remove(handleId);
                if (handle.holdsSeat) {
                    handle.product.inUse--;
                }
                return new Message.Ok();
            }
            if (request instanceof Message.GetInfo) {
                return new Message.Info(handleId, handle.mode, CONTAINER, handle.product.info());
            }
            if (request instanceof Message.Crypt crypt) {
                byte[] data = crypt.data().toArray();
                int key = (int) (crypt.encryptionCode() + handle.product.code);
                for (int i = 0; i < data.length; i++) {
                    data[i] = (byte) (crypt.direction() == CryptDirection.ENCRYPT ? data[i] + key + i : data[i] - key - i);
                }
                return new Message.CryptOk(Bytes.of(data));
            }
            if (request instanceof Message.DecrementUnits decrement) {
                Message earlier = table.repliesByOperation.get(decrement.operationId());
                if (earlier != null) {
                    return earlier;
                }
                Product product = handle.product;
                Message reply;
                if (!product.hasUnitCounter) {
                    reply = error(CmError.NO_UNIT_COUNTER, "product " + product.code + " has no unit counter");
                } else if (product.units == 0) {
                    reply = error(CmError.UNIT_COUNTER_ZERO, "the unit counter is 0");
                } else if (decrement.amount() > product.units) {
                    reply = error(CmError.UNIT_COUNTER_TOO_SMALL, "only " + product.units + " units left");
                } else {
                    product.units -= decrement.amount();
                    reply = new Message.UnitsOk(product.units);
                }
                table.repliesByOperation.put(decrement.operationId(), reply);
                return reply;
            }
            if (request instanceof Message.Borrow borrow) {
                long ticket = table.nextTicket++;
                table.tickets.put(ticket, handleId);
                return new Message.BorrowOk(new BorrowTicket(ticket, FIRM, handle.product.code, client,
                        1_700_000_000_000L + borrow.durationSeconds() * 1000, CONTAINER, Bytes.of(new byte[64])));
            }
            return error(CmError.INVALID_PARAMETER, request.type() + " is not a client request");
        }

        private long handleIdOf(Message request) {
            if (request instanceof Message.Release r) {
                return r.handleId();
            } else if (request instanceof Message.GetInfo r) {
                return r.handleId();
            } else if (request instanceof Message.Crypt r) {
                return r.handleId();
            } else if (request instanceof Message.DecrementUnits r) {
                return r.handleId();
            } else if (request instanceof Message.Borrow r) {
                return r.handleId();
            }
            return -1;
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }

    private static Message.Error error(CmError error, String text) {
        return new Message.Error(error, text);
    }

    /** The state twins share. */
    private static final class Table {
        final ReentrantLock lock = new ReentrantLock();
        final Condition received = lock.newCondition();
        final Map<Long, Product> products = new LinkedHashMap<>();
        final Map<Long, HandleRecord> handles = new HashMap<>();
        final Map<Long, Long> tickets = new HashMap<>();
        final Map<String, Message> repliesByRequest = new HashMap<>();
        final Map<Long, Message> repliesByOperation = new HashMap<>();
        long nextSession = 1;
        long nextHandle = 1001;
        long nextTicket = 1;

        Table() {
            products.put(PRODUCT, new Product(PRODUCT, 3, 0b0111, true, 100));
            products.put(SINGLE_SEAT, new Product(SINGLE_SEAT, 1, 0, false, 0));
        }
    }

    private static final class Product {
        final long code;
        final long quantity;
        final long featureMap;
        final boolean hasUnitCounter;
        long units;
        long inUse;

        Product(long code, long quantity, long featureMap, boolean hasUnitCounter, long units) {
            this.code = code;
            this.quantity = quantity;
            this.featureMap = featureMap;
            this.hasUnitCounter = hasUnitCounter;
            this.units = units;
        }

        ProductInfo info() {
            return new ProductInfo(FIRM, code, featureMap, "product " + code, quantity, inUse, 0, hasUnitCounter,
                    units, 0, 0, 0, 0, hasUnitCounter ? 86_400 : 0);
        }
    }

    private static final class HandleRecord {
        final Product product;
        final AccessMode mode;
        final Bytes token;
        final boolean holdsSeat;
        long session;

        HandleRecord(Product product, AccessMode mode, Bytes token, long session, boolean holdsSeat) {
            this.product = product;
            this.mode = mode;
            this.token = token;
            this.session = session;
            this.holdsSeat = holdsSeat;
        }
    }
}
