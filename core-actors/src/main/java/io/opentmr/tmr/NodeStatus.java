package io.opentmr.tmr;

import io.opentmr.tmr.backend.PeerGroup;

/**
 * Whether the node serves clients now, read by every session on its own thread: it holds the lease
 * certificate, and its licenses were reconciled with the backends since it gained it (the
 * {@link VirtualContainer} decides that part and is the only writer).
 */
public final class NodeStatus {

    private final PeerGroup peers;
    private volatile boolean reconciled;
    private volatile String activeAddress = "";

    public NodeStatus(PeerGroup peers) {
        this.peers = peers;
    }

    /** Serves: answers HELLO with TMR_ACTIVE and carries out requests. Otherwise clients are told NOT_ACTIVE. */
    public boolean serving() {
        return reconciled && peers.holdsLease();
    }

    public boolean reconciled() {
        return reconciled;
    }

    void reconciled(boolean now) {
        reconciled = now;
    }

    /** The address of the node that serves instead of this one, as NOT_ACTIVE names it; empty when unknown. */
    public String activeAddress() {
        return activeAddress;
    }

    /** Set by whoever learns of the active node (the twin); a single node knows none. */
    public void activeAddress(String address) {
        activeAddress = address == null ? "" : address;
    }
}
