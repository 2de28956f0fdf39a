package io.opentmr.tmr.server;

import io.opentmr.access.AccessList;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The TMR node's access list ({@code opentmr.node.access-list}) as its sessions check it, and the sessions
 * that passed it. {@link #replace} installs a reloaded list: clients it still allows keep their connections and
 * handles; a session whose client it no longer allows has its handles released at once and its connection
 * closed (its next HELLO is refused with 231), because a site that takes a host's access away expects its
 * seats back for others, not held until that host lets go.
 */
public final class ClientAccess {

    private static final Logger LOG = LoggerFactory.getLogger(ClientAccess.class);

    private volatile AccessList list;
    private final Set<TmrSession> sessions = ConcurrentHashMap.newKeySet();

    public ClientAccess(AccessList list) {
        this.list = Objects.requireNonNull(list, "list");
    }

    /** The list in force now. */
    public AccessList list() {
        return list;
    }

    /** Puts {@code next} in force; every session checks its client against it on its own event loop. */
    public void replace(AccessList next) {
        list = Objects.requireNonNull(next, "next");
        LOG.info("Access list reloaded: {}; {} session(s) checked against it", next, sessions.size());
        for (TmrSession session : sessions) {
            session.recheck(next);
        }
    }

    void admitted(TmrSession session) {
        sessions.add(session);
    }

    void gone(TmrSession session) {
        sessions.remove(session);
    }

    /** Sessions past HELLO now (tests, status). */
    public int sessions() {
        return sessions.size();
    }
}
