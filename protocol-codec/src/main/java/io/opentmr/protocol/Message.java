package io.opentmr.protocol;

import java.util.List;

/**
 * Every message of the protocol, one immutable record per {@link MessageType}. Constructors check
 * ranges, so a message that exists can always be encoded. Byte layouts are in {@link PayloadCodec}
 * and {@code docs/protocol.md}.
 */
public sealed interface Message {

    MessageType type();

    // ---------------------------------------------------------------- client requests

    /** First message on a client connection: who is asking. */
    record Hello(String clientName, String host, String user, long pid) implements Message {
        public Hello {
            Check.string(clientName, "clientName");
            Check.string(host, "host");
            Check.string(user, "user");
            Check.u32(pid, "pid");
        }

        @Override
        public MessageType type() {
            return MessageType.HELLO;
        }
    }

    record ListContainers() implements Message {
        @Override
        public MessageType type() {
            return MessageType.LIST_CONTAINERS;
        }
    }

    record GetInfo(long handleId) implements Message {
        @Override
        public MessageType type() {
            return MessageType.GET_INFO;
        }
    }

    record Access(long firmCode, long productCode, long featureBits, AccessMode accessMode) implements Message {
        public Access {
            Check.u32(firmCode, "firmCode");
            Check.u32(productCode, "productCode");
            Check.u32(featureBits, "featureBits");
            Check.notNull(accessMode, "accessMode");
        }

        @Override
        public MessageType type() {
            return MessageType.ACCESS;
        }
    }

    record Release(long handleId) implements Message {
        @Override
        public MessageType type() {
            return MessageType.RELEASE;
        }
    }

    /** Keeps the session and all its handles alive; peers use it as their heartbeat. */
    record KeepAlive() implements Message {
        @Override
        public MessageType type() {
            return MessageType.KEEPALIVE;
        }
    }

    /** Re-attaches a handle after a reconnect or a fail-over. */
    record Resume(long handleId, Bytes token) implements Message {
        public Resume {
            Check.notNull(token, "token");
        }

        @Override
        public MessageType type() {
            return MessageType.RESUME;
        }
    }

    /**
     * Re-attaches many handles of one session in one request: RESUME for each item, answered by one
     * {@link ResumedMany} in the same order. At most {@link #MAX_ITEMS} items.
     */
    record ResumeMany(List<Resume> items) implements Message {
        /**
         * Items of one request at most. An item is 8 + 4 + token bytes (28 with the 16-byte tokens servers issue),
         * so a full request is about 28 KiB and its answer 10 KiB: far below the default frame of 1 MiB and the
         * list limit of 10 000, also for tokens up to ~1 KiB; and one request's handles keep a license busy for a
         * few milliseconds only, so the requests of the session that follow it are not held up for long.
         */
        public static final int MAX_ITEMS = 1000;

        public ResumeMany {
            items = Check.list(items, "items");
            if (items.size() > MAX_ITEMS) {
                throw new IllegalArgumentException("items: " + items.size() + " handles, more than the "
                        + MAX_ITEMS + " of one RESUME_MANY");
            }
        }

        @Override
        public MessageType type() {
            return MessageType.RESUME_MANY;
        }
    }

    record Crypt(long handleId, CryptDirection direction, long encryptionCode, Bytes data) implements Message {
        public Crypt {
            Check.notNull(direction, "direction");
            Check.u32(encryptionCode, "encryptionCode");
            Check.notNull(data, "data");
        }

        @Override
        public MessageType type() {
            return MessageType.CRYPT;
        }
    }

    /** Subtracts units; {@code operationId} makes a retry after a lost reply safe. */
    record DecrementUnits(long handleId, long operationId, long amount) implements Message {
        public DecrementUnits {
            Check.u32(amount, "amount");
        }

        @Override
        public MessageType type() {
            return MessageType.DECREMENT_UNITS;
        }
    }

    record Borrow(long handleId, long durationSeconds) implements Message {
        public Borrow {
            Check.u32(durationSeconds, "durationSeconds");
        }

        @Override
        public MessageType type() {
            return MessageType.BORROW;
        }
    }

    record Return(long ticketId) implements Message {
        @Override
        public MessageType type() {
            return MessageType.RETURN;
        }
    }

    // ---------------------------------------------------------------- admin requests

    /** Exports a container's context; {@link Serial#NONE} names the server's default container. */
    record LicenseContext(String adminToken, Serial container) implements Message {
        public LicenseContext {
            Check.string(adminToken, "adminToken");
            Check.notNull(container, "container");
        }

        @Override
        public MessageType type() {
            return MessageType.LICENSE_CONTEXT;
        }
    }

    /** Applies a signed license update file. */
    record LicenseUpdate(String adminToken, Bytes updateFile) implements Message {
        public LicenseUpdate {
            Check.string(adminToken, "adminToken");
            Check.notNull(updateFile, "updateFile");
        }

        @Override
        public MessageType type() {
            return MessageType.LICENSE_UPDATE;
        }
    }

    /**
     * Asks the active node of a twin to hand the active role over to its standby (planned switch-over): answered
     * OK once it has stopped serving, the standby has every record it wrote, and it gave the lease back.
     */
    record NodeStepDown(String adminToken) implements Message {
        public NodeStepDown {
            Check.string(adminToken, "adminToken");
        }

        @Override
        public MessageType type() {
            return MessageType.NODE_STEP_DOWN;
        }
    }

    // ---------------------------------------------------------------- replies

    /**
     * Success without data: RELEASE, KEEPALIVE, RETURN, PEER_PROOF, FREE, ALLOCATE, LEASE_RELEASE, USAGE_START,
     * NODE_STEP_DOWN.
     */
    record Ok() implements Message {
        @Override
        public MessageType type() {
            return MessageType.OK;
        }
    }

    record HelloOk(ServerKind serverKind, long sessionId, long keepAliveMillis, String serverName) implements Message {
        public HelloOk {
            Check.notNull(serverKind, "serverKind");
            Check.u32(keepAliveMillis, "keepAliveMillis");
            Check.string(serverName, "serverName");
        }

        @Override
        public MessageType type() {
            return MessageType.HELLO_OK;
        }
    }

    /** The standby's answer to HELLO: where the active node is ({@code ""} when it does not know). */
    record NotActive(String activeAddress) implements Message {
        public NotActive {
            Check.string(activeAddress, "activeAddress");
        }

        @Override
        public MessageType type() {
            return MessageType.NOT_ACTIVE;
        }
    }

    record ContainerList(List<ContainerInfo> containers) implements Message {
        public ContainerList {
            containers = Check.list(containers, "containers");
        }

        @Override
        public MessageType type() {
            return MessageType.CONTAINER_LIST;
        }
    }

    record Info(long handleId, AccessMode accessMode, Serial container, ProductInfo product) implements Message {
        public Info {
            Check.notNull(accessMode, "accessMode");
            Check.notNull(container, "container");
            Check.notNull(product, "product");
        }

        @Override
        public MessageType type() {
            return MessageType.INFO;
        }
    }

    /** Answers ACCESS and RESUME: the handle, its resume token and the container that serves it. */
    record AccessOk(long handleId, Bytes resumeToken, Serial container) implements Message {
        public AccessOk {
            Check.notNull(resumeToken, "resumeToken");
            Check.notNull(container, "container");
        }

        @Override
        public MessageType type() {
            return MessageType.ACCESS_OK;
        }
    }

    /**
     * Answers RESUME_MANY: one outcome per item, in the request's order.
     */
    record ResumedMany(List<Outcome> items) implements Message {
        /** The code of a handle resumed: bound to the asking session. */
        public static final int RESUMED = 0;

        /**
         * @param code {@link #RESUMED}; 106: the handle is gone (unknown, released, reclaimed, wrong token); any
         *             other error number: not resumed now, the handle is kept and asked for again later
         */
        public record Outcome(long handleId, int code) {
            public Outcome {
                Check.u16(code, "code");
            }
        }

        public ResumedMany {
            items = Check.list(items, "items");
            if (items.size() > ResumeMany.MAX_ITEMS) {
                throw new IllegalArgumentException("items: " + items.size() + " outcomes, more than the "
                        + ResumeMany.MAX_ITEMS + " of one RESUME_MANY");
            }
        }

        @Override
        public MessageType type() {
            return MessageType.RESUMED_MANY;
        }
    }

    record CryptOk(Bytes data) implements Message {
        public CryptOk {
            Check.notNull(data, "data");
        }

        @Override
        public MessageType type() {
            return MessageType.CRYPT_OK;
        }
    }

    record UnitsOk(long remaining) implements Message {
        public UnitsOk {
            Check.u32(remaining, "remaining");
        }

        @Override
        public MessageType type() {
            return MessageType.UNITS_OK;
        }
    }

    record BorrowOk(BorrowTicket ticket) implements Message {
        public BorrowOk {
            Check.notNull(ticket, "ticket");
        }

        @Override
        public MessageType type() {
            return MessageType.BORROW_OK;
        }
    }

    record LicenseContextOk(Bytes context) implements Message {
        public LicenseContextOk {
            Check.notNull(context, "context");
        }

        @Override
        public MessageType type() {
            return MessageType.LICENSE_CONTEXT_OK;
        }
    }

    record LicenseUpdateOk(Serial container, long firmCode, long firmUpdateCounter) implements Message {
        public LicenseUpdateOk {
            Check.notNull(container, "container");
            Check.u32(firmCode, "firmCode");
            Check.u32(firmUpdateCounter, "firmUpdateCounter");
        }

        @Override
        public MessageType type() {
            return MessageType.LICENSE_UPDATE_OK;
        }
    }

    /** A refused request, or the last frame before the sender closes a connection that broke the protocol. */
    record Error(int code, String text) implements Message {
        public Error {
            Check.u16(code, "code");
            Check.string(text, "text");
        }

        public Error(CmError error, String text) {
            this(error.code(), text);
        }

        @Override
        public MessageType type() {
            return MessageType.ERROR;
        }
    }

    // ---------------------------------------------------------------- peer requests

    /**
     * @param cmActId the CmActId of the backend's container this connection's peer requests go to; 0: the
     *                backend's first container (sent as no field at all, as before containers could be chosen)
     */
    record PeerHello(String nodeName, Bytes nodeNonce, long cmActId) implements Message {
        public PeerHello {
            Check.string(nodeName, "nodeName");
            Check.notNull(nodeNonce, "nodeNonce");
            Check.u32(cmActId, "cmActId");
        }

        /** For the backend's first container. */
        public PeerHello(String nodeName, Bytes nodeNonce) {
            this(nodeName, nodeNonce, 0);
        }

        @Override
        public MessageType type() {
            return MessageType.PEER_HELLO;
        }
    }

    /** The backend proves it knows the secret and challenges the node. */
    record PeerChallenge(String backendName, Bytes backendNonce, Bytes backendProof) implements Message {
        public PeerChallenge {
            Check.string(backendName, "backendName");
            Check.notNull(backendNonce, "backendNonce");
            Check.notNull(backendProof, "backendProof");
        }

        @Override
        public MessageType type() {
            return MessageType.PEER_CHALLENGE;
        }
    }

    record PeerProof(Bytes nodeProof) implements Message {
        public PeerProof {
            Check.notNull(nodeProof, "nodeProof");
        }

        @Override
        public MessageType type() {
            return MessageType.PEER_PROOF;
        }
    }

    /**
     * A node asks a backend for its container(s). {@code scope} {@link #SCOPE_CONNECTION} (0, not written: the frame
     * is what it always was): the container of this connection; {@link #SCOPE_ALL} (1): every container of the
     * backend, the connection's first.
     */
    record Inventory(int scope) implements Message {
        /** The container of this connection only. */
        public static final int SCOPE_CONNECTION = 0;
        /** Every container of the backend, the connection's first. */
        public static final int SCOPE_ALL = 1;

        public Inventory {
            Check.u8(scope, "scope");
        }

        /** The container of this connection (the frame of every node before scopes). */
        public Inventory() {
            this(SCOPE_CONNECTION);
        }

        @Override
        public MessageType type() {
            return MessageType.INVENTORY;
        }
    }

    /**
     * Holds a seat for a TMR handle. {@code deadlineMillis} (epoch milliseconds, the node's clock): when the
     * node stops waiting for the answer; a backend that gets to it later does not carry it out.
     */
    record Allocate(LeaseCertificate certificate, Allocation allocation, long deadlineMillis) implements Message {
        public Allocate {
            Check.notNull(certificate, "certificate");
            Check.notNull(allocation, "allocation");
            Check.nonNegative(deadlineMillis, "deadlineMillis");
        }

        @Override
        public MessageType type() {
            return MessageType.ALLOCATE;
        }
    }

    /** Frees a TMR handle's seat; {@code deadlineMillis} as for {@link Allocate}. */
    record Free(LeaseCertificate certificate, long tmrHandleId, LicenseKey key, long deadlineMillis)
            implements Message {
        public Free {
            Check.notNull(certificate, "certificate");
            Check.notNull(key, "key");
            Check.nonNegative(deadlineMillis, "deadlineMillis");
        }

        @Override
        public MessageType type() {
            return MessageType.FREE;
        }
    }

    /**
     * Sets when the usage period of a TMR copy started: the start two copies agree on, told to a copy that
     * started later or not at all. {@code deadlineMillis} as for {@link Allocate}.
     */
    record UsageStart(LeaseCertificate certificate, LicenseKey key, long startedAtMillis, long deadlineMillis)
            implements Message {
        public UsageStart {
            Check.notNull(certificate, "certificate");
            Check.notNull(key, "key");
            Check.nonNegative(startedAtMillis, "startedAtMillis");
            Check.nonNegative(deadlineMillis, "deadlineMillis");
        }

        @Override
        public MessageType type() {
            return MessageType.USAGE_START;
        }
    }

    /**
     * Turns the allocation of a TMR handle into a borrow and asks the backend's signature over {@code ticket}
     * (its {@code signature} empty: the node's ticket, issued by the virtual container); answered BORROW_OK with
     * the ticket signed by the backend's container key. {@code deadlineMillis} as for {@link Allocate}.
     */
    record PeerBorrow(LeaseCertificate certificate, LicenseKey key, long tmrHandleId, BorrowTicket ticket,
                      long deadlineMillis) implements Message {
        public PeerBorrow {
            Check.notNull(certificate, "certificate");
            Check.notNull(key, "key");
            Check.notNull(ticket, "ticket");
            Check.nonNegative(deadlineMillis, "deadlineMillis");
        }

        @Override
        public MessageType type() {
            return MessageType.PEER_BORROW;
        }
    }

    /** One page of allocations with handle ids greater than {@code afterHandleId}, ascending. */
    /**
     * Asks for a page of allocations. {@code withRequests}: the answer names the ACCESS each allocation was made for,
     * where the backend knows it (an optional trailing byte: a backend older than it refuses the frame).
     */
    record ListAllocations(long afterHandleId, long maxItems, boolean withRequests) implements Message {
        public ListAllocations {
            Check.u32(maxItems, "maxItems");
        }

        /** A page without the requests (the frame of every node before them). */
        public ListAllocations(long afterHandleId, long maxItems) {
            this(afterHandleId, maxItems, false);
        }

        @Override
        public MessageType type() {
            return MessageType.LIST_ALLOCATIONS;
        }
    }

    /**
     * Asks for a lease. {@code proposedEpoch} is the lowest epoch the holder will take: a node that got
     * different epochs from several backends re-acquires with the highest it saw, so its grants converge.
     */
    record LeaseAcquire(String leaseName, String holder, long proposedEpoch, long ttlMillis) implements Message {
        public LeaseAcquire {
            Check.string(leaseName, "leaseName");
            Check.string(holder, "holder");
            Check.nonNegative(proposedEpoch, "proposedEpoch");
            Check.u32(ttlMillis, "ttlMillis");
        }

        @Override
        public MessageType type() {
            return MessageType.LEASE_ACQUIRE;
        }
    }

    record LeaseRenew(String leaseName, String holder, long epoch, long ttlMillis) implements Message {
        public LeaseRenew {
            Check.string(leaseName, "leaseName");
            Check.string(holder, "holder");
            Check.nonNegative(epoch, "epoch");
            Check.u32(ttlMillis, "ttlMillis");
        }

        @Override
        public MessageType type() {
            return MessageType.LEASE_RENEW;
        }
    }

    record LeaseRelease(String leaseName, String holder, long epoch) implements Message {
        public LeaseRelease {
            Check.string(leaseName, "leaseName");
            Check.string(holder, "holder");
            Check.nonNegative(epoch, "epoch");
        }

        @Override
        public MessageType type() {
            return MessageType.LEASE_RELEASE;
        }
    }

    record PeerCrypt(LeaseCertificate certificate, LicenseKey key, CryptDirection direction,
                     long encryptionCode, Bytes data) implements Message {
        public PeerCrypt {
            Check.notNull(certificate, "certificate");
            Check.notNull(key, "key");
            Check.notNull(direction, "direction");
            Check.u32(encryptionCode, "encryptionCode");
            Check.notNull(data, "data");
        }

        @Override
        public MessageType type() {
            return MessageType.PEER_CRYPT;
        }
    }

    /** Reads, decrements or sets a TMR copy's unit counter; {@code operationId} makes retries safe. */
    record PeerUnits(LeaseCertificate certificate, LicenseKey key, long operationId,
                     UnitsOperation operation, long value) implements Message {
        public PeerUnits {
            Check.notNull(certificate, "certificate");
            Check.notNull(key, "key");
            Check.notNull(operation, "operation");
            Check.u32(value, "value");
        }

        @Override
        public MessageType type() {
            return MessageType.PEER_UNITS;
        }
    }

    // ---------------------------------------------------------------- peer replies

    record InventoryOk(List<ContainerInfo> containers) implements Message {
        public InventoryOk {
            containers = Check.list(containers, "containers");
        }

        @Override
        public MessageType type() {
            return MessageType.INVENTORY_OK;
        }
    }

    /**
     * A page of allocations; {@code more} says that a next page exists. {@code withRequests}: the page answers a
     * LIST_ALLOCATIONS that asked for requests, and carries each allocation's {@link Allocation#request()} (which
     * may still be null: not known); without it the requests are not sent and the allocations name none.
     */
    record AllocationList(List<Allocation> allocations, boolean more, boolean withRequests) implements Message {
        public AllocationList {
            allocations = Check.list(allocations, "allocations");
            if (!withRequests && allocations.stream().anyMatch(a -> a.request() != null)) {
                // Not sent: the page names no request, as its reader gets it.
                allocations = allocations.stream().map(a -> a.withRequest(null)).toList();
            }
        }

        /** A page without requests (the answer to a LIST_ALLOCATIONS that did not ask for them). */
        public AllocationList(List<Allocation> allocations, boolean more) {
            this(allocations, more, false);
        }

        @Override
        public MessageType type() {
            return MessageType.ALLOCATION_LIST;
        }
    }

    /**
     * Asks for the count and digest of the allocations in each of {@code ranges} ranges of the handle id space
     * ({@link AllocationDigests}).
     */
    record ListDigests(int ranges) implements Message {
        public ListDigests {
            if (ranges < 1 || ranges > AllocationDigests.MAX_RANGES) {
                throw new IllegalArgumentException("ranges must be 1 to " + AllocationDigests.MAX_RANGES + ": "
                        + ranges);
            }
        }

        @Override
        public MessageType type() {
            return MessageType.LIST_DIGESTS;
        }
    }

    /** The answer to LIST_DIGESTS: one count and digest per range asked for. */
    record DigestList(AllocationDigests digests) implements Message {
        public DigestList {
            Check.notNull(digests, "digests");
        }

        @Override
        public MessageType type() {
            return MessageType.ALLOCATION_DIGESTS;
        }
    }

    record LeaseGranted(LeaseGrant grant) implements Message {
        public LeaseGranted {
            Check.notNull(grant, "grant");
        }

        @Override
        public MessageType type() {
            return MessageType.LEASE_GRANT;
        }
    }
}
