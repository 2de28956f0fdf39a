package io.opentmr.backend;

import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Serial;
import io.opentmr.tracking.TrackingLine;
import java.time.Instant;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The tracking log: one JSON object per line for every access, release, reclaim, denial, borrow,
 * return, license import, and a TMR node's allocate and free, through the dedicated logger {@value #LOGGER} (the launcher's Logback
 * configuration sends it to its own rotated file).
 *
 * <p>Between {@link #hold()} and {@link #flush()} lines wait and then go out as one logging event, one line each
 * (so one write to the file): the container holds the lines of a batch and writes them before the batch's
 * replies. An appender of this logger must therefore write the message as it is ({@code %msg%n}). The lines have
 * the shape of {@link TrackingLine}, shared with the TMR node's log.
 */
public final class TrackingLog {

    public static final String LOGGER = "opentmr.tracking";
    private static final Logger LOG = LoggerFactory.getLogger(LOGGER);

    private final Serial container;
    /** Lines held for one write, or null: not held. Used by one thread at a time (the container's). */
    private StringBuilder held;

    public TrackingLog(Serial container) {
        this.container = container;
    }

    public Serial container() {
        return container;
    }

    /** Lines from now on wait for {@link #flush()}. */
    public void hold() {
        if (held == null) {
            held = new StringBuilder();
        }
    }

    /** Writes the lines held since {@link #hold()}, as one logging event, and stops holding. */
    public void flush() {
        StringBuilder lines = held;
        held = null;
        if (lines != null && !lines.isEmpty()) {
            LOG.info(lines.toString());
        }
    }

    public void access(Handle handle, Instant at) {
        write("access", at, Map.of("handle", handle.id(), "item", handle.item().toString(),
                "mode", handle.mode().name(), "owner", owner(handle.owner())));
    }

    public void release(long handleId, LicenseKey item, Instant at) {
        write("release", at, Map.of("handle", handleId, "item", item.toString()));
    }

    /** An operator released the handle (management HTTP). */
    public void adminRelease(long handleId, LicenseKey item, String by, Instant at) {
        write("admin-release", at, Map.of("handle", handleId, "item", item.toString(), "by", by));
    }

    public void reclaim(long handleId, LicenseKey item, Instant at) {
        write("reclaim", at, Map.of("handle", handleId, "item", item.toString()));
    }

    public void denial(int error, String text, String request, HandleOwner owner, Instant at) {
        write("denial", at, Map.of("error", error, "text", text, "request", request, "owner", owner(owner)));
    }

    public void borrow(long ticketId, LicenseKey item, String clientId, Instant expiresAt, Instant at) {
        write("borrow", at, Map.of("ticket", ticketId, "item", item.toString(), "client", clientId,
                "expiresAt", expiresAt.toString()));
    }

    public void borrowEnded(long ticketId, boolean returned, Instant at) {
        write(returned ? "return" : "borrow-expired", at, Map.of("ticket", ticketId));
    }

    public void licenseImport(long firmCode, long counter, int items, Instant at) {
        write("license-import", at, Map.of("firm", firmCode, "firmUpdateCounter", counter, "items", items));
    }

    /**
     * A TMR node's allocation on a TMR copy (ALLOCATE): {@code epoch} is the one the handle was opened in (as the
     * node sent it), {@code leaseEpoch} the one of the lease certificate this backend checked for the write, held by
     * {@code node}. One lease epoch has one holder; an audit of the lines finds two nodes writing under one.
     */
    public void allocation(TmrAllocation allocation, String node, long leaseEpoch, Instant at) {
        write("allocate", at, Map.of("tmrHandle", Long.toUnsignedString(allocation.tmrHandleId()),
                "item", allocation.item().toString(), "mode", allocation.mode().name(), "node", node,
                "epoch", allocation.epoch(), "leaseEpoch", leaseEpoch, "owner", owner(allocation.owner())));
    }

    /** A TMR node's FREE of its allocation, under the lease epoch of the certificate this backend checked. */
    public void allocationFreed(TmrAllocation allocation, String node, long leaseEpoch, Instant at) {
        write("free", at, Map.of("tmrHandle", Long.toUnsignedString(allocation.tmrHandleId()),
                "item", allocation.item().toString(), "node", node, "leaseEpoch", leaseEpoch));
    }

    private static Map<String, Object> owner(HandleOwner owner) {
        return TrackingLine.owner(owner.host(), owner.user(), owner.pid(), owner.sessionId());
    }

    private void write(String event, Instant at, Map<String, Object> fields) {
        if (!LOG.isInfoEnabled()) {
            return;
        }
        try {
            String text = TrackingLine.of(at, event, container.toString(), fields);
            if (held == null) {
                LOG.info(text);
            } else {
                held.append(held.isEmpty() ? "" : "\n").append(text);
            }
        } catch (IllegalArgumentException e) {
            LOG.warn(e.getMessage());
        }
    }
}
