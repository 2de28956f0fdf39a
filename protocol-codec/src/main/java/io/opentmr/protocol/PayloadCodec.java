package io.opentmr.protocol;

import io.opentmr.protocol.Message.Access;
import io.opentmr.protocol.Message.AccessOk;
import io.opentmr.protocol.Message.Allocate;
import io.opentmr.protocol.Message.AllocationList;
import io.opentmr.protocol.Message.Borrow;
import io.opentmr.protocol.Message.BorrowOk;
import io.opentmr.protocol.Message.ContainerList;
import io.opentmr.protocol.Message.Crypt;
import io.opentmr.protocol.Message.CryptOk;
import io.opentmr.protocol.Message.DecrementUnits;
import io.opentmr.protocol.Message.Free;
import io.opentmr.protocol.Message.GetInfo;
import io.opentmr.protocol.Message.Hello;
import io.opentmr.protocol.Message.HelloOk;
import io.opentmr.protocol.Message.Info;
import io.opentmr.protocol.Message.InventoryOk;
import io.opentmr.protocol.Message.LeaseAcquire;
import io.opentmr.protocol.Message.LeaseGranted;
import io.opentmr.protocol.Message.LeaseRelease;
import io.opentmr.protocol.Message.LeaseRenew;
import io.opentmr.protocol.Message.LicenseContext;
import io.opentmr.protocol.Message.LicenseContextOk;
import io.opentmr.protocol.Message.LicenseUpdate;
import io.opentmr.protocol.Message.LicenseUpdateOk;
import io.opentmr.protocol.Message.ListAllocations;
import io.opentmr.protocol.Message.NotActive;
import io.opentmr.protocol.Message.PeerChallenge;
import io.opentmr.protocol.Message.PeerCrypt;
import io.opentmr.protocol.Message.PeerHello;
import io.opentmr.protocol.Message.PeerProof;
import io.opentmr.protocol.Message.PeerUnits;
import io.opentmr.protocol.Message.Release;
import io.opentmr.protocol.Message.Resume;
import io.opentmr.protocol.Message.Return;
import io.opentmr.protocol.Message.UnitsOk;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The payload layout of every message type, encode and decode side by side so that they are read
 * together. This class and {@code docs/protocol.md} must say the same thing.
 */
final class PayloadCodec {

    private PayloadCodec() {
    }

    static void encode(Message message, PayloadWriter w) {
        switch (message.type()) {
            case HELLO -> {
                Hello m = (Hello) message;
                w.string(m.clientName());
                w.string(m.host());
                w.string(m.user());
                w.u32(m.pid());
            }
            case LIST_CONTAINERS, KEEPALIVE, OK -> {
                // no payload
            }
            case GET_INFO -> w.u64(((GetInfo) message).handleId());
            case ACCESS -> {
                Access m = (Access) message;
                w.u32(m.firmCode());
                w.u32(m.productCode());
                w.u32(m.featureBits());
                w.u16(m.accessMode().code());
            }
            case RELEASE -> w.u64(((Release) message).handleId());
            case RESUME -> {
                Resume m = (Resume) message;
                w.u64(m.handleId());
                w.bytes(m.token());
            }
            case CRYPT -> {
                Crypt m = (Crypt) message;
                w.u64(m.handleId());
                w.u8(m.direction().code());
                w.u32(m.encryptionCode());
                w.bytes(m.data());
            }
            case DECREMENT_UNITS -> {
                DecrementUnits m = (DecrementUnits) message;
                w.u64(m.handleId());
                w.u64(m.operationId());
                w.u32(m.amount());
            }
            case BORROW -> {
                Borrow m = (Borrow) message;
                w.u64(m.handleId());
                w.u32(m.durationSeconds());
            }
            case RETURN -> w.u64(((Return) message).ticketId());
            case RESUME_MANY -> w.list(((Message.ResumeMany) message).items(), (out, item) -> {
                out.u64(item.handleId());
                out.bytes(item.token());
            });
            case LICENSE_CONTEXT -> {
                LicenseContext m = (LicenseContext) message;
                w.string(m.adminToken());
                writeSerial(w, m.container());
            }
            case LICENSE_UPDATE -> {
                LicenseUpdate m = (LicenseUpdate) message;
                w.string(m.adminToken());
                w.bytes(m.updateFile());
            }
            case NODE_STEP_DOWN -> w.string(((Message.NodeStepDown) message).adminToken());
            case HELLO_OK -> {
                HelloOk m = (HelloOk) message;
                w.u8(m.serverKind().code());
                w.u64(m.sessionId());
                w.u32(m.keepAliveMillis());
                w.string(m.serverName());
            }
            case NOT_ACTIVE -> w.string(((NotActive) message).activeAddress());
            case CONTAINER_LIST -> w.list(((ContainerList) message).containers(), PayloadCodec::writeContainer);
            case INFO -> {
                Info m = (Info) message;
                w.u64(m.handleId());
                w.u16(m.accessMode().code());
                writeSerial(w, m.container());
                writeProduct(w, m.product());
            }
            case ACCESS_OK -> {
                AccessOk m = (AccessOk) message;
                w.u64(m.handleId());
                w.bytes(m.resumeToken());
                writeSerial(w, m.container());
            }
            case RESUMED_MANY -> w.list(((Message.ResumedMany) message).items(), (out, item) -> {
                out.u64(item.handleId());
                out.u16(item.code());
            });
            case CRYPT_OK -> w.bytes(((CryptOk) message).data());
            case UNITS_OK -> w.u32(((UnitsOk) message).remaining());
            case BORROW_OK -> writeTicket(w, ((BorrowOk) message).ticket());
            case LICENSE_CONTEXT_OK -> w.bytes(((LicenseContextOk) message).context());
            case LICENSE_UPDATE_OK -> {
                LicenseUpdateOk m = (LicenseUpdateOk) message;
                writeSerial(w, m.container());
                w.u32(m.firmCode());
                w.u32(m.firmUpdateCounter());
            }
            case ERROR -> {
                Message.Error m = (Message.Error) message;
                w.u16(m.code());
                w.string(m.text());
            }
            case PEER_HELLO -> {
                PeerHello m = (PeerHello) message;
                w.string(m.nodeName());
                w.bytes(m.nodeNonce());
                if (m.cmActId() != 0) {
                    w.u32(m.cmActId());
                }
            }
            case INVENTORY -> {
                int scope = ((Message.Inventory) message).scope();
                if (scope != Message.Inventory.SCOPE_CONNECTION) {
                    w.u8(scope);
                }
            }
            case PEER_CHALLENGE -> {
                PeerChallenge m = (PeerChallenge) message;
                w.string(m.backendName());
                w.bytes(m.backendNonce());
                w.bytes(m.backendProof());
            }
            case PEER_PROOF -> w.bytes(((PeerProof) message).nodeProof());
            case ALLOCATE -> {
                Allocate m = (Allocate) message;
                writeCertificate(w, m.certificate());
                writeAllocation(w, m.allocation());
                w.u64(m.deadlineMillis());
                AllocationRequest request = m.allocation().request();
                if (request != null) {
                    writeRequest(w, request);
                }
            }
            case FREE -> {
                Free m = (Free) message;
                writeCertificate(w, m.certificate());
                w.u64(m.tmrHandleId());
                writeKey(w, m.key());
                w.u64(m.deadlineMillis());
            }
            case LIST_ALLOCATIONS -> {
                ListAllocations m = (ListAllocations) message;
                w.u64(m.afterHandleId());
                w.u32(m.maxItems());
                if (m.withRequests()) {
                    w.u8(1);
                }
            }
            case LEASE_ACQUIRE -> {
                LeaseAcquire m = (LeaseAcquire) message;
                w.string(m.leaseName());
                w.string(m.holder());
                w.u64(m.proposedEpoch());
                w.u32(m.ttlMillis());
            }
            case LEASE_RENEW -> {
                LeaseRenew m = (LeaseRenew) message;
                w.string(m.leaseName());
                w.string(m.holder());
                w.u64(m.epoch());
                w.u32(m.ttlMillis());
            }
            case LEASE_RELEASE -> {
                LeaseRelease m = (LeaseRelease) message;
                w.string(m.leaseName());
                w.string(m.holder());
                w.u64(m.epoch());
            }
            case PEER_CRYPT -> {
                PeerCrypt m = (PeerCrypt) message;
                writeCertificate(w, m.certificate());
                writeKey(w, m.key());
                w.u8(m.direction().code());
                w.u32(m.encryptionCode());
                w.bytes(m.data());
            }
            case PEER_UNITS -> {
                PeerUnits m = (PeerUnits) message;
                writeCertificate(w, m.certificate());
                writeKey(w, m.key());
                w.u64(m.operationId());
                w.u8(m.operation().code());
                w.u32(m.value());
            }
            case USAGE_START -> {
                Message.UsageStart m = (Message.UsageStart) message;
                writeCertificate(w, m.certificate());
                writeKey(w, m.key());
                w.u64(m.startedAtMillis());
                w.u64(m.deadlineMillis());
            }
            case PEER_BORROW -> {
                Message.PeerBorrow m = (Message.PeerBorrow) message;
                writeCertificate(w, m.certificate());
                writeKey(w, m.key());
                w.u64(m.tmrHandleId());
                writeTicket(w, m.ticket());
                w.u64(m.deadlineMillis());
            }
            case INVENTORY_OK -> w.list(((InventoryOk) message).containers(), PayloadCodec::writeContainer);
            case ALLOCATION_LIST -> {
                AllocationList m = (AllocationList) message;
                w.list(m.allocations(), PayloadCodec::writeAllocation);
                w.bool(m.more());
                if (m.withRequests()) {
                    w.list(m.allocations().stream().filter(a -> a.request() != null).toList(), (out, a) -> {
                        out.u64(a.tmrHandleId());
                        writeRequest(out, a.request());
                    });
                }
            }
            case LEASE_GRANT -> writeGrant(w, ((LeaseGranted) message).grant());
            case LIST_DIGESTS -> w.u32(((Message.ListDigests) message).ranges());
            case ALLOCATION_DIGESTS -> {
                AllocationDigests digests = ((Message.DigestList) message).digests();
                w.u32(digests.ranges());
                for (int k = 0; k < digests.ranges(); k++) {
                    w.u32(digests.count(k));
                    w.u64(digests.sum(k));
                }
            }
            default -> throw new IllegalStateException("no encoding for " + message.type());
        }
    }

    static Message decode(MessageType type, PayloadReader r) {
        Message message = switch (type) {
            case HELLO -> new Hello(r.string("clientName"), r.string("host"), r.string("user"), r.u32("pid"));
            case LIST_CONTAINERS -> new Message.ListContainers();
            case GET_INFO -> new GetInfo(r.u64("handleId"));
            case ACCESS -> new Access(r.u32("firmCode"), r.u32("productCode"), r.u32("featureBits"),
                    accessMode(r));
            case RELEASE -> new Release(r.u64("handleId"));
            case KEEPALIVE -> new Message.KeepAlive();
            case RESUME -> new Resume(r.u64("handleId"), r.bytes("token"));
            case CRYPT -> new Crypt(r.u64("handleId"), cryptDirection(r), r.u32("encryptionCode"), r.bytes("data"));
            case DECREMENT_UNITS -> new DecrementUnits(r.u64("handleId"), r.u64("operationId"), r.u32("amount"));
            case BORROW -> new Borrow(r.u64("handleId"), r.u32("durationSeconds"));
            case RETURN -> new Return(r.u64("ticketId"));
            case RESUME_MANY -> new Message.ResumeMany(r.list("items", in -> new Resume(in.u64("item.handleId"),
                    in.bytes("item.token"))));
            case LICENSE_CONTEXT -> new LicenseContext(r.string("adminToken"), readSerial(r));
            case LICENSE_UPDATE -> new LicenseUpdate(r.string("adminToken"), r.bytes("updateFile"));
            case NODE_STEP_DOWN -> new Message.NodeStepDown(r.string("adminToken"));
            case OK -> new Message.Ok();
            case HELLO_OK -> new HelloOk(
                    r.enumValue("serverKind", r.u8("serverKind"), ServerKind::fromCode),
                    r.u64("sessionId"), r.u32("keepAliveMillis"), r.string("serverName"));
            case NOT_ACTIVE -> new NotActive(r.string("activeAddress"));
            case CONTAINER_LIST -> new ContainerList(r.list("containers", PayloadCodec::readContainer));
            case INFO -> new Info(r.u64("handleId"), accessMode(r), readSerial(r), readProduct(r));
            case ACCESS_OK -> new AccessOk(r.u64("handleId"), r.bytes("resumeToken"), readSerial(r));
            case RESUMED_MANY -> new Message.ResumedMany(r.list("items", in -> new Message.ResumedMany.Outcome(
                    in.u64("item.handleId"), in.u16("item.code"))));
            case CRYPT_OK -> new CryptOk(r.bytes("data"));
            case UNITS_OK -> new UnitsOk(r.u32("remaining"));
            case BORROW_OK -> new BorrowOk(readTicket(r));
            case LICENSE_CONTEXT_OK -> new LicenseContextOk(r.bytes("context"));
            case LICENSE_UPDATE_OK -> new LicenseUpdateOk(readSerial(r), r.u32("firmCode"), r.u32("firmUpdateCounter"));
            case ERROR -> new Message.Error(r.u16("code"), r.string("text"));
            case PEER_HELLO -> new PeerHello(r.string("nodeName"), r.bytes("nodeNonce"),
                    r.readable() ? r.u32("cmActId") : 0);
            case PEER_CHALLENGE -> new PeerChallenge(r.string("backendName"), r.bytes("backendNonce"),
                    r.bytes("backendProof"));
            case PEER_PROOF -> new PeerProof(r.bytes("nodeProof"));
            case INVENTORY -> new Message.Inventory(r.readable() ? r.u8("scope") : Message.Inventory.SCOPE_CONNECTION);
            case ALLOCATE -> {
                LeaseCertificate certificate = readCertificate(r);
                Allocation allocation = readAllocation(r);
                long deadline = r.nonNegative64("deadline");
                yield new Allocate(certificate, r.readable() ? allocation.withRequest(readRequest(r)) : allocation,
                        deadline);
            }
            case FREE -> new Free(readCertificate(r), r.u64("tmrHandleId"), readKey(r), r.nonNegative64("deadline"));
            case LIST_ALLOCATIONS -> new ListAllocations(r.u64("afterHandleId"), r.u32("maxItems"),
                    r.readable() && withRequests(r, r.u8("withRequests")));
            case LEASE_ACQUIRE -> new LeaseAcquire(r.string("leaseName"), r.string("holder"),
                    r.nonNegative64("proposedEpoch"), r.u32("ttlMillis"));
            case LEASE_RENEW -> new LeaseRenew(r.string("leaseName"), r.string("holder"), r.nonNegative64("epoch"),
                    r.u32("ttlMillis"));
            case LEASE_RELEASE -> new LeaseRelease(r.string("leaseName"), r.string("holder"), r.nonNegative64("epoch"));
            case PEER_CRYPT -> new PeerCrypt(readCertificate(r), readKey(r), cryptDirection(r),
                    r.u32("encryptionCode"), r.bytes("data"));
            case PEER_BORROW -> new Message.PeerBorrow(readCertificate(r), readKey(r), r.u64("tmrHandleId"),
                    readTicket(r), r.nonNegative64("deadline"));
            case USAGE_START -> new Message.UsageStart(readCertificate(r), readKey(r), r.nonNegative64("startedAt"),
                    r.nonNegative64("deadline"));
            case PEER_UNITS -> new PeerUnits(readCertificate(r), readKey(r), r.u64("operationId"),
                    r.enumValue("unitsOperation", r.u8("unitsOperation"), UnitsOperation::fromCode), r.u32("value"));
            case INVENTORY_OK -> new InventoryOk(r.list("containers", PayloadCodec::readContainer));
            case ALLOCATION_LIST -> readAllocationList(r);
            case LEASE_GRANT -> new LeaseGranted(readGrant(r));
            case LIST_DIGESTS -> new Message.ListDigests(ranges(r));
            case ALLOCATION_DIGESTS -> readDigests(r);
        };
        r.end();
        return message;
    }

    // ---------------------------------------------------------------- shared structures

    private static AccessMode accessMode(PayloadReader r) {
        return r.enumValue("accessMode", r.u16("accessMode"), AccessMode::fromCode);
    }

    private static CryptDirection cryptDirection(PayloadReader r) {
        return r.enumValue("cryptDirection", r.u8("cryptDirection"), CryptDirection::fromCode);
    }

    private static void writeSerial(PayloadWriter w, Serial serial) {
        w.u8(serial.mask());
        w.u32(serial.number());
    }

    private static Serial readSerial(PayloadReader r) {
        return new Serial(r.u8("serial.mask"), r.u32("serial.number"));
    }

    private static void writeKey(PayloadWriter w, LicenseKey key) {
        w.u32(key.firmCode());
        w.u32(key.productCode());
        w.u32(key.tmrId());
    }

    private static LicenseKey readKey(PayloadReader r) {
        return r.again(new LicenseKey(r.u32("key.firmCode"), r.u32("key.productCode"), r.u32("key.tmrId")));
    }

    private static void writeProduct(PayloadWriter w, ProductInfo p) {
        w.u32(p.firmCode());
        w.u32(p.productCode());
        w.u32(p.featureMap());
        w.string(p.text());
        w.u32(p.quantity());
        w.u32(p.inUse());
        w.u32(p.tmrId());
        w.bool(p.hasUnitCounter());
        w.u32(p.units());
        w.u64(p.expiresAtMillis());
        w.u64(p.activatesAtMillis());
        w.u32(p.usagePeriodSeconds());
        w.u64(p.usageStartedAtMillis());
        w.u32(p.borrowMaxSeconds());
    }

    private static ProductInfo readProduct(PayloadReader r) {
        return new ProductInfo(r.u32("product.firmCode"), r.u32("product.productCode"), r.u32("product.featureMap"),
                r.string("product.text"), r.u32("product.quantity"), r.u32("product.inUse"), r.u32("product.tmrId"),
                r.bool("product.hasUnitCounter"), r.u32("product.units"), r.nonNegative64("product.expiresAt"),
                r.nonNegative64("product.activatesAt"), r.u32("product.usagePeriodSeconds"),
                r.nonNegative64("product.usageStartedAt"), r.u32("product.borrowMaxSeconds"));
    }

    private static void writeContainer(PayloadWriter w, ContainerInfo c) {
        writeSerial(w, c.serial());
        w.u32(c.cmActId());
        w.bytes(c.publicKey());
        w.list(c.products(), PayloadCodec::writeProduct);
    }

    private static ContainerInfo readContainer(PayloadReader r) {
        return new ContainerInfo(readSerial(r), r.u32("container.cmActId"), r.bytes("container.publicKey"),
                r.list("container.products", PayloadCodec::readProduct));
    }

    private static void writeOwner(PayloadWriter w, HandleOwner o) {
        w.string(o.host());
        w.string(o.user());
        w.u32(o.pid());
        w.u64(o.sessionId());
    }

    private static HandleOwner readOwner(PayloadReader r) {
        return new HandleOwner(r.string("owner.host"), r.string("owner.user"), r.u32("owner.pid"),
                r.u64("owner.sessionId"));
    }

    private static void writeRequest(PayloadWriter w, AllocationRequest request) {
        w.string(request.host());
        w.u64(request.requestId());
    }

    private static AllocationRequest readRequest(PayloadReader r) {
        return new AllocationRequest(r.string("request.host"), r.u64("request.requestId"));
    }

    private static boolean withRequests(PayloadReader r, int flag) {
        if (flag > 1) {
            throw r.malformed("withRequests must be 0 or 1, was " + flag);
        }
        return flag == 1;
    }

    /** An ALLOCATION_LIST; the requests, when present, name the handles of the page they belong to. */
    private static int ranges(PayloadReader r) {
        long ranges = r.u32("ranges");
        if (ranges < 1 || ranges > AllocationDigests.MAX_RANGES) {
            throw r.malformed("ranges must be 1 to " + AllocationDigests.MAX_RANGES + ": " + ranges);
        }
        return (int) ranges;
    }

    private static Message.DigestList readDigests(PayloadReader r) {
        int ranges = ranges(r);
        long[] counts = new long[ranges];
        long[] sums = new long[ranges];
        for (int k = 0; k < ranges; k++) {
            counts[k] = r.u32("count");
            sums[k] = r.u64("digest");
        }
        return new Message.DigestList(new AllocationDigests(counts, sums));
    }

    private static AllocationList readAllocationList(PayloadReader r) {
        List<Allocation> allocations = r.list("allocations", PayloadCodec::readAllocation);
        boolean more = r.bool("more");
        if (!r.readable()) {
            return new AllocationList(allocations, more);
        }
        record Named(long tmrHandleId, AllocationRequest request) {
        }
        List<Named> named = r.list("requests", in -> new Named(in.u64("request.tmrHandleId"), readRequest(in)));
        Map<Long, AllocationRequest> byHandle = new HashMap<>();
        for (Named n : named) {
            if (byHandle.put(n.tmrHandleId(), n.request()) != null) {
                throw r.malformed("the request of handle " + Long.toUnsignedString(n.tmrHandleId()) + " is named twice");
            }
        }
        List<Allocation> withRequests = new ArrayList<>(allocations.size());
        for (Allocation allocation : allocations) {
            withRequests.add(allocation.withRequest(byHandle.remove(allocation.tmrHandleId())));
        }
        if (!byHandle.isEmpty()) {
            throw r.malformed("the request of handle " + Long.toUnsignedString(byHandle.keySet().iterator().next())
                    + " is named, which is not on the page");
        }
        return new AllocationList(withRequests, more, true);
    }

    private static void writeAllocation(PayloadWriter w, Allocation a) {
        w.u64(a.tmrHandleId());
        writeKey(w, a.key());
        w.u16(a.accessMode().code());
        w.u32(a.featureBits());
        writeOwner(w, a.owner());
        w.bytes(a.tokenDigest());
        w.u64(a.epoch());
    }

    private static Allocation readAllocation(PayloadReader r) {
        return new Allocation(r.u64("allocation.tmrHandleId"), readKey(r), accessMode(r),
                r.u32("allocation.featureBits"), readOwner(r), r.bytes("allocation.tokenDigest"),
                r.nonNegative64("allocation.epoch"));
    }

    private static void writeGrant(PayloadWriter w, LeaseGrant g) {
        w.string(g.leaseName());
        w.string(g.holder());
        w.u64(g.epoch());
        w.u64(g.issuedAtMillis());
        w.u32(g.ttlMillis());
        writeSerial(w, g.grantor());
        w.bytes(g.signature());
    }

    private static LeaseGrant readGrant(PayloadReader r) {
        return new LeaseGrant(r.string("grant.leaseName"), r.string("grant.holder"), r.nonNegative64("grant.epoch"),
                r.nonNegative64("grant.issuedAt"), r.u32("grant.ttlMillis"), readSerial(r), r.bytes("grant.signature"));
    }

    private static void writeCertificate(PayloadWriter w, LeaseCertificate c) {
        w.list(c.grants(), PayloadCodec::writeGrant);
    }

    private static LeaseCertificate readCertificate(PayloadReader r) {
        return new LeaseCertificate(r.list("certificate.grants", PayloadCodec::readGrant));
    }

    private static void writeTicket(PayloadWriter w, BorrowTicket t) {
        w.u64(t.ticketId());
        w.u32(t.firmCode());
        w.u32(t.productCode());
        w.string(t.clientId());
        w.u64(t.expiresAtMillis());
        writeSerial(w, t.issuer());
        w.bytes(t.signature());
    }

    private static BorrowTicket readTicket(PayloadReader r) {
        return new BorrowTicket(r.u64("ticket.id"), r.u32("ticket.firmCode"), r.u32("ticket.productCode"),
                r.string("ticket.clientId"), r.nonNegative64("ticket.expiresAt"), readSerial(r),
                r.bytes("ticket.signature"));
    }
}
