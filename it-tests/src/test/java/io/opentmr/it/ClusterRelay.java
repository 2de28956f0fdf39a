package io.opentmr.it;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A TCP relay in front of a twin node's cluster port, which a test parts and heals: the node binds another port
 * ({@code --cluster-bind-port}) and the twin dials the relay, so every byte of the twins' cluster traffic (Artery:
 * membership, heartbeats, the replicated journal) passes here and nothing else does (clients and backends reach the
 * nodes directly).
 *
 * <p>{@link #part()} is a partition as a cut cable looks to TCP: nothing is refused or reset; bytes, connection
 * attempts and closes simply go nowhere until {@link #heal()}, when what waited goes on (as TCP's retransmission
 * would deliver it) unless an end gave up meanwhile. The relay needs no privilege (no packet filter, no namespace),
 * so it runs wherever the tests do.
 */
final class ClusterRelay implements AutoCloseable {

    private final ServerSocket server;
    private final InetSocketAddress target;
    private final Object lock = new Object();
    private final List<Socket> sockets = new ArrayList<>();
    private final AtomicLong forwarded = new AtomicLong();
    private boolean parted;
    private volatile boolean closed;

    private ClusterRelay(ServerSocket server, InetSocketAddress target) {
        this.server = server;
        this.target = target;
        Thread acceptor = new Thread(this::accept, "cluster-relay-" + server.getLocalSocketAddress());
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** Listens on {@code listen} (the node's cluster address as the twin dials it) and forwards to {@code target}. */
    static ClusterRelay start(InetSocketAddress listen, InetSocketAddress target) throws IOException {
        ServerSocket server = new ServerSocket();
        server.setReuseAddress(true);
        server.bind(listen);
        return new ClusterRelay(server, target);
    }

    /** From now on nothing passes, in either direction, until {@link #heal()}. */
    void part() {
        synchronized (lock) {
            parted = true;
        }
    }

    /** What waited and what comes passes again. */
    void heal() {
        synchronized (lock) {
            parted = false;
            lock.notifyAll();
        }
    }

    /** Bytes passed so far, both directions: proof that the twins' traffic goes through the relay. */
    long forwarded() {
        return forwarded.get();
    }

    /** Blocks while parted; false once the relay is closed. */
    private boolean awaitHealed() {
        synchronized (lock) {
            while (parted && !closed) {
                try {
                    lock.wait(200);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
            return !closed;
        }
    }

    private void accept() {
        while (!closed) {
            Socket inbound;
            try {
                inbound = server.accept();
            } catch (IOException e) {
                return;
            }
            track(inbound);
            Thread connector = new Thread(() -> connect(inbound), "cluster-relay-connect");
            connector.setDaemon(true);
            connector.start();
        }
    }

    /** The connection goes on to the node once the path is open: a SYN through a partition waits for the heal. */
    private void connect(Socket inbound) {
        Socket outbound = new Socket();
        track(outbound);
        try {
            if (!awaitHealed()) {
                closeQuietly(inbound);
                closeQuietly(outbound);
                return;
            }
            outbound.connect(target, 5_000);
        } catch (IOException e) {
            closeQuietly(inbound);
            closeQuietly(outbound);
            return;
        }
        pump(inbound, outbound);
        pump(outbound, inbound);
    }

    private void pump(Socket from, Socket to) {
        Thread pump = new Thread(() -> {
            byte[] buffer = new byte[64 * 1024];
            try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
                for (int n; (n = in.read(buffer)) >= 0; ) {
                    if (!awaitHealed()) {
                        break;
                    }
                    out.write(buffer, 0, n);
                    forwarded.addAndGet(n);
                }
                // The end closed: the other end hears it once the path is open.
                awaitHealed();
            } catch (IOException e) {
                // One side reset or was closed: the other goes too.
            } finally {
                closeQuietly(from);
                closeQuietly(to);
            }
        }, "cluster-relay-pump");
        pump.setDaemon(true);
        pump.start();
    }

    private void track(Socket socket) {
        synchronized (lock) {
            sockets.add(socket);
            sockets.removeIf(Socket::isClosed);
        }
    }

    private static void closeQuietly(Socket socket) {
        try {
            socket.close();
        } catch (IOException e) {
            // Closed already.
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException e) {
            // Closed already.
        }
        List<Socket> open;
        synchronized (lock) {
            lock.notifyAll();
            open = List.copyOf(sockets);
            sockets.clear();
        }
        open.forEach(ClusterRelay::closeQuietly);
    }
}
