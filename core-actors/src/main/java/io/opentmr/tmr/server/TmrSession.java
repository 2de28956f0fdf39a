package io.opentmr.tmr.server;

import io.netty.channel.ChannelHandlerContext;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.MessageType;
import io.opentmr.protocol.ServerKind;
import io.opentmr.server.FrameSession;
import io.opentmr.tmr.NodeSettings;
import io.opentmr.tmr.VirtualContainer;
import io.opentmr.tmr.handle.Handles;
import io.opentmr.tmr.license.TmrLicense;
import java.net.InetSocketAddress;
import java.security.SecureRandom;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Scheduler;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/**
 * One client connection to the TMR node: HELLO, then requests routed to the virtual container (LIST,
 * ACCESS) or to the handle they name (RELEASE, RESUME, GET_INFO, CRYPT, DECREMENT_UNITS). Replies are the
 * actors' own protocol messages, written on the channel's event loop.
 */
public final class TmrSession extends FrameSession {

    private static final long ACTIVITY_INTERVAL_NANOS = TimeUnit.SECONDS.toNanos(1);

    private final NodeSettings settings;
    private final String serverName;
    private final io.opentmr.protocol.Serial virtualSerial;
    private final ActorRef<VirtualContainer.Command> container;
    private final ActorRef<Handles.Command> handles;
    private final Scheduler scheduler;
    private final SecureRandom random;
    private final Set<Long> sessionHandles = new HashSet<>();
    private long sessionId;
    private boolean helloDone;
    private String station = "?";
    private String user;
    private String host;
    private long pid;
    private long lastActivity;

    public TmrSession(NodeSettings settings, io.opentmr.protocol.Serial virtualSerial, ActorRef<VirtualContainer.Command> container,
                      ActorRef<Handles.Command> handles, Scheduler scheduler, SecureRandom random) {
        super(new FrameSession.Limits(settings.helloTimeout(), settings.requestTimeout(),
                settings.maxInFlightPerConnection()));
        this.settings = settings;
        this.virtualSerial = virtualSerial;
        this.serverName = "opentmr-node " + virtualSerial;
        this.container = container;
        this.handles = handles;
        this.scheduler = scheduler;
        this.random = random;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) throws Exception {
        if (ctx.channel().remoteAddress() instanceof InetSocketAddress remote) {
            station = remote.getAddress().getHostAddress();
        }
        super.channelActive(ctx);
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
        int id = frame.requestId();
        Message message = frame.message();
        if (!helloDone) {
            if (message instanceof Message.Hello hello) {
                helloDone = true;
                helloDone();
                sessionId = random.nextLong();
                host = hello.host();
                user = hello.user();
                pid = hello.pid();
                reply(ctx, id, new Message.HelloOk(ServerKind.TMR_ACTIVE, sessionId,
                        settings.keepAliveInterval().toMillis(), serverName));
            } else if (message.type().direction() == MessageType.Direction.NODE_TO_BACKEND) {
                error(ctx, id, CmError.INVALID_PARAMETER, message.type() + " to a TMR node: peer requests go to backends");
            } else {
                error(ctx, id, CmError.INVALID_PARAMETER, message.type() + " before HELLO: say HELLO first");
            }
            return;
        }
        long now = System.nanoTime();
        if (now - lastActivity > ACTIVITY_INTERVAL_NANOS && !sessionHandles.isEmpty()) {
            lastActivity = now;
            handles.tell(new Handles.Touch(sessionId, sessionHandles.stream().mapToLong(Long::longValue).toArray()));
        }
        switch (message.type()) {
            case HELLO -> error(ctx, id, CmError.INVALID_PARAMETER, "HELLO was already said on this connection");
            case KEEPALIVE -> reply(ctx, id, new Message.Ok());
            case LIST_CONTAINERS -> ask(ctx, id, VirtualContainer.ListContainers::new, container, Function.identity());
            case ACCESS -> {
                Message.Access m = (Message.Access) message;
                TmrLicense.Client client = new TmrLicense.Client(station, host, user, pid, sessionId);
                ask(ctx, id, r -> new VirtualContainer.Access(m.firmCode(), m.productCode(), m.featureBits(),
                        m.accessMode(), client, r), container, answer -> {
                            if (answer instanceof Message.AccessOk ok) {
                                sessionHandles.add(ok.handleId());
                            }
                            return answer;
                        });
            }
            case RELEASE -> {
                long handleId = ((Message.Release) message).handleId();
                ask(ctx, id, r -> new Handles.Use(handleId, sessionId, message, r), handles, answer -> {
                    if (answer instanceof Message.Ok) {
                        sessionHandles.remove(handleId);
                    }
                    return answer;
                });
            }
            case RESUME -> {
                Message.Resume m = (Message.Resume) message;
                ask(ctx, id, r -> new Handles.Resume(m.handleId(), m.token(), sessionId, r), handles, answer -> {
                    if (answer instanceof Message.Ok) {
                        sessionHandles.add(m.handleId());
                        return new Message.AccessOk(m.handleId(), m.token(), virtualSerial);
                    }
                    return answer;
                });
            }
            case GET_INFO -> use(ctx, id, ((Message.GetInfo) message).handleId(), message);
            case CRYPT -> use(ctx, id, ((Message.Crypt) message).handleId(), message);
            case DECREMENT_UNITS -> use(ctx, id, ((Message.DecrementUnits) message).handleId(), message);
            case BORROW, RETURN -> error(ctx, id, CmError.ACCESS_DENIED,
                    "borrowing through the TMR node is not available on this version");
            case LICENSE_CONTEXT, LICENSE_UPDATE -> error(ctx, id, CmError.ACCESS_DENIED,
                    "a TMR node holds no license files: import them on each of the three backends");
            default -> error(ctx, id, CmError.INVALID_PARAMETER, message.type() + " is not a request to a TMR node");
        }
    }

    private void use(ChannelHandlerContext ctx, int id, long handleId, Message request) {
        ask(ctx, id, r -> new Handles.Use(handleId, sessionId, request, r), handles, Function.identity());
    }

    private <C> void ask(ChannelHandlerContext ctx, int id,
                         org.apache.pekko.japi.function.Function<ActorRef<Message>, C> command, ActorRef<C> target,
                         Function<Message, Message> onAnswer) {
        answer(ctx, id, () -> AskPattern.ask(target, command::apply, settings.requestTimeout(), scheduler), onAnswer);
    }

    @Override
    protected String who() {
        return "session " + sessionId;
    }
}
