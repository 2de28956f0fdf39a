package io.opentmr.tmr.server;

import io.netty.channel.ChannelHandlerContext;
import io.opentmr.access.AccessList;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.ServerKind;
import io.opentmr.server.FrameSession;
import io.opentmr.tmr.NodeSettings;
import io.opentmr.tmr.NodeStatus;
import io.opentmr.tmr.TmrNode;
import io.opentmr.tmr.VirtualContainer;
import io.opentmr.tmr.license.Seat;
import io.opentmr.tmr.license.TmrLicense;
import io.opentmr.tmr.tracking.NodeTrackingLog;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.security.SecureRandom;
import java.time.Clock;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Scheduler;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client connection to the TMR node. HELLO is answered TMR_ACTIVE only while the node serves
 * ({@link NodeStatus}); otherwise, and for every request while it does not, the client hears NOT_ACTIVE
 * and comes back later or goes to the active node. ACCESS goes to the virtual container, which routes it to
 * the license; every request on a handle this session holds goes to that handle's license directly (the
 * license is named in the grant), and the typed answer is turned into the wire message here.
 *
 * <p>HELLO is checked against the node's access list first ({@link ClientAccess}): a client it refuses hears
 * ERROR 231 with the rule and is tracked as a denial; a reloaded list that no longer allows a client releases
 * that session's handles and closes it.
 */
public final class TmrSession extends FrameSession {

    private static final long ACTIVITY_INTERVAL_NANOS = TimeUnit.SECONDS.toNanos(1);

    private static final Logger LOG = LoggerFactory.getLogger(TmrSession.class);

    /** The HELLO waiting for the node to serve ({@link #waitForServing}), or null. */
    private Message.Hello parked;
    private final NodeSettings settings;
    private final NodeStatus status;
    private final String serverName;
    private final Serial virtualSerial;
    private final TmrNode.ContainerHolder containers;
    private final TmrNode.RoleHolder role;
    private final Scheduler scheduler;
    private final SecureRandom random;
    private final ClientAccess access;
    private final NodeTrackingLog tracking;
    private final Clock clock;
    /** The handles this session holds, and the license of each. Only the channel's event loop touches it. */
    private final Map<Long, ActorRef<TmrLicense.Command>> sessionHandles = new HashMap<>();
    /** The license that granted each product (firm, product) on this connection: where its next ACCESS goes. */
    private final Map<Long, ActorRef<TmrLicense.Command>> licenseOf = new HashMap<>();
    /**
     * The serial of the virtual container of each license met on this connection that is not the first one's (a node
     * over backends of several shared CmActIds); absent: the first virtual container's.
     */
    private final Map<ActorRef<TmrLicense.Command>, Serial> licenseSerial = new HashMap<>();
    private long sessionId;
    private String station = "?";
    private String user;
    private String host;
    private long pid;
    private long lastActivity;
    private InetAddress peer;
    private ChannelHandlerContext context;

    /**
     * @param access   the access list HELLO is checked against, and where this session registers once admitted
     * @param tracking where a refused HELLO is tracked
     */
    public TmrSession(NodeSettings settings, NodeStatus status, Serial virtualSerial,
                      TmrNode.ContainerHolder containers, TmrNode.RoleHolder role, Scheduler scheduler,
                      SecureRandom random, ClientAccess access, NodeTrackingLog tracking, Clock clock,
                      io.opentmr.server.RequestObserver observer) {
        super(new FrameSession.Limits(settings.helloTimeout(), settings.requestTimeout(),
                settings.maxInFlightPerConnection()), observer);
        this.settings = settings;
        this.status = status;
        this.virtualSerial = virtualSerial;
        this.serverName = "opentmr-node " + virtualSerial;
        this.containers = containers;
        this.role = role;
        this.scheduler = scheduler;
        this.random = random;
        this.access = access;
        this.tracking = tracking;
        this.clock = clock;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) throws Exception {
        context = ctx;
        if (ctx.channel().remoteAddress() instanceof InetSocketAddress remote) {
            peer = remote.getAddress();
            station = peer.getHostAddress();
        }
        super.channelActive(ctx);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
        access.gone(this);
        super.channelInactive(ctx);
    }

    /** The access list was reloaded: if it no longer allows this client, its handles go and the session ends. */
    void recheck(AccessList list) {
        ChannelHandlerContext ctx = context;
        if (ctx == null) {
            return;
        }
        ctx.executor().execute(() -> {
            String denial = peer == null ? null : list.denial(peer, host);
            if (denial == null || !ctx.channel().isActive()) {
                return;
            }
            LOG.warn("Session {} of {}@{} ({}) closed: the reloaded access list no longer allows it ({}); its {} "
                    + "handle(s) are released", Long.toUnsignedString(sessionId), user, host, station, denial,
                    sessionHandles.size());
            String reason = "access list: " + denial;
            sessionHandles.forEach((handleId, license) -> AskPattern.<TmrLicense.Command, TmrLicense.Reply>ask(
                            license, r -> new TmrLicense.Release(handleId, sessionId, reason, r),
                            settings.requestTimeout(), scheduler)
                    .whenComplete((reply, failure) -> {
                        if (failure != null || !(reply instanceof TmrLicense.Released)) {
                            LOG.warn("Handle {} of session {} not released after the access list change ({}); it is "
                                    + "reclaimed after the cleanup timeout", Long.toUnsignedString(handleId),
                                    Long.toUnsignedString(sessionId), failure != null ? failure : reply);
                        }
                    }));
            sessionHandles.clear();
            access.gone(this);
            ctx.close();
        });
    }

    /** Whether the access list lets this client in; if not, it has been told 231 and the connection closes. */
    private boolean admitted(ChannelHandlerContext ctx, int id, Message.Hello hello, AccessList list) {
        String denial = peer == null ? null : list.denial(peer, hello.host());
        if (denial == null) {
            return true;
        }
        String text = "host " + hello.host() + " (" + station + ") may not use this TMR node: " + denial;
        LOG.warn("Refused HELLO from {}@{} ({}): {}", hello.user(), hello.host(), station, denial);
        tracking.denial(null, 0, 0, CmError.ACCESS_DENIED.code(), text, "HELLO",
                new NodeTrackingLog.Owner(station, hello.host(), hello.user(), hello.pid(), 0), clock.millis());
        replyAndClose(ctx, id, new Message.Error(CmError.ACCESS_DENIED, text));
        return false;
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
        int id = frame.requestId();
        Message message = frame.message();
        if (!isHelloDone()) {
            if (message instanceof Message.Hello hello) {
                AccessList checked = access.list();
                if (!admitted(ctx, id, hello, checked)) {
                    return;
                }
                if (!status.serving()) {
                    if (parked == null && waitForServing(ctx, id, hello, checked)) {
                        return;
                    }
                    // Not serving (restarting, or without the lease): the client comes back later.
                    replyAndClose(ctx, id, new Message.NotActive(status.activeAddress()));
                    return;
                }
                welcome(ctx, id, hello, checked);
            } else if (message.type().direction() == MessageType.Direction.NODE_TO_BACKEND) {
                error(ctx, id, CmError.INVALID_PARAMETER, message.type() + " to a TMR node: peer requests go to backends");
            } else {
                error(ctx, id, CmError.INVALID_PARAMETER, message.type() + " before HELLO: say HELLO first");
            }
            return;
        }
        continueRead(ctx, id, message);
    }

    /**
     * A HELLO while the node holds the lease but is still taking over waits, up to {@code hello-wait} ({@link NodeSettings#helloWait}), for it to
     * serve, and is then answered at once: a client sent away with NOT_ACTIVE would come back only after its
     * backoff (100–200 ms with the SDK), on a new connection. Past the wait, or if the node stops taking over, the
     * client hears NOT_ACTIVE as before.
     *
     * @return false when the node is not taking over (the caller answers NOT_ACTIVE now)
     */
    private boolean waitForServing(ChannelHandlerContext ctx, int id, Message.Hello hello, AccessList checked) {
        Runnable[] callback = new Runnable[1];
        callback[0] = () -> ctx.executor().execute(() -> helloWaited(ctx, id, callback[0], checked));
        if (!status.awaitServing(callback[0])) {
            return false;
        }
        parked = hello;
        ctx.executor().schedule(() -> helloWaited(ctx, id, callback[0], checked), settings.helloWait().toNanos(),
                TimeUnit.NANOSECONDS);
        return true;
    }

    /** The node serves now, or the HELLO waited long enough (on the connection's event loop; the first call wins). */
    private void helloWaited(ChannelHandlerContext ctx, int id, Runnable callback, AccessList checked) {
        status.cancelAwait(callback);
        Message.Hello hello = parked;
        if (hello == null || isHelloDone() || !ctx.channel().isActive()) {
            return;
        }
        parked = null;
        if (!status.serving()) {
            replyAndClose(ctx, id, new Message.NotActive(status.activeAddress()));
            return;
        }
        if (access.list() != checked && !admitted(ctx, id, hello, access.list())) {
            return;
        }
        welcome(ctx, id, hello, access.list());
    }

    /** HELLO_OK: the session begins. */
    private void welcome(ChannelHandlerContext ctx, int id, Message.Hello hello, AccessList checked) {
        helloDone();
        do {
            sessionId = random.nextLong();
        } while (sessionId == 0);
        host = hello.host();
        user = hello.user();
        pid = hello.pid();
        access.admitted(this);
        if (access.list() != checked) {
            // Reloaded between the check and the registration, which that reload did not see.
            recheck(access.list());
        }
        reply(ctx, id, new Message.HelloOk(ServerKind.TMR_ACTIVE, sessionId,
                settings.keepAliveInterval().toMillis(), serverName));
    }

    private void continueRead(ChannelHandlerContext ctx, int id, Message message) {
        ActorRef<VirtualContainer.Command> container = containers.get();
        if (!status.serving() || container == null) {
            reply(ctx, id, new Message.NotActive(status.activeAddress()));
            return;
        }
        long now = System.nanoTime();
        if (now - lastActivity > ACTIVITY_INTERVAL_NANOS && !sessionHandles.isEmpty()) {
            lastActivity = now;
            touchHandles();
        }
        switch (message.type()) {
            case HELLO -> error(ctx, id, CmError.INVALID_PARAMETER, "HELLO was already said on this connection");
            case KEEPALIVE -> reply(ctx, id, new Message.Ok());
            case LIST_CONTAINERS -> {
                List<TmrNode.Group> others = containers.others();
                if (others.isEmpty()) {
                    ask(ctx, id, container, VirtualContainer.ListContainers::new,
                            listed -> new Message.ContainerList(List.of(listed.container())));
                } else {
                    answer(ctx, id, () -> listAll(ctx, container, others), Message.ContainerList::new);
                }
            }
            case ACCESS -> {
                Message.Access m = (Message.Access) message;
                TmrLicense.Client client = new TmrLicense.Client(station, host, user, pid, sessionId);
                long requestId = Integer.toUnsignedLong(id);
                long product = (m.firmCode() << 32) | m.productCode();
                ActorRef<TmrLicense.Command> known = licenseOf.get(product);
                List<TmrNode.Group> others = containers.others();
                if (known != null) {
                    // The license that granted this product on this connection before: one mailbox less.
                    Serial serial = licenseSerial.getOrDefault(known, virtualSerial);
                    ask(ctx, id, known, r -> new TmrLicense.Access(m.featureBits(), m.accessMode(), client, requestId,
                            r), (TmrLicense.Reply reply) -> accessAnswer(product, reply, serial, true));
                } else if (!others.isEmpty() || !containers.awaited().isEmpty()) {
                    // Several virtual containers: through those that know the product, first group first.
                    List<Target> route = accessRoute(container, others, m.firmCode(), m.productCode(),
                            new Seat.RequestKey(client.station(), client.host(), client.user(), client.pid(),
                                    requestId));
                    answer(ctx, id, () -> through(ctx, route, 0, null, target -> r -> new VirtualContainer.Access(
                                    m.firmCode(), m.productCode(), m.featureBits(), m.accessMode(), client, requestId,
                                    r), TmrSession::accessPassesOn),
                            routed -> accessAnswer(product, awaitedInstead(routed.reply(),
                                    CmError.ENTRY_NOT_FOUND.code(), others), routed.serial(), route.size() == 1));
                } else {
                    ask(ctx, id, container, r -> new VirtualContainer.Access(m.firmCode(), m.productCode(),
                            m.featureBits(), m.accessMode(), client, requestId, r),
                            (TmrLicense.Reply reply) -> accessAnswer(product, reply, virtualSerial, true));
                }
            }
            case RELEASE -> {
                long handleId = ((Message.Release) message).handleId();
                ActorRef<TmrLicense.Command> license = sessionHandles.get(handleId);
                if (license != null) {
                    askLicense(ctx, id, license, r -> new TmrLicense.Release(handleId, sessionId, r), handleId);
                } else {
                    // Not this session's (a repeat after a reconnect, or a stranger): the license decides.
                    toHandle(ctx, id, container, handleId, serial -> r -> new TmrLicense.Release(handleId, sessionId,
                            r), null);
                }
            }
            case RESUME -> {
                Message.Resume m = (Message.Resume) message;
                toHandle(ctx, id, container, m.handleId(), serial -> r -> new TmrLicense.Resume(m.handleId(),
                        m.token(), sessionId, r), m);
            }
            case RESUME_MANY -> resumeMany(ctx, id, container, ((Message.ResumeMany) message).items());
            case GET_INFO -> {
                long handleId = ((Message.GetInfo) message).handleId();
                onHandle(ctx, id, handleId, r -> new TmrLicense.GetInfo(handleId, sessionId, r));
            }
            case CRYPT -> {
                Message.Crypt m = (Message.Crypt) message;
                onHandle(ctx, id, m.handleId(), r -> new TmrLicense.Crypt(m.handleId(), sessionId, m.direction(),
                        m.encryptionCode(), m.data(), r));
            }
            case DECREMENT_UNITS -> {
                Message.DecrementUnits m = (Message.DecrementUnits) message;
                onHandle(ctx, id, m.handleId(), r -> new TmrLicense.DecrementUnits(m.handleId(), sessionId,
                        m.operationId(), m.amount(), r));
            }
            case BORROW -> {
                Message.Borrow m = (Message.Borrow) message;
                ActorRef<TmrLicense.Command> license = sessionHandles.get(m.handleId());
                Function<Serial, org.apache.pekko.japi.function.Function<ActorRef<TmrLicense.Reply>,
                        TmrLicense.Command>> borrow = serial -> r -> new TmrLicense.Borrow(m.handleId(), sessionId,
                        m.durationSeconds(), clientId(), serial, r);
                if (license != null) {
                    askLicense(ctx, id, license, borrow.apply(licenseSerial.getOrDefault(license, virtualSerial)),
                            m.handleId());
                } else {
                    // A BORROW repeated after its answer was lost (a reconnect, a fail-over): the handle ended when
                    // it became the borrow, so the license answers its client with the ticket it journaled.
                    toHandle(ctx, id, container, m.handleId(), borrow, null);
                }
            }
            case RETURN -> {
                long ticketId = ((Message.Return) message).ticketId();
                toHandle(ctx, id, container, ticketId, serial -> r -> new TmrLicense.ReturnBorrow(ticketId, clientId(),
                        r), null, 0);
            }
            case LICENSE_CONTEXT, LICENSE_UPDATE -> error(ctx, id, CmError.ACCESS_DENIED,
                    "a TMR node holds no license files: import them on each of the three backends");
            case NODE_STEP_DOWN -> {
                if (adminAllowed(((Message.NodeStepDown) message).adminToken())) {
                    LOG.warn("Step-down asked by {}@{} ({})", user, host, station);
                    answer(ctx, id, role::stepDown, done -> new Message.Ok());
                } else {
                    error(ctx, id, CmError.ACCESS_DENIED, "admin requests need a loopback connection or the admin "
                            + "token");
                }
            }
            default -> error(ctx, id, CmError.INVALID_PARAMETER, message.type() + " is not a request to a TMR node");
        }
    }

    /**
     * The answer to an ACCESS; remembers the license that granted it alone, for the product's next ACCESS.
     *
     * @param single whether one virtual container alone knows the product (with several, a license alone in its
     *               container is not the product's only one: the next ACCESS falls through to the others' too)
     */
    private Message accessAnswer(long product, TmrLicense.Reply reply, Serial serial, boolean single) {
        if (reply instanceof TmrLicense.Granted granted && granted.alone() && single) {
            licenseOf.put(product, granted.license());
        } else if (reply instanceof TmrLicense.Granted || reply instanceof TmrLicense.Refused) {
            // A product of several licenses (each ACCESS starts at the first by TMR-Id), or one withdrawn, gone or
            // full, where another license may have come meanwhile: the next ACCESS asks the virtual container(s)
            // which license serves.
            licenseOf.remove(product);
        }
        return toWire(reply, 0, null, serial);
    }

    /** Admin requests: from loopback, or with the installation's admin token (compared in constant time). */
    private boolean adminAllowed(String token) {
        boolean tokenOk = settings.adminToken().map(admin -> admin.matches(token)).orElse(false);
        if ((peer != null && peer.isLoopbackAddress()) || tokenOk) {
            return true;
        }
        LOG.warn("Refused admin request from {}@{} ({}): not loopback and no valid admin token", user, host, station);
        tracking.denial(null, 0, 0, CmError.ACCESS_DENIED.code(), "admin request without loopback or token",
                "ADMIN", new NodeTrackingLog.Owner(station, host, user, pid, sessionId), clock.millis());
        return false;
    }

    /**
     * A refusal with its CodeMeter number (a step-down without a standby in sync). Anything else that failed while
     * this node no longer serves (it stepped down, or was frozen past its lease and resumed; an ask not answered in
     * time) counts for nothing: NOT_ACTIVE, and the client sends it again to the active node. Otherwise 100.
     */
    @Override
    protected Message failure(int id, Throwable cause) {
        if (cause instanceof CmFailure refusal) {
            return refusal.toMessage();
        }
        if (!status.serving()) {
            return new Message.NotActive(status.activeAddress());
        }
        return super.failure(id, cause);
    }

    /** Tells each license this session is alive, for the handles of it the session holds. */
    private void touchHandles() {
        Map<ActorRef<TmrLicense.Command>, List<Long>> byLicense = new HashMap<>();
        sessionHandles.forEach((handleId, license) -> byLicense.computeIfAbsent(license, l -> new ArrayList<>())
                .add(handleId));
        byLicense.forEach((license, ids) -> license.tell(new TmrLicense.Touch(sessionId,
                ids.stream().mapToLong(Long::longValue).toArray())));
    }

    private void onHandle(ChannelHandlerContext ctx, int id, long handleId,
                          org.apache.pekko.japi.function.Function<ActorRef<TmrLicense.Reply>, TmrLicense.Command> command) {
        ActorRef<TmrLicense.Command> license = sessionHandles.get(handleId);
        if (license == null) {
            error(ctx, id, CmError.INVALID_HANDLE, "handle " + Long.toUnsignedString(handleId)
                    + " is not held on this connection; RESUME it with its token");
            return;
        }
        askLicense(ctx, id, license, command, handleId);
    }

    private <C> void askLicense(ChannelHandlerContext ctx, int id, ActorRef<C> target,
                                org.apache.pekko.japi.function.Function<ActorRef<TmrLicense.Reply>, C> command,
                                long handleId) {
        askLicense(ctx, id, target, command, handleId, null);
    }

    private <C> void askLicense(ChannelHandlerContext ctx, int id, ActorRef<C> target,
                                org.apache.pekko.japi.function.Function<ActorRef<TmrLicense.Reply>, C> command,
                                long handleId, Message.Resume resume) {
        Serial serial = virtualSerial;
        if (!licenseSerial.isEmpty()) {
            Serial known = licenseSerial.get(target);
            serial = known == null ? virtualSerial : known;
        }
        Serial of = serial;
        ask(ctx, id, target, command, reply -> toWire(reply, handleId, resume, of));
    }

    // --- several virtual containers (docs/several-containers.md §2) ---------------------------------------

    /** A virtual container a request may go to: its serial, and its status (null: the first, the node's). */
    private record Target(ActorRef<VirtualContainer.Command> container, Serial serial, NodeStatus status) {
    }

    /** A license's answer and the serial of the virtual container it came from. */
    private record Routed(TmrLicense.Reply reply, Serial serial) {
    }

    private List<Target> all(ActorRef<VirtualContainer.Command> first, List<TmrNode.Group> others) {
        List<Target> targets = new ArrayList<>(1 + others.size());
        targets.add(new Target(first, virtualSerial, null));
        for (TmrNode.Group group : others) {
            targets.add(new Target(group.container(), group.serial(), group.status()));
        }
        return targets;
    }

    /**
     * The virtual containers an ACCESS of this product goes through: those that know a license of it, first group
     * first, but the one where this request opened a handle before first of all (a re-sent ACCESS gets that handle,
     * not a seat another container has free meanwhile); none knows it: the first alone, which answers 200 (and
     * tracks the denial).
     */
    private List<Target> accessRoute(ActorRef<VirtualContainer.Command> first, List<TmrNode.Group> others,
                                     long firmCode, long productCode, Seat.RequestKey request) {
        List<Target> route = new ArrayList<>(2);
        for (Target target : all(first, others)) {
            NodeStatus of = target.status() == null ? status : target.status();
            if (of.opened(request)) {
                route.add(0, target);
            } else if (of.knows(firmCode, productCode)) {
                route.add(target);
            }
        }
        if (route.isEmpty()) {
            route.add(new Target(first, virtualSerial, null));
        }
        return route;
    }

    /** ACCESS passes to the next virtual container on 212, 213, 130 and 200, as between licenses of one product. */
    private static boolean accessPassesOn(TmrLicense.Reply reply) {
        if (!(reply instanceof TmrLicense.Refused refused)) {
            return false;
        }
        int code = refused.code();
        return code == CmError.NO_MORE_LICENSES.code() || code == CmError.EXCLUSIVE_CONFLICT.code()
                || code == CmError.REDUNDANCY_SERVER_MISSING.code() || code == CmError.ENTRY_NOT_FOUND.code();
    }

    /**
     * Asks the virtual containers from {@code index} on, one after the other, until one answers without passing on;
     * the refusals passed on are merged as between licenses ({@link TmrLicense#weightier}). A container other than
     * the first that does not serve yet (no lease of its own, or not reconciled) refuses with 130. Every step runs on
     * the channel's event loop.
     */
    private CompletionStage<Routed> through(ChannelHandlerContext ctx, List<Target> targets, int index,
                                            TmrLicense.Refused before,
                                            Function<Target, org.apache.pekko.japi.function.Function<
                                                    ActorRef<TmrLicense.Reply>, VirtualContainer.Command>> command,
                                            java.util.function.Predicate<TmrLicense.Reply> passesOn) {
        Target target = targets.get(index);
        CompletionStage<TmrLicense.Reply> asked;
        if (target.status() != null && !target.status().serving()) {
            asked = CompletableFuture.completedFuture(notServing(target));
        } else {
            asked = AskPattern.ask(target.container(), command.apply(target)::apply, settings.requestTimeout(),
                    scheduler);
        }
        return asked.thenComposeAsync(reply -> {
            TmrLicense.Reply answer = target.status() != null && reply instanceof TmrLicense.NotServing
                    ? notServing(target) : reply;
            if (!passesOn.test(answer)) {
                return CompletableFuture.completedFuture(new Routed(answer, target.serial()));
            }
            TmrLicense.Refused refused = (TmrLicense.Refused) answer;
            TmrLicense.Refused merged = before == null ? refused : TmrLicense.weightier(before, refused);
            if (index + 1 == targets.size()) {
                return CompletableFuture.completedFuture(new Routed(merged, target.serial()));
            }
            return through(ctx, targets, index + 1, merged, command, passesOn);
        }, ctx.executor());
    }

    private static TmrLicense.Refused notServing(Target target) {
        return new TmrLicense.Refused(CmError.REDUNDANCY_SERVER_MISSING, "virtual container " + target.serial()
                + " does not serve yet: it holds no lease of its backends or has not reconciled its licenses");
    }

    /**
     * A request for a handle (or ticket) this session does not hold: to the first virtual container, and with
     * several to each in turn until one knows it (106, or a container still recovering, passes it on).
     */
    private void toHandle(ChannelHandlerContext ctx, int id, ActorRef<VirtualContainer.Command> first, long handleId,
                          Function<Serial, org.apache.pekko.japi.function.Function<ActorRef<TmrLicense.Reply>,
                                  TmrLicense.Command>> command, Message.Resume resume) {
        toHandle(ctx, id, first, handleId, command, resume, handleId);
    }

    private void toHandle(ChannelHandlerContext ctx, int id, ActorRef<VirtualContainer.Command> first, long handleId,
                          Function<Serial, org.apache.pekko.japi.function.Function<ActorRef<TmrLicense.Reply>,
                                  TmrLicense.Command>> command, Message.Resume resume, long releasedHandle) {
        List<TmrNode.Group> others = containers.others();
        if (others.isEmpty() && containers.awaited().isEmpty()) {
            askLicense(ctx, id, first, r -> new VirtualContainer.ToHandle(handleId, command.apply(virtualSerial)
                    .apply(r), r), releasedHandle, resume);
            return;
        }
        List<Target> targets = all(first, others);
        answer(ctx, id, () -> throughHandle(ctx, targets, 0, null, handleId, command), routed -> {
            if (routed.reply() instanceof TmrLicense.Granted || routed.reply() instanceof TmrLicense.Resumed) {
                ActorRef<TmrLicense.Command> license = routed.reply() instanceof TmrLicense.Resumed resumed
                        ? resumed.license() : ((TmrLicense.Granted) routed.reply()).license();
                remember(license, routed.serial());
            }
            return toWire(awaitedInstead(routed.reply(), CmError.INVALID_HANDLE.code(), others), releasedHandle, resume,
                    routed.serial());
        });
    }

    /**
     * A refusal {@code code} (200: no such product, 106: no such handle) while a virtual container this node had or
     * formed does not run yet is no answer: that one may hold it. 130, and the client asks again (a handle is kept).
     */
    private TmrLicense.Reply awaitedInstead(TmrLicense.Reply reply, int code, List<TmrNode.Group> asked) {
        if (reply instanceof TmrLicense.Refused refused && refused.code() == code) {
            // Against the containers asked, not those running now: one published since was not asked.
            List<Long> awaited = containers.awaited(asked);
            if (!awaited.isEmpty()) {
                return new TmrLicense.Refused(CmError.REDUNDANCY_SERVER_MISSING, refused.text() + "; the virtual "
                        + "container(s) of CmActId(s) " + awaited + " do not run yet");
            }
        }
        return reply;
    }

    private CompletionStage<Routed> throughHandle(ChannelHandlerContext ctx, List<Target> targets, int index,
                                                  Routed waiting, long handleId,
                                                  Function<Serial, org.apache.pekko.japi.function.Function<
                                                          ActorRef<TmrLicense.Reply>, TmrLicense.Command>> command) {
        Target target = targets.get(index);
        CompletionStage<TmrLicense.Reply> asked = AskPattern.ask(target.container(),
                r -> new VirtualContainer.ToHandle(handleId, command.apply(target.serial()).apply(r), r),
                settings.requestTimeout(), scheduler);
        return asked.thenComposeAsync(reply -> {
            boolean unknown = reply instanceof TmrLicense.Refused refused
                    && refused.code() == CmError.INVALID_HANDLE.code();
            boolean recovering = reply instanceof TmrLicense.NotServing;
            if (!unknown && !recovering) {
                return CompletableFuture.completedFuture(new Routed(reply, target.serial()));
            }
            // The first container still recovering (or not serving) is the answer if no other knows the handle.
            Routed next = waiting != null ? waiting : recovering ? new Routed(reply, target.serial()) : null;
            if (index + 1 == targets.size()) {
                return CompletableFuture.completedFuture(next != null ? next : new Routed(reply, target.serial()));
            }
            return throughHandle(ctx, targets, index + 1, next, handleId, command);
        }, ctx.executor());
    }

    // --- RESUME_MANY ------------------------------------------------------------------------------------------

    /** One item's outcome of a RESUME_MANY: its code, and the license that resumed it and its serial (else null). */
    private record ItemOutcome(int code, ActorRef<TmrLicense.Command> license, Serial serial) {
    }

    /**
     * RESUME_MANY: one request against the connection's bound. With one virtual container, the container says which
     * license holds each handle and each license is asked once, for all its handles; with several, each handle goes
     * its own way as a RESUME would ({@link #throughHandle}). The outcomes are gathered into one answer in the items'
     * order; every step runs on the channel's event loop. An item gets the code its RESUME's answer would carry:
     * resumed, 106, 130 for a virtual container not running yet; and 100 where a RESUME would hear NOT_ACTIVE (a
     * license that may hold it is still recovering or reconciling) or its license did not answer in time.
     */
    private void resumeMany(ChannelHandlerContext ctx, int id, ActorRef<VirtualContainer.Command> first,
                            List<Message.Resume> items) {
        long session = sessionId;
        List<TmrNode.Group> others = containers.others();
        boolean single = others.isEmpty() && containers.awaited().isEmpty();
        answer(ctx, id, () -> single ? resumeByLicense(ctx, first, items, session)
                : resumeEach(ctx, all(first, others), others, items, session), outcomes -> {
            List<Message.ResumedMany.Outcome> wire = new ArrayList<>(outcomes.size());
            for (int i = 0; i < outcomes.size(); i++) {
                ItemOutcome outcome = outcomes.get(i);
                long handleId = items.get(i).handleId();
                if (outcome.license() != null) {
                    sessionHandles.put(handleId, outcome.license());
                    remember(outcome.license(), outcome.serial());
                }
                wire.add(new Message.ResumedMany.Outcome(handleId, outcome.code()));
            }
            return new Message.ResumedMany(wire);
        });
    }

    private CompletionStage<List<ItemOutcome>> resumeByLicense(ChannelHandlerContext ctx,
                                                               ActorRef<VirtualContainer.Command> first,
                                                               List<Message.Resume> items, long session) {
        List<Long> handleIds = new ArrayList<>(items.size());
        items.forEach(item -> handleIds.add(item.handleId()));
        return AskPattern.<VirtualContainer.Command, VirtualContainer.Routes>ask(first,
                r -> new VirtualContainer.RouteHandles(handleIds, r), settings.requestTimeout(), scheduler)
                .thenComposeAsync(routes -> {
                    ItemOutcome[] outcomes = new ItemOutcome[items.size()];
                    Map<ActorRef<TmrLicense.Command>, List<Integer>> byLicense = new java.util.LinkedHashMap<>();
                    for (int i = 0; i < items.size(); i++) {
                        ActorRef<TmrLicense.Command> license = routes.licenses().get(i);
                        if (license == null) {
                            outcomes[i] = outcome(routes.refusals().get(i), virtualSerial);
                        } else {
                            byLicense.computeIfAbsent(license, l -> new ArrayList<>()).add(i);
                        }
                    }
                    List<CompletableFuture<?>> asks = new ArrayList<>(byLicense.size());
                    byLicense.forEach((license, indexes) -> {
                        List<TmrLicense.HandleToken> its = new ArrayList<>(indexes.size());
                        indexes.forEach(i -> its.add(new TmrLicense.HandleToken(items.get(i).handleId(),
                                items.get(i).token())));
                        asks.add(AskPattern.<TmrLicense.Command, TmrLicense.Reply>ask(license,
                                r -> new TmrLicense.ResumeMany(its, session, r), settings.requestTimeout(), scheduler)
                                .handleAsync((reply, failed) -> {
                                    for (int k = 0; k < indexes.size(); k++) {
                                        outcomes[indexes.get(k)] = reply instanceof TmrLicense.ResumedMany many
                                                && many.outcomes().size() == indexes.size()
                                                ? outcome(many.outcomes().get(k), virtualSerial) : outcome(null, null);
                                    }
                                    return null;
                                }, ctx.executor()).toCompletableFuture());
                    });
                    return CompletableFuture.allOf(asks.toArray(CompletableFuture[]::new))
                            .thenApplyAsync(done -> List.of(outcomes), ctx.executor());
                }, ctx.executor());
    }

    private CompletionStage<List<ItemOutcome>> resumeEach(ChannelHandlerContext ctx, List<Target> targets,
                                                          List<TmrNode.Group> others, List<Message.Resume> items,
                                                          long session) {
        List<CompletableFuture<ItemOutcome>> each = new ArrayList<>(items.size());
        for (Message.Resume item : items) {
            each.add(throughHandle(ctx, targets, 0, null, item.handleId(), serial -> r -> new TmrLicense.Resume(
                    item.handleId(), item.token(), session, r)).handleAsync((routed, failed) -> failed != null
                    ? outcome(null, null)
                    : outcome(awaitedInstead(routed.reply(), CmError.INVALID_HANDLE.code(), others), routed.serial()),
                    ctx.executor()).toCompletableFuture());
        }
        return CompletableFuture.allOf(each.toArray(CompletableFuture[]::new)).thenApplyAsync(done -> {
            List<ItemOutcome> outcomes = new ArrayList<>(each.size());
            each.forEach(outcome -> outcomes.add(outcome.join()));
            return outcomes;
        }, ctx.executor());
    }

    /** An item's outcome from its license's (or container's) answer; null: none came in time (100). */
    private ItemOutcome outcome(TmrLicense.Reply reply, Serial serial) {
        if (reply instanceof TmrLicense.Resumed resumed) {
            return new ItemOutcome(Message.ResumedMany.RESUMED, resumed.license(), serial);
        } else if (reply instanceof TmrLicense.Refused refused) {
            return new ItemOutcome(refused.code(), null, null);
        } else if (reply instanceof TmrLicense.NotServing && serial != null && !serial.equals(virtualSerial)) {
            // As for a RESUME: another virtual container without its lease or reconciliation.
            return new ItemOutcome(CmError.REDUNDANCY_SERVER_MISSING.code(), null, null);
        }
        // Not ready to vouch for it (a RESUME would hear NOT_ACTIVE), or no answer in time: not now, never 106.
        return new ItemOutcome(CmError.NETWORK_FAULT.code(), null, null);
    }

    /** LIST_CONTAINERS over several virtual containers: one entry each, the first group's first. */
    private CompletionStage<List<io.opentmr.protocol.ContainerInfo>> listAll(
            ChannelHandlerContext ctx, ActorRef<VirtualContainer.Command> first, List<TmrNode.Group> others) {
        List<CompletableFuture<VirtualContainer.Listed>> asks = new ArrayList<>();
        for (Target target : all(first, others)) {
            asks.add(AskPattern.<VirtualContainer.Command, VirtualContainer.Listed>ask(target.container(),
                    VirtualContainer.ListContainers::new, settings.requestTimeout(), scheduler).toCompletableFuture());
        }
        return CompletableFuture.allOf(asks.toArray(CompletableFuture[]::new)).thenApplyAsync(done -> {
            List<io.opentmr.protocol.ContainerInfo> listed = new ArrayList<>(asks.size());
            asks.forEach(ask -> listed.add(ask.join().container()));
            return listed;
        }, ctx.executor());
    }

    /** The serial of a license of a virtual container other than the first, for its later answers. */
    private void remember(ActorRef<TmrLicense.Command> license, Serial serial) {
        if (!serial.equals(virtualSerial)) {
            licenseSerial.put(license, serial);
        }
    }

    /** The wire message for a license's answer; keeps the session's handles up to date on the way. */
    /** Who a borrow ticket is for, as a backend names it: the host and user the client named in HELLO. */
    private String clientId() {
        return host + "/" + user;
    }

    private Message toWire(TmrLicense.Reply reply, long handleId, Message.Resume resume) {
        return toWire(reply, handleId, resume, virtualSerial);
    }

    /** @param serial the virtual container the answer came from */
    private Message toWire(TmrLicense.Reply reply, long handleId, Message.Resume resume, Serial serial) {
        if (reply instanceof TmrLicense.Granted granted) {
            sessionHandles.put(granted.handleId(), granted.license());
            remember(granted.license(), serial);
            return new Message.AccessOk(granted.handleId(), granted.token(), serial);
        } else if (reply instanceof TmrLicense.Resumed resumed) {
            sessionHandles.put(resume.handleId(), resumed.license());
            remember(resumed.license(), serial);
            return new Message.AccessOk(resume.handleId(), resume.token(), serial);
        } else if (reply instanceof TmrLicense.Released) {
            sessionHandles.remove(handleId);
            return new Message.Ok();
        } else if (reply instanceof TmrLicense.UnitsLeft left) {
            return new Message.UnitsOk(left.remaining());
        } else if (reply instanceof TmrLicense.Crypted crypted) {
            return new Message.CryptOk(crypted.data());
        } else if (reply instanceof TmrLicense.Described described) {
            return new Message.Info(described.handleId(), described.mode(), serial, described.product());
        } else if (reply instanceof TmrLicense.NotServing notServing) {
            if (!serial.equals(virtualSerial)) {
                // Another virtual container without its lease or reconciliation: the node serves, that one not yet.
                return new Message.Error(CmError.REDUNDANCY_SERVER_MISSING.code(), "virtual container " + serial
                        + " does not serve now: " + notServing.why());
            }
            return new Message.NotActive(status.activeAddress());
        } else if (reply instanceof TmrLicense.BorrowGranted borrowed) {
            // The handle ended: it became the borrow.
            sessionHandles.remove(borrowed.ticket().ticketId());
            return new Message.BorrowOk(borrowed.ticket());
        }
        TmrLicense.Refused refused = (TmrLicense.Refused) reply;
        if (refused.code() == CmError.INVALID_HANDLE.code() && handleId != 0 && resume == null) {
            sessionHandles.remove(handleId);
        }
        return new Message.Error(refused.code(), refused.text());
    }

    /**
     * Asks {@code target} and answers with {@code onAnswer}. An ask that failed (not answered in time, its actor
     * stopped) while the node no longer serves is answered NOT_ACTIVE, not 100 ({@link #failure}).
     */
    private <C, R> void ask(ChannelHandlerContext ctx, int id, ActorRef<C> target,
                            org.apache.pekko.japi.function.Function<ActorRef<R>, C> command,
                            Function<R, Message> onAnswer) {
        // No stage chained on the ask's own: Scala's CompletionStage runs every one on the JDK's default async
        // executor, a new thread per request on a 2-core machine. A failure is mapped in failure().
        answer(ctx, id, () -> AskPattern.ask(target, command::apply, settings.requestTimeout(), scheduler),
                onAnswer);
    }

    @Override
    protected String who() {
        return "session " + Long.toUnsignedString(sessionId);
    }
}
