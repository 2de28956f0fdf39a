package io.opentmr.tmr.backend;

import io.opentmr.peer.PeerConnection;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.Message;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.CompletionStage;

/**
 * An authenticated connection to one backend, as the node's actors use it. The peer client of
 * {@code protocol-codec} is the real one; tests put a paused or failing one in its place.
 */
public interface PeerLink {

    /**
     * One request. Completes with the reply, or exceptionally: a {@code CmFailure} for an ERROR reply, a
     * timeout after the link's bound, an overload, or the connection's loss. Never blocks the caller.
     */
    CompletionStage<Message> request(Message request);

    /** Completes when the connection is gone, for whatever reason. */
    CompletionStage<Void> closed();

    /**
     * How long a request waits for its answer before it fails with a timeout, when the link bounds it itself; null
     * when it does not (a caller that needs a bound sets its own timer).
     */
    default Duration requestTimeout() {
        return null;
    }

    String backendName();

    void close();

    /** The peer client's connection as a link. */
    static PeerLink of(PeerConnection connection) {
        return new PeerLink() {
            @Override
            public CompletionStage<Message> request(Message request) {
                return connection.request(request);
            }

            @Override
            public CompletionStage<Void> closed() {
                return connection.closeFuture();
            }

            @Override
            public Duration requestTimeout() {
                return connection.requestTimeout();
            }

            @Override
            public String backendName() {
                return connection.backendName();
            }

            @Override
            public void close() {
                connection.close();
            }
        };
    }

    /** Opens and authenticates links. */
    @FunctionalInterface
    interface Connector {
        /** A link to the backend's first container (PEER_HELLO names no CmActId). */
        CompletionStage<PeerLink> connect(InetSocketAddress backend);

        /**
         * The connector of links bound to the backends' containers of {@code cmActId} (PEER_HELLO names it), for a
         * virtual container of another CmActId than the first group's. This one for 0; a connector that cannot name
         * a CmActId fails every connect.
         */
        default Connector forCmActId(long cmActId) {
            if (cmActId == 0) {
                return this;
            }
            return backend -> java.util.concurrent.CompletableFuture.failedFuture(new IllegalStateException(
                    "this connector cannot bind a link to CmActId " + cmActId));
        }

        /** A connector of both kinds from one function of (backend, CmActId; 0: the first container). */
        static Connector binding(java.util.function.BiFunction<InetSocketAddress, Long, CompletionStage<PeerLink>> connect) {
            return new Connector() {
                @Override
                public CompletionStage<PeerLink> connect(InetSocketAddress backend) {
                    return connect.apply(backend, 0L);
                }

                @Override
                public Connector forCmActId(long cmActId) {
                    return backend -> connect.apply(backend, cmActId);
                }
            };
        }
    }
}
