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
                    // Not serving (restarting, reconciling, or without the lease): the client comes back later.
                    replyAndClose(ctx, id, new Message.NotActive(status.activeAddress()));
                    return;
                }
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
            } else if (message.type().direction() == MessageType.Direction.NODE_TO_BACKEND) {
                error(ctx, id, CmError.INVALID_PARAMETER, message.type() + " to a TMR node: peer requests go to backends");
            } else {
                error(ctx, id, CmError.INVALID_PARAMETER, message.type() + " before HELLO: say HELLO first");
            }
            return;
        }
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
            case LIST_CONTAINERS -> ask(ctx, id, container, VirtualContainer.ListContainers::new,
                    listed -> new Message.ContainerList(List.of(listed.container())));
            case ACCESS -> {
                Message.Access m = (Message.Access) message;
                TmrLicense.Client client = new TmrLicense.Client(station, host, user, pid, sessionId);
                long requestId = Integer.toUnsignedLong(id);
                long product = (m.firmCode() << 32) | m.productCode();
                ActorRef<TmrLicense.Command> known = licenseOf.get(product);
                Function<TmrLicense.Reply, Message> remember = reply -> {
                    if (reply instanceof TmrLicense.Granted granted && granted.alone()) {
                        licenseOf.put(product, granted.license());
                    } else if (reply instanceof TmrLicense.Granted || reply instanceof TmrLicense.Refused) {
                        // A product of several licenses (each ACCESS starts at the first by TMR-Id), or one withdrawn,
                        // gone or full, where another license may have come meanwhile: the next ACCESS asks the
                        // virtual container which license serves.
                        licenseOf.remove(product);
                    }
                    return toWire(reply, 0, null);
                };
                if (known != null) {
                    // The license that granted this product on this connection before: one mailbox less.
                    ask(ctx, id, known, r -> new TmrLicense.Access(m.featureBits(), m.accessMode(), client, requestId,
                            r), remember);
                } else {
                    ask(ctx, id, container, r -> new VirtualContainer.Access(m.firmCode(), m.productCode(),
                            m.featureBits(), m.accessMode(), client, requestId, r), remember);
                }
            }
            case RELEASE -> {
                long handleId = ((Message.Release) message).handleId();
                ActorRef<TmrLicense.Command> license = sessionHandles.get(handleId);
                if (license != null) {
                    askLicense(ctx, id, license, r -> new TmrLicense.Release(handleId, sessionId, r), handleId);
                } else {
                    // Not this session's (a repeat after a reconnect, or a stranger): the license decides.
                    askLicense(ctx, id, container, r -> new VirtualContainer.ToHandle(handleId,
                            new TmrLicense.Release(handleId, sessionId, r), r), handleId);
                }
            }
            case RESUME -> {
                Message.Resume m = (Message.Resume) message;
                askLicense(ctx, id, container, r -> new VirtualContainer.ToHandle(m.handleId(),
                        new TmrLicense.Resume(m.handleId(), m.token(), sessionId, r), r), m.handleId(), m);
            }
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
                org.apache.pekko.japi.function.Function<ActorRef<TmrLicense.Reply>, TmrLicense.Command> borrow =
                        r -> new TmrLicense.Borrow(m.handleId(), sessionId, m.durationSeconds(), clientId(),
                                virtualSerial, r);
                if (license != null) {
                    askLicense(ctx, id, license, borrow, m.handleId());
                } else {
                    // A BORROW repeated after its answer was lost (a reconnect, a fail-over): the handle ended when
                    // it became the borrow, so the license answers its client with the ticket it journaled.
                    askLicense(ctx, id, container, r -> new VirtualContainer.ToHandle(m.handleId(), borrow.apply(r), r),
                            m.handleId());
                }
            }
            case RETURN -> {
                long ticketId = ((Message.Return) message).ticketId();
                askLicense(ctx, id, container, r -> new VirtualContainer.ToHandle(ticketId,
                        new TmrLicense.ReturnBorrow(ticketId, clientId(), r), r), 0);
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
        ask(ctx, id, target, command, reply -> toWire(reply, handleId, resume));
    }

    /** The wire message for a license's answer; keeps the session's handles up to date on the way. */
    /** Who a borrow ticket is for, as a backend names it: the host and user the client named in HELLO. */
    private String clientId() {
        return host + "/" + user;
    }

    private Message toWire(TmrLicense.Reply reply, long handleId, Message.Resume resume) {
        if (reply instanceof TmrLicense.Granted granted) {
            sessionHandles.put(granted.handleId(), granted.license());
            return new Message.AccessOk(granted.handleId(), granted.token(), virtualSerial);
        } else if (reply instanceof TmrLicense.Resumed resumed) {
            sessionHandles.put(resume.handleId(), resumed.license());
            return new Message.AccessOk(resume.handleId(), resume.token(), virtualSerial);
        } else if (reply instanceof TmrLicense.Released) {
            sessionHandles.remove(handleId);
            return new Message.Ok();
        } else if (reply instanceof TmrLicense.UnitsLeft left) {
            return new Message.UnitsOk(left.remaining());
        } else if (reply instanceof TmrLicense.Crypted crypted) {
            return new Message.CryptOk(crypted.data());
        } else if (reply instanceof TmrLicense.Described described) {
            return new Message.Info(described.handleId(), described.mode(), virtualSerial, described.product());
        } else if (reply instanceof TmrLicense.NotServing) {
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
