package io.opentmr.tmr.backend;

import io.opentmr.peer.PeerConnection;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.Message;
import java.net.InetSocketAddress;
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
        CompletionStage<PeerLink> connect(InetSocketAddress backend);
    }
}
