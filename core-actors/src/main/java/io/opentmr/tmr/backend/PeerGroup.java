package io.opentmr.tmr.backend;

import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.LeaseCertificate;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Message;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * The node's three backend connections and its lease over them, shared by the actors that call backends.
 *
 * <p>The watchers put links in and take them out; the license actors call {@link #call} without an
 * actor hop in between, so a request to a backend costs one network round trip and no more. The lease:
 * each watcher hands in the grant its backend gave; the grants that name the highest epoch form the
 * certificate every peer write carries, valid with two or more. A backend that granted a lower epoch is
 * asked (by its watcher, which reads {@link #targetEpoch()}) to grant the higher one, so the grants of
 * all backends converge on one epoch.
 */
public final class PeerGroup {

    private final Clock clock;
    private final PeerLink[] links;
    private final LeaseGrant[] grants;
    /**
     * When each grant runs out by the node's own clock: received + the TTL the backend granted (it may cap
     * the TTL asked for), never trusting the backend's clock.
     */
    private final long[] grantExpiry;
    private long targetEpoch;
    private volatile LeaseCertificate certificate = LeaseCertificate.NONE;

    private final Duration timeout;

    /** @param timeout bound on every call, whatever the link's own bound */
    public PeerGroup(int backends, Clock clock, Duration timeout) {
        this.clock = clock;
        this.timeout = timeout;
        this.links = new PeerLink[backends];
        this.grants = new LeaseGrant[backends];
        this.grantExpiry = new long[backends];
    }

    public int size() {
        return links.length;
    }

    public synchronized void linkUp(int backend, PeerLink link) {
        links[backend] = link;
    }

    public synchronized void linkDown(int backend, PeerLink link) {
        if (links[backend] == link) {
            links[backend] = null;
            grants[backend] = null;
            rebuildCertificate();
        }
    }

    public synchronized boolean isLinked(int backend) {
        return links[backend] != null;
    }

    /**
     * Records a backend's grant, valid for the TTL it grants ({@link LeaseGrant#ttlMillis()}); returns the epoch
     * the backend should be asked to grant instead, or -1.
     */
    public synchronized long granted(int backend, LeaseGrant grant) {
        grants[backend] = grant;
        grantExpiry[backend] = clock.millis() + grant.ttlMillis();
        targetEpoch = Math.max(targetEpoch, grant.epoch());
        rebuildCertificate();
        return grant.epoch() < targetEpoch ? targetEpoch : -1;
    }

    public synchronized void grantLost(int backend) {
        grants[backend] = null;
        rebuildCertificate();
    }

    /** The epoch a fresh LEASE_ACQUIRE proposes: the highest seen, or 1 before any grant. */
    public synchronized long targetEpoch() {
        return Math.max(1, targetEpoch);
    }

    /**
     * The current certificate (empty when fewer than two backends granted the current epoch). Rebuilt on
     * every grant, that is every heartbeat; a grant that ran out since is refused by the backends themselves.
     */
    public LeaseCertificate certificate() {
        return certificate;
    }

    /** Whether the node holds the active lease now: grants of two backends for the target epoch, unexpired. */
    public synchronized boolean holdsLease() {
        rebuildCertificate();
        return certificate.grants().size() >= 2;
    }

    public synchronized long epoch() {
        return targetEpoch;
    }

    private void rebuildCertificate() {
        long now = clock.millis();
        List<LeaseGrant> current = new ArrayList<>(grants.length);
        for (int i = 0; i < grants.length; i++) {
            if (grants[i] != null && grants[i].epoch() == targetEpoch && grantExpiry[i] > now) {
                current.add(grants[i]);
            }
        }
        certificate = current.size() >= 2 ? new LeaseCertificate(current) : LeaseCertificate.NONE;
    }

    /**
     * The deadline of an ALLOCATE or FREE sent now (epoch milliseconds): when {@link #call} stops waiting for
     * its answer. A backend that gets to it later does not carry it out.
     */
    public long deadline() {
        return clock.millis() + timeout.toMillis();
    }

    /**
     * Sends a request to one backend; the certificate is put in at the moment of sending. Fails at once
     * (ERROR 100) when the backend is not connected.
     */
    public CompletionStage<Message> call(int backend, Function<LeaseCertificate, Message> request) {
        PeerLink link;
        synchronized (this) {
            link = links[backend];
        }
        if (link == null) {
            return CompletableFuture.failedFuture(new CmFailure(CmError.NETWORK_FAULT,
                    "backend " + (backend + 1) + " is not connected"));
        }
        return link.request(request.apply(certificate())).toCompletableFuture()
                .orTimeout(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }
}
