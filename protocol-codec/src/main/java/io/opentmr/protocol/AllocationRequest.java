package io.opentmr.protocol;

/**
 * The ACCESS that opened a TMR handle, as the node names it to the backends with the handle's ALLOCATE: the host
 * name the client gave in HELLO and the ACCESS's request id. With the allocation's owner (station, user, pid) it
 * names the request, so a node that rebuilds the handle from the backends' allocations answers the client's
 * re-sent ACCESS with this handle rather than a second one.
 *
 * @param host      the host name of the client's HELLO (1 to 65 535 UTF-8 bytes on the wire, as any string)
 * @param requestId the request id of the ACCESS (u32 on the client's wire, kept as u64)
 */
public record AllocationRequest(String host, long requestId) {

    public AllocationRequest {
        Check.notNull(host, "host");
    }
}
