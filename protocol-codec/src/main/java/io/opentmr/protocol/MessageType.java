package io.opentmr.protocol;

/**
 * The type byte of a frame. The byte values are the protocol: never renumber a constant, only add.
 * {@code docs/protocol.md} documents every constant (a test checks that).
 */
public enum MessageType {
    // Client requests
    HELLO(0x01, Direction.CLIENT_TO_SERVER),
    LIST_CONTAINERS(0x02, Direction.CLIENT_TO_SERVER),
    GET_INFO(0x03, Direction.CLIENT_TO_SERVER),
    ACCESS(0x04, Direction.CLIENT_TO_SERVER),
    RELEASE(0x05, Direction.CLIENT_TO_SERVER),
    KEEPALIVE(0x06, Direction.CLIENT_TO_SERVER),
    RESUME(0x07, Direction.CLIENT_TO_SERVER),
    CRYPT(0x08, Direction.CLIENT_TO_SERVER),
    DECREMENT_UNITS(0x09, Direction.CLIENT_TO_SERVER),
    BORROW(0x0A, Direction.CLIENT_TO_SERVER),
    RETURN(0x0B, Direction.CLIENT_TO_SERVER),
    RESUME_MANY(0x0C, Direction.CLIENT_TO_SERVER),

    // Admin requests
    LICENSE_CONTEXT(0x20, Direction.CLIENT_TO_SERVER),
    LICENSE_UPDATE(0x21, Direction.CLIENT_TO_SERVER),
    NODE_STEP_DOWN(0x22, Direction.CLIENT_TO_SERVER),

    // Replies to clients and peers
    OK(0x40, Direction.SERVER_TO_CLIENT),
    HELLO_OK(0x41, Direction.SERVER_TO_CLIENT),
    NOT_ACTIVE(0x42, Direction.SERVER_TO_CLIENT),
    CONTAINER_LIST(0x43, Direction.SERVER_TO_CLIENT),
    INFO(0x44, Direction.SERVER_TO_CLIENT),
    ACCESS_OK(0x45, Direction.SERVER_TO_CLIENT),
    CRYPT_OK(0x46, Direction.SERVER_TO_CLIENT),
    UNITS_OK(0x47, Direction.SERVER_TO_CLIENT),
    BORROW_OK(0x48, Direction.SERVER_TO_CLIENT),
    LICENSE_CONTEXT_OK(0x49, Direction.SERVER_TO_CLIENT),
    LICENSE_UPDATE_OK(0x4A, Direction.SERVER_TO_CLIENT),
    RESUMED_MANY(0x4B, Direction.SERVER_TO_CLIENT),
    ERROR(0x7F, Direction.SERVER_TO_CLIENT),

    // Peer requests, TMR node to backend
    PEER_HELLO(0x80, Direction.NODE_TO_BACKEND),
    PEER_CHALLENGE(0x81, Direction.BACKEND_TO_NODE),
    PEER_PROOF(0x82, Direction.NODE_TO_BACKEND),
    INVENTORY(0x83, Direction.NODE_TO_BACKEND),
    ALLOCATE(0x84, Direction.NODE_TO_BACKEND),
    FREE(0x85, Direction.NODE_TO_BACKEND),
    LIST_ALLOCATIONS(0x86, Direction.NODE_TO_BACKEND),
    LEASE_ACQUIRE(0x87, Direction.NODE_TO_BACKEND),
    LEASE_RENEW(0x88, Direction.NODE_TO_BACKEND),
    LEASE_RELEASE(0x89, Direction.NODE_TO_BACKEND),
    PEER_CRYPT(0x8A, Direction.NODE_TO_BACKEND),
    PEER_UNITS(0x8B, Direction.NODE_TO_BACKEND),
    USAGE_START(0x8C, Direction.NODE_TO_BACKEND),
    PEER_BORROW(0x8D, Direction.NODE_TO_BACKEND),
    LIST_DIGESTS(0x8E, Direction.NODE_TO_BACKEND),

    // Peer replies, backend to TMR node
    INVENTORY_OK(0xA0, Direction.BACKEND_TO_NODE),
    ALLOCATION_LIST(0xA1, Direction.BACKEND_TO_NODE),
    LEASE_GRANT(0xA2, Direction.BACKEND_TO_NODE),
    ALLOCATION_DIGESTS(0xA3, Direction.BACKEND_TO_NODE);

    /** Who sends a message of this type; the codec decodes every type, the handlers enforce direction. */
    public enum Direction { CLIENT_TO_SERVER, SERVER_TO_CLIENT, NODE_TO_BACKEND, BACKEND_TO_NODE }

    private static final MessageType[] BY_CODE = new MessageType[256];

    static {
        for (MessageType type : values()) {
            if (BY_CODE[type.code] != null) {
                throw new IllegalStateException("duplicate message type code " + type.code);
            }
            BY_CODE[type.code] = type;
        }
    }

    private final int code;
    private final Direction direction;

    MessageType(int code, Direction direction) {
        this.code = code;
        this.direction = direction;
    }

    /** The unsigned byte value on the wire, 0..255. */
    public int code() {
        return code;
    }

    /**
     * Requests that keep a connection and its lease alive: KEEPALIVE, INVENTORY (a node's heartbeat while it holds no
     * lease) and LEASE_ACQUIRE / LEASE_RENEW / LEASE_RELEASE. Both ends take up to {@link #LIVENESS_RESERVE} of them
     * beyond a connection's bound of requests in flight, so that a connection full of slow data requests (a TMR node's
     * ALLOCATEs to a backend that stalls) does not refuse the heartbeat whose loss would cost the node its lease.
     */
    public boolean keepsAlive() {
        return this == KEEPALIVE || this == INVENTORY || this == LEASE_ACQUIRE || this == LEASE_RENEW
                || this == LEASE_RELEASE;
    }

    /** Requests that {@link #keepsAlive() keep a connection alive} a connection takes beyond its bound. */
    public static final int LIVENESS_RESERVE = 8;

    public Direction direction() {
        return direction;
    }

    /** The type for an unsigned type byte, or {@code null} for a byte no type uses. */
    public static MessageType fromCode(int code) {
        return code >= 0 && code < BY_CODE.length ? BY_CODE[code] : null;
    }
}
