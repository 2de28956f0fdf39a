package io.opentmr.backend;

import io.netty.channel.ChannelHandlerContext;
import io.opentmr.license.LicenseUpdate;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.NodeName;
import io.opentmr.protocol.PeerAuth;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.Serial;
import io.opentmr.protocol.ServerKind;
import io.opentmr.server.FrameSession;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.apache.pekko.Done;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client connection to a backend: HELLO first, then requests turned into container commands.
 * Replies are written when the container answers, in any order, each with its request id; the bound
 * on requests in flight, the hello deadline and back-pressure are {@link FrameSession}'s.
 */
final class ClientSession extends FrameSession {

    private static final Logger LOG = LoggerFactory.getLogger(ClientSession.class);

    private final BackendSettings settings;
    private final BackendContainers containers;
    /** The first container's, or on a TMR node's connection the container it named in PEER_HELLO. */
    private RequestInbox inbox;
    /** The container a TMR node's connection is bound to (PEER_HELLO), by index. */
    private int bound;
    private final SecureRandom random;
    private final TrackingLog tracking;
    private final Serial serial;
    private static final long ACTIVITY_INTERVAL_NANOS = 1_000_000_000L;

    private long lastActivity = System.nanoTime() - ACTIVITY_INTERVAL_NANOS - 1;
    private final Clock clock;
    private HandleOwner owner;
    /** Set once a TMR node passed the challenge: the connection then carries peer requests only. */
    private String peerNode;
    /** The authenticated node's connection as the container sees it: its leases and verified signatures. */
    private PeerConnection peerConnection;
    private byte[] pendingNodeNonce;
    private byte[] pendingBackendNonce;
    private String peer = "?";
    /** The client's address as this server sees it: access list, admin check, the station of STATIONSHARE. */
    private InetAddress peerAddress;
    private String station = "?";
    private String peerCandidate;

    ClientSession(BackendSettings settings, BackendContainers containers, SecureRandom random, TrackingLog tracking,
                  Clock clock, io.opentmr.server.RequestObserver observer) {
        super(new FrameSession.Limits(settings.helloTimeout(), settings.requestTimeout(),
                settings.maxInFlightPerConnection()), observer);
        this.clock = clock;
        this.settings = settings;
        this.containers = containers;
        this.inbox = containers.primary().inbox();
        this.random = random;
        this.tracking = tracking;
        this.serial = tracking.container();
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) throws Exception {
        peer = String.valueOf(ctx.channel().remoteAddress());
        if (ctx.channel().remoteAddress() instanceof InetSocketAddress remote) {
            peerAddress = remote.getAddress();
            station = peerAddress.getHostAddress();
        }
        super.channelActive(ctx);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
        if (owner != null) {
            LOG.debug("Session {} of {}@{} ({}) closed", owner.sessionId(), owner.user(), owner.host(), peer);
        }
        super.channelInactive(ctx);
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
        Message message = frame.message();
        int id = frame.requestId();
        if (peerNode != null) {
            peerRequest(ctx, id, message);
            return;
        }
        if (owner == null) {
            if (message instanceof Message.Hello hello) {
                hello(ctx, id, hello);
            } else if (message instanceof Message.PeerHello peerHello) {
                peerHello(ctx, id, peerHello);
            } else if (message instanceof Message.PeerProof proof) {
                peerProof(ctx, id, proof);
            } else if (message.type().direction() == MessageType.Direction.NODE_TO_BACKEND) {
                error(ctx, id, CmError.TMR_PEER_NOT_AUTHENTICATED, message.type() + " before the peer challenge");
            } else {
                error(ctx, id, CmError.INVALID_PARAMETER, message.type() + " before HELLO: say HELLO first");
            }
            return;
        }
        long now = System.nanoTime();
        if (now - lastActivity > ACTIVITY_INTERVAL_NANOS) {
            // Any request is a sign of life for the session's handles; at most one a second reaches the container.
            lastActivity = now;
            for (BackendContainers.Slot container : containers.all()) {
                container.inbox().tell(new Container.SessionActive(owner.sessionId()));
            }
        }
        switch (message.type()) {
            case HELLO -> error(ctx, id, CmError.INVALID_PARAMETER, "HELLO was already said on this connection");
            case KEEPALIVE -> reply(ctx, id, new Message.Ok());
            case LIST_CONTAINERS -> this.<List<ContainerInfo>>answerLater(ctx, id,
                    ContainerRouting.describeAll(containers), Message.ContainerList::new);
            case ACCESS -> {
                Message.Access m = (Message.Access) message;
                if (containers.size() == 1) {
                    ask(ctx, id, r -> new Container.Access(m.firmCode(), m.productCode(), m.featureBits(),
                            m.accessMode(), owner, station, id, false, deadline(), r),
                            (Container.Granted g) -> new Message.AccessOk(g.handle().id(), g.token(), serial));
                } else {
                    this.<ContainerRouting.Routed<Container.Granted>>answerLater(ctx, id,
                            ContainerRouting.access(containers, m, owner, station, id, deadline()),
                            g -> new Message.AccessOk(BackendContainers.clientHandle(g.index(),
                                    g.value().handle().id()), g.value().token(),
                                    containers.get(g.index()).identity().serial()));
                }
            }
            case RELEASE -> {
                long handle = ((Message.Release) message).handleId();
                ask(ctx, id, handle, r -> new Container.Release(BackendContainers.localHandle(handle),
                        owner.sessionId(), r), (Done done) -> new Message.Ok());
            }
            case RESUME -> {
                Message.Resume m = (Message.Resume) message;
                ask(ctx, id, m.handleId(), r -> new Container.Resume(BackendContainers.localHandle(m.handleId()),
                        m.token(), owner.sessionId(), r),
                        (Handle h) -> new Message.AccessOk(m.handleId(), m.token(), serialOf(m.handleId())));
            }
            case RESUME_MANY -> resumeMany(ctx, id, ((Message.ResumeMany) message).items());
            case GET_INFO -> {
                long handle = ((Message.GetInfo) message).handleId();
                ask(ctx, id, handle, r -> new Container.GetInfo(BackendContainers.localHandle(handle),
                        owner.sessionId(), r), (Container.HandleInfo info) -> new Message.Info(handle,
                        info.handle().mode(), serialOf(handle), info.product()));
            }
            case CRYPT -> {
                Message.Crypt m = (Message.Crypt) message;
                ask(ctx, id, m.handleId(), r -> new Container.Crypt(BackendContainers.localHandle(m.handleId()),
                        owner.sessionId(), m.direction(), m.encryptionCode(), m.data(), r), Message.CryptOk::new);
            }
            case DECREMENT_UNITS -> {
                Message.DecrementUnits m = (Message.DecrementUnits) message;
                ask(ctx, id, m.handleId(), r -> new Container.DecrementUnits(
                        BackendContainers.localHandle(m.handleId()), owner.sessionId(), m.operationId(), m.amount(),
                        r), Message.UnitsOk::new);
            }
            case BORROW -> {
                Message.Borrow m = (Message.Borrow) message;
                ask(ctx, id, m.handleId(), r -> new Container.BorrowSeat(BackendContainers.localHandle(m.handleId()),
                        owner.sessionId(), Duration.ofSeconds(m.durationSeconds()), clientId(), deadline(), r),
                        Message.BorrowOk::new);
            }
            case RETURN -> {
                long ticket = ((Message.Return) message).ticketId();
                if (containers.size() == 1) {
                    ask(ctx, id, r -> new Container.ReturnBorrow(ticket, clientId(), r),
                            (Done done) -> new Message.Ok());
                } else {
                    this.<ContainerRouting.Routed<Done>>answerLater(ctx, id,
                            ContainerRouting.returnBorrow(containers, ticket, clientId()), done -> new Message.Ok());
                }
            }
            case LICENSE_CONTEXT -> {
                Serial asked = ((Message.LicenseContext) message).container();
                int target = asked.equals(Serial.NONE) ? 0 : containers.indexOf(asked);
                if (target < 0) {
                    error(ctx, id, CmError.BOX_NOT_FOUND, "this server has container(s) " + containers.all().stream()
                            .map(c -> c.identity().serial().toString()).toList() + ", not " + asked);
                } else if (admitted(ctx, id, ((Message.LicenseContext) message).adminToken())) {
                    ask(ctx, id, containers.get(target).inbox(), Container.GetContext::new,
                            context -> new Message.LicenseContextOk(Bytes.of(context.toJson())));
                }
            }
            case LICENSE_UPDATE -> {
                Message.LicenseUpdate m = (Message.LicenseUpdate) message;
                if (admitted(ctx, id, m.adminToken())) {
                    if (containers.size() == 1) {
                        ask(ctx, id, r -> new Container.ImportLicense(m.updateFile(), r),
                                (LicenseUpdate update) -> new Message.LicenseUpdateOk(update.targetSerial(),
                                        update.firmCode(), update.firmUpdateCounter()));
                    } else {
                        this.<LicenseUpdate>answerLater(ctx, id, ContainerRouting.importLicense(containers,
                                m.updateFile()), update -> new Message.LicenseUpdateOk(update.targetSerial(),
                                update.firmCode(), update.firmUpdateCounter()));
                    }
                }
            }
            case PEER_HELLO, PEER_PROOF, INVENTORY, ALLOCATE, FREE, LIST_ALLOCATIONS, LEASE_ACQUIRE, LEASE_RENEW,
                    LEASE_RELEASE, PEER_CRYPT, PEER_UNITS, USAGE_START, PEER_BORROW, LIST_DIGESTS ->
                    error(ctx, id, CmError.TMR_PEER_NOT_AUTHENTICATED,
                            "peer requests need a connection that began with PEER_HELLO, not HELLO");
            default -> error(ctx, id, CmError.INVALID_PARAMETER, message.type() + " is a reply, not a request");
        }
    }

    private void hello(ChannelHandlerContext ctx, int id, Message.Hello hello) {
        InetAddress address = peerAddress;
        long sessionId = random.nextLong();
        HandleOwner candidate = new HandleOwner(hello.host(), hello.user(), hello.pid(), sessionId);
        String denial = settings.accessList().denial(address, hello.host());
        if (denial != null) {
            String text = "host " + hello.host() + " (" + address.getHostAddress() + ") may not use this server: "
                    + denial;
            LOG.warn("Refused HELLO from {}@{} ({}): {}", hello.user(), hello.host(), peer, denial);
            tracking.denial(CmError.ACCESS_DENIED.code(), text, "HELLO", candidate, clock.instant());
            replyAndClose(ctx, id, new Message.Error(CmError.ACCESS_DENIED, text));
            return;
        }
        owner = candidate;
        helloDone();
        LOG.debug("Session {} opened by {}@{} pid {} ({}, {})", sessionId, hello.user(), hello.host(), hello.pid(),
                hello.clientName(), peer);
        reply(ctx, id, new Message.HelloOk(ServerKind.BACKEND, sessionId, settings.keepAliveInterval().toMillis(),
                "opentmr-backend " + serial));
    }

    // ---------------------------------------------------------------- TMR node connections

    private void peerHello(ChannelHandlerContext ctx, int id, Message.PeerHello hello) {
        if (settings.peerAuth().isEmpty()) {
            LOG.warn("Refused TMR node {} ({}): this backend has no cluster secret ({})", hello.nodeName(), peer,
                    PeerAuth.SECRET_FILE_KEY);
            replyAndClose(ctx, id, new Message.Error(CmError.ACCESS_DENIED,
                    "this backend serves no TMR nodes: it has no cluster secret"));
            return;
        }
        if (hello.nodeNonce().length() != PeerAuth.NONCE_BYTES) {
            error(ctx, id, CmError.INVALID_PARAMETER, "PEER_HELLO nonce must be " + PeerAuth.NONCE_BYTES + " bytes");
            return;
        }
        String badName = NodeName.problem(hello.nodeName());
        if (badName != null) {
            error(ctx, id, CmError.INVALID_PARAMETER, "PEER_HELLO: " + badName);
            return;
        }
        int container = hello.cmActId() == 0 ? 0 : containers.indexOfCmActId(hello.cmActId());
        if (container < 0) {
            error(ctx, id, CmError.BOX_NOT_FOUND, "this backend holds no container of CmActId " + hello.cmActId());
            return;
        }
        bound = container;
        pendingNodeNonce = hello.nodeNonce().toArray();
        pendingBackendNonce = new byte[PeerAuth.NONCE_BYTES];
        random.nextBytes(pendingBackendNonce);
        byte[] proof = settings.peerAuth().get().backendProof(pendingNodeNonce, pendingBackendNonce);
        peerCandidate = hello.nodeName();
        reply(ctx, id, new Message.PeerChallenge("opentmr-backend " + serial, Bytes.of(pendingBackendNonce),
                Bytes.of(proof)));
    }

    private void peerProof(ChannelHandlerContext ctx, int id, Message.PeerProof proof) {
        if (pendingBackendNonce == null || settings.peerAuth().isEmpty()) {
            error(ctx, id, CmError.TMR_PEER_NOT_AUTHENTICATED, "PEER_PROOF without PEER_HELLO");
            return;
        }
        // The proof covers the name of PEER_HELLO: the name leases are held under is the name the node proved.
        byte[] expected = settings.peerAuth().get().nodeProof(pendingBackendNonce, pendingNodeNonce, peerCandidate);
        pendingBackendNonce = null;
        pendingNodeNonce = null;
        if (!PeerAuth.matches(expected, proof.nodeProof().toArray())) {
            LOG.warn("Refused TMR node {} ({}): wrong cluster secret", peerCandidate, peer);
            replyAndClose(ctx, id, new Message.Error(CmError.TMR_PEER_NOT_AUTHENTICATED,
                    "wrong proof: the cluster secrets differ"));
            return;
        }
        peerNode = peerCandidate;
        inbox = containers.get(bound).inbox();
        peerConnection = new PeerConnection(peerNode, peer, ctx.channel()::isActive);
        maxInFlight(settings.maxInFlightPerPeer());
        helloDone();
        LOG.info("TMR node {} authenticated ({}), for container {}", peerNode, peer,
                containers.get(bound).identity().serial());
        reply(ctx, id, new Message.Ok());
    }

    /** Requests on an authenticated TMR node connection. */
    private void peerRequest(ChannelHandlerContext ctx, int id, Message message) {
        switch (message.type()) {
            case KEEPALIVE -> reply(ctx, id, new Message.Ok());
            case INVENTORY -> {
                int scope = ((Message.Inventory) message).scope();
                if (scope == Message.Inventory.SCOPE_CONNECTION || containers.size() == 1) {
                    ask(ctx, id, Container.Describe::new,
                            (ContainerInfo info) -> new Message.InventoryOk(List.of(info)));
                } else if (scope == Message.Inventory.SCOPE_ALL) {
                    // Every container, the connection's first: a node learns which CmActIds this backend holds.
                    int first = bound;
                    this.<List<ContainerInfo>>answerLater(ctx, id, ContainerRouting.describeAll(containers), all -> {
                        List<ContainerInfo> ordered = new java.util.ArrayList<>(all.size());
                        ordered.add(all.get(first));
                        for (int c = 0; c < all.size(); c++) {
                            if (c != first) {
                                ordered.add(all.get(c));
                            }
                        }
                        return new Message.InventoryOk(ordered);
                    });
                } else {
                    error(ctx, id, CmError.INVALID_PARAMETER, "INVENTORY scope " + scope + " is unknown (0: this "
                            + "connection's container, 1: every container)");
                }
            }
            case LEASE_ACQUIRE -> {
                Message.LeaseAcquire m = (Message.LeaseAcquire) message;
                ask(ctx, id, r -> new Container.AcquireLease(peerConnection, m.leaseName(), m.holder(),
                        m.proposedEpoch(), m.ttlMillis(), r), Message.LeaseGranted::new);
            }
            case LEASE_RENEW -> {
                Message.LeaseRenew m = (Message.LeaseRenew) message;
                ask(ctx, id, r -> new Container.RenewLease(peerConnection, m.leaseName(), m.holder(), m.epoch(),
                        m.ttlMillis(), r), Message.LeaseGranted::new);
            }
            case LEASE_RELEASE -> {
                Message.LeaseRelease m = (Message.LeaseRelease) message;
                ask(ctx, id, r -> new Container.ReleaseLease(peerConnection, m.leaseName(), m.holder(), m.epoch(), r),
                        (Done done) -> new Message.Ok());
            }
            case ALLOCATE -> {
                Message.Allocate m = (Message.Allocate) message;
                ask(ctx, id, r -> new Container.Allocate(peerConnection, m.certificate(), m.allocation(),
                        m.deadlineMillis(), r), (Done done) -> new Message.Ok());
            }
            case FREE -> {
                Message.Free m = (Message.Free) message;
                ask(ctx, id, r -> new Container.Free(peerConnection, m.certificate(), m.tmrHandleId(), m.key(),
                        m.deadlineMillis(), r), (Done done) -> new Message.Ok());
            }
            case LIST_ALLOCATIONS -> {
                Message.ListAllocations m = (Message.ListAllocations) message;
                ask(ctx, id, r -> new Container.ListAllocations(m.afterHandleId(), m.maxItems(), r),
                        (ContainerState.AllocationPage page) -> new Message.AllocationList(
                                page.allocations().stream().map(TmrAllocation::toProtocol).toList(), page.more(),
                                m.withRequests()));
            }
            case LIST_DIGESTS -> {
                Message.ListDigests m = (Message.ListDigests) message;
                ask(ctx, id, r -> new Container.ListDigests(m.ranges(), r), Message.DigestList::new);
            }
            case PEER_CRYPT -> {
                Message.PeerCrypt m = (Message.PeerCrypt) message;
                ask(ctx, id, r -> new Container.PeerCrypt(peerConnection, m.certificate(), m.key(), m.direction(),
                        m.encryptionCode(), m.data(), r), Message.CryptOk::new);
            }
            case PEER_BORROW -> {
                Message.PeerBorrow m = (Message.PeerBorrow) message;
                ask(ctx, id, r -> new Container.PeerBorrow(peerConnection, m.certificate(), m.key(), m.tmrHandleId(),
                        m.ticket(), m.deadlineMillis(), r), Message.BorrowOk::new);
            }
            case USAGE_START -> {
                Message.UsageStart m = (Message.UsageStart) message;
                ask(ctx, id, r -> new Container.UsageStart(peerConnection, m.certificate(), m.key(),
                        m.startedAtMillis(), m.deadlineMillis(), r), (Done done) -> new Message.Ok());
            }
            case PEER_UNITS -> {
                Message.PeerUnits m = (Message.PeerUnits) message;
                ask(ctx, id, r -> new Container.PeerUnits(peerConnection, m.certificate(), m.key(), m.operationId(),
                        m.operation(), m.value(), r), Message.UnitsOk::new);
            }
            default -> error(ctx, id, CmError.INVALID_PARAMETER, message.type()
                    + " on a TMR node connection: client requests need their own connection");
        }
    }

    /** Who a borrow ticket is for: the host and user the client named in HELLO. */
    private String clientId() {
        return owner.host() + "/" + owner.user();
    }

    /**
     * The container does not carry out a request past this, and takes back a grant durable only after it.
     * It lies well inside the ask's timeout, so the container's answer, whichever, reaches the client
     * before the session would give up and say ERROR 100.
     */
    private Instant deadline() {
        return clock.instant().plus(settings.requestTimeout().multipliedBy(4).dividedBy(5));
    }

    /** Admin requests: from loopback, or with the configured token (compared in constant time). */
    private boolean admitted(ChannelHandlerContext ctx, int id, String token) {
        InetAddress address = peerAddress;
        boolean tokenOk = !settings.adminToken().isEmpty() && MessageDigest.isEqual(
                settings.adminToken().getBytes(StandardCharsets.UTF_8), token.getBytes(StandardCharsets.UTF_8));
        if (address.isLoopbackAddress() || tokenOk) {
            return true;
        }
        LOG.warn("Refused admin request from {}@{} ({}): not loopback and no valid admin token", owner.user(),
                owner.host(), peer);
        tracking.denial(CmError.ACCESS_DENIED.code(), "admin request without loopback or token", "ADMIN", owner,
                clock.instant());
        error(ctx, id, CmError.ACCESS_DENIED, "admin requests need a loopback connection or the admin token");
        return false;
    }

    /**
     * Hands a request to the container; the container answers on the connection directly, with no ask per
     * request ({@link FrameSession#answerLater}).
     */
    private <T> void ask(ChannelHandlerContext ctx, int id, Function<Container.ReplyTo<T>, Container.Request> command,
                         Function<T, Message> reply) {
        ask(ctx, id, inbox, command, reply);
    }

    /** A request about a client's handle, to the container the handle id names (106 for one that names none). */
    private <T> void ask(ChannelHandlerContext ctx, int id, long handle,
                         Function<Container.ReplyTo<T>, Container.Request> command, Function<T, Message> reply) {
        int container = BackendContainers.containerOf(handle);
        if (container >= containers.size()) {
            error(ctx, id, CmError.INVALID_HANDLE, "no open handle " + Long.toUnsignedString(handle));
            return;
        }
        ask(ctx, id, containers.get(container).inbox(), command, reply);
    }

    /**
     * RESUME_MANY: every item goes to the container its handle id names as a RESUME of its own (the container takes
     * them into its next group commit, as any RESUMEs that wait), and the outcomes come back as one answer in the
     * items' order. One request against the connection's bound; a container that does not answer them all within
     * the request timeout makes the whole answer ERROR 100 ({@link FrameSession#answerLater}).
     */
    private void resumeMany(ChannelHandlerContext ctx, int id, List<Message.Resume> items) {
        long sessionId = owner.sessionId();
        this.<int[]>answerLater(ctx, id, pending -> {
            int[] codes = new int[items.size()];
            AtomicInteger left = new AtomicInteger(items.size() + 1);
            for (int i = 0; i < items.size(); i++) {
                int index = i;
                Message.Resume item = items.get(i);
                int container = BackendContainers.containerOf(item.handleId());
                if (container >= containers.size()) {
                    codes[index] = CmError.INVALID_HANDLE.code();
                    left.decrementAndGet();
                    continue;
                }
                containers.get(container).inbox().submit(new Container.Resume(
                        BackendContainers.localHandle(item.handleId()), item.token(), sessionId, answer -> {
                            codes[index] = answer.isSuccess() ? Message.ResumedMany.RESUMED
                                    : answer.getError() instanceof CmFailure refusal ? refusal.code()
                                    : CmError.NETWORK_FAULT.code();
                            if (left.decrementAndGet() == 0) {
                                pending.succeed(codes);
                            }
                        }));
            }
            // The last answer completes it, also when every item was answered before this line.
            if (left.decrementAndGet() == 0) {
                pending.succeed(codes);
            }
        }, codes -> {
            List<Message.ResumedMany.Outcome> outcomes = new java.util.ArrayList<>(codes.length);
            for (int i = 0; i < codes.length; i++) {
                outcomes.add(new Message.ResumedMany.Outcome(items.get(i).handleId(), codes[i]));
            }
            return new Message.ResumedMany(outcomes);
        });
    }

    private Serial serialOf(long handle) {
        return containers.get(BackendContainers.containerOf(handle)).identity().serial();
    }

    private <T> void ask(ChannelHandlerContext ctx, int id, RequestInbox to,
                         Function<Container.ReplyTo<T>, Container.Request> command, Function<T, Message> reply) {
        this.<T>answerLater(ctx, id, pending -> to.submit(command.apply(answer -> {
            if (answer.isSuccess()) {
                pending.succeed(answer.getValue());
            } else {
                pending.fail(answer.getError());
            }
        })), reply);
    }

    /** A container's refusal is its CodeMeter number; anything else is the plumbing's 100. */
    @Override
    protected Message failure(int id, Throwable cause) {
        if (cause instanceof CmFailure refusal) {
            return refusal.toMessage();
        }
        return super.failure(id, cause);
    }

    /** Who a log line is about: the session, or the TMR node. */
    @Override
    protected String who() {
        return peerNode != null ? "TMR node " + peerNode + " (" + peer + ")" : "session " + owner.sessionId();
    }
}
