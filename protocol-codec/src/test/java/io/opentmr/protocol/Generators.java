package io.opentmr.protocol;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;

/** jqwik generators for every message of the protocol, over the whole range of every field. */
final class Generators {

    private Generators() {
    }

    static Arbitrary<Long> u32() {
        return Arbitraries.oneOf(Arbitraries.longs().between(0, Check.U32_MAX), Arbitraries.of(0L, Check.U32_MAX));
    }

    static Arbitrary<Long> u64() {
        return Arbitraries.oneOf(Arbitraries.longs(), Arbitraries.of(0L, -1L, Long.MIN_VALUE, Long.MAX_VALUE));
    }

    static Arbitrary<Long> nonNegative() {
        return Arbitraries.oneOf(Arbitraries.longs().between(0, Long.MAX_VALUE), Arbitraries.of(0L, Long.MAX_VALUE));
    }

    /** Well-formed strings of every plane: ASCII, accented, CJK and supplementary characters. */
    static Arbitrary<String> strings() {
        Arbitrary<String> codePoints = Arbitraries.integers().between(0, 0x10FFFF)
                .filter(cp -> cp < Character.MIN_SURROGATE || cp > Character.MAX_SURROGATE)
                .list().ofMaxSize(40)
                .map(cps -> {
                    StringBuilder text = new StringBuilder();
                    cps.forEach(text::appendCodePoint);
                    return text.toString();
                });
        return Arbitraries.oneOf(Arbitraries.strings().ascii().ofMaxLength(40), codePoints, Arbitraries.just(""));
    }

    static Arbitrary<Bytes> bytes() {
        return Arbitraries.bytes().array(byte[].class).ofMaxSize(64).map(Bytes::of);
    }

    static Arbitrary<Serial> serials() {
        return Combinators.combine(Arbitraries.integers().between(0, 255), u32()).as(Serial::new);
    }

    static Arbitrary<LicenseKey> keys() {
        return Combinators.combine(u32(), u32(), u32()).as(LicenseKey::new);
    }

    static Arbitrary<ProductInfo> products() {
        Arbitrary<ProductInfo> first = Combinators.combine(u32(), u32(), u32(), strings(), u32(), u32(), u32(),
                        Arbitraries.of(true, false))
                .as((firm, product, features, text, quantity, inUse, tmrId, hasUnits) -> new ProductInfo(
                        firm, product, features, text, quantity, inUse, tmrId, hasUnits, 0, 0, 0, 0, 0, 0));
        return Combinators.combine(first, u32(), nonNegative(), nonNegative(), u32(), nonNegative(), u32())
                .as((p, units, expires, activates, usage, started, borrow) -> new ProductInfo(
                        p.firmCode(), p.productCode(), p.featureMap(), p.text(), p.quantity(), p.inUse(), p.tmrId(),
                        p.hasUnitCounter(), units, expires, activates, usage, started, borrow));
    }

    static Arbitrary<ContainerInfo> containers() {
        return Combinators.combine(serials(), u32(), bytes(), products().list().ofMaxSize(4))
                .as(ContainerInfo::new);
    }

    static Arbitrary<HandleOwner> owners() {
        return Combinators.combine(strings(), strings(), u32(), u64()).as(HandleOwner::new);
    }

    static Arbitrary<Allocation> allocations() {
        return Combinators.combine(u64(), keys(), Arbitraries.of(AccessMode.class), u32(), owners(), bytes(),
                nonNegative(), allocationRequests().injectNull(0.3)).as(Allocation::new);
    }

    static Arbitrary<AllocationRequest> allocationRequests() {
        return Combinators.combine(strings(), u64()).as(AllocationRequest::new);
    }

    static Arbitrary<LeaseGrant> grants() {
        return Combinators.combine(strings(), strings(), nonNegative(), nonNegative(), u32(), serials(), bytes())
                .as(LeaseGrant::new);
    }

    static Arbitrary<LeaseCertificate> certificates() {
        return grants().list().ofMaxSize(3).map(LeaseCertificate::new);
    }

    static Arbitrary<BorrowTicket> tickets() {
        return Combinators.combine(u64(), u32(), u32(), strings(), nonNegative(), serials(), bytes())
                .as(BorrowTicket::new);
    }

    /** One generator per message type; a test checks that no type is missing. */
    static Map<MessageType, Arbitrary<? extends Message>> byType() {
        Map<MessageType, Arbitrary<? extends Message>> m = new EnumMap<>(MessageType.class);
        m.put(MessageType.HELLO, Combinators.combine(strings(), strings(), strings(), u32()).as(Message.Hello::new));
        m.put(MessageType.LIST_CONTAINERS, Arbitraries.just(new Message.ListContainers()));
        m.put(MessageType.GET_INFO, u64().map(Message.GetInfo::new));
        m.put(MessageType.ACCESS, Combinators.combine(u32(), u32(), u32(), Arbitraries.of(AccessMode.class))
                .as(Message.Access::new));
        m.put(MessageType.RELEASE, u64().map(Message.Release::new));
        m.put(MessageType.KEEPALIVE, Arbitraries.just(new Message.KeepAlive()));
        m.put(MessageType.RESUME, Combinators.combine(u64(), bytes()).as(Message.Resume::new));
        m.put(MessageType.CRYPT, Combinators.combine(u64(), Arbitraries.of(CryptDirection.class), u32(), bytes())
                .as(Message.Crypt::new));
        m.put(MessageType.DECREMENT_UNITS, Combinators.combine(u64(), u64(), u32()).as(Message.DecrementUnits::new));
        m.put(MessageType.BORROW, Combinators.combine(u64(), u32()).as(Message.Borrow::new));
        m.put(MessageType.RETURN, u64().map(Message.Return::new));
        m.put(MessageType.RESUME_MANY, Combinators.combine(u64(), bytes()).as(Message.Resume::new).list()
                .ofMaxSize(5).map(Message.ResumeMany::new));
        m.put(MessageType.LICENSE_CONTEXT, Combinators.combine(strings(), serials()).as(Message.LicenseContext::new));
        m.put(MessageType.LICENSE_UPDATE, Combinators.combine(strings(), bytes()).as(Message.LicenseUpdate::new));
        m.put(MessageType.NODE_STEP_DOWN, strings().map(Message.NodeStepDown::new));
        m.put(MessageType.OK, Arbitraries.just(new Message.Ok()));
        m.put(MessageType.HELLO_OK, Combinators.combine(Arbitraries.of(ServerKind.class), u64(), u32(), strings())
                .as(Message.HelloOk::new));
        m.put(MessageType.NOT_ACTIVE, strings().map(Message.NotActive::new));
        m.put(MessageType.CONTAINER_LIST, containers().list().ofMaxSize(3).map(Message.ContainerList::new));
        m.put(MessageType.INFO, Combinators.combine(u64(), Arbitraries.of(AccessMode.class), serials(), products())
                .as(Message.Info::new));
        m.put(MessageType.ACCESS_OK, Combinators.combine(u64(), bytes(), serials()).as(Message.AccessOk::new));
        m.put(MessageType.CRYPT_OK, bytes().map(Message.CryptOk::new));
        m.put(MessageType.RESUMED_MANY, Combinators.combine(u64(), Arbitraries.integers().between(0, 0xFFFF))
                .as(Message.ResumedMany.Outcome::new).list().ofMaxSize(5).map(Message.ResumedMany::new));
        m.put(MessageType.UNITS_OK, u32().map(Message.UnitsOk::new));
        m.put(MessageType.BORROW_OK, tickets().map(Message.BorrowOk::new));
        m.put(MessageType.LICENSE_CONTEXT_OK, bytes().map(Message.LicenseContextOk::new));
        m.put(MessageType.LICENSE_UPDATE_OK, Combinators.combine(serials(), u32(), u32())
                .as(Message.LicenseUpdateOk::new));
        m.put(MessageType.ERROR, Combinators.combine(Arbitraries.integers().between(0, 0xFFFF), strings())
                .as(Message.Error::new));
        m.put(MessageType.PEER_HELLO, Combinators.combine(strings(), bytes(), u32()).as(Message.PeerHello::new));
        m.put(MessageType.PEER_CHALLENGE, Combinators.combine(strings(), bytes(), bytes())
                .as(Message.PeerChallenge::new));
        m.put(MessageType.PEER_PROOF, bytes().map(Message.PeerProof::new));
        m.put(MessageType.INVENTORY, Arbitraries.integers().between(0, 0xFF).map(Message.Inventory::new));
        m.put(MessageType.ALLOCATE, Combinators.combine(certificates(), allocations(), nonNegative())
                .as(Message.Allocate::new));
        m.put(MessageType.FREE, Combinators.combine(certificates(), u64(), keys(), nonNegative())
                .as(Message.Free::new));
        m.put(MessageType.LIST_ALLOCATIONS, Combinators.combine(u64(), u32(), Arbitraries.of(true, false))
                .as(Message.ListAllocations::new));
        m.put(MessageType.LEASE_ACQUIRE, Combinators.combine(strings(), strings(), nonNegative(), u32())
                .as(Message.LeaseAcquire::new));
        m.put(MessageType.LEASE_RENEW, Combinators.combine(strings(), strings(), nonNegative(), u32())
                .as(Message.LeaseRenew::new));
        m.put(MessageType.LEASE_RELEASE, Combinators.combine(strings(), strings(), nonNegative())
                .as(Message.LeaseRelease::new));
        m.put(MessageType.PEER_CRYPT, Combinators.combine(certificates(), keys(), Arbitraries.of(CryptDirection.class),
                u32(), bytes()).as(Message.PeerCrypt::new));
        m.put(MessageType.PEER_UNITS, Combinators.combine(certificates(), keys(), u64(),
                Arbitraries.of(UnitsOperation.class), u32()).as(Message.PeerUnits::new));
        m.put(MessageType.USAGE_START, Combinators.combine(certificates(), keys(), nonNegative(), nonNegative())
                .as(Message.UsageStart::new));
        m.put(MessageType.PEER_BORROW, Combinators.combine(certificates(), keys(), u64(), tickets(), nonNegative())
                .as(Message.PeerBorrow::new));
        m.put(MessageType.INVENTORY_OK, containers().list().ofMaxSize(3).map(Message.InventoryOk::new));
        m.put(MessageType.ALLOCATION_LIST, Combinators.combine(
                allocations().list().ofMaxSize(4).uniqueElements(Allocation::tmrHandleId),
                Arbitraries.of(true, false), Arbitraries.of(true, false)).as(Message.AllocationList::new));
        m.put(MessageType.LEASE_GRANT, grants().map(Message.LeaseGranted::new));
        m.put(MessageType.LIST_DIGESTS, Arbitraries.integers().between(1, AllocationDigests.MAX_RANGES)
                .map(Message.ListDigests::new));
        m.put(MessageType.ALLOCATION_DIGESTS, Combinators.combine(Arbitraries.integers().between(1, 8), u32(), u64())
                .as((ranges, count, digest) -> {
                    long[] counts = new long[ranges];
                    long[] sums = new long[ranges];
                    counts[ranges - 1] = count;
                    sums[0] = digest;
                    return new Message.DigestList(new AllocationDigests(counts, sums));
                }));
        return m;
    }

    static Arbitrary<Message> messages() {
        List<Arbitrary<? extends Message>> all = List.copyOf(byType().values());
        return Arbitraries.oneOf(all);
    }

    static Arbitrary<Frame> frames() {
        return Combinators.combine(Arbitraries.integers(), messages()).as(Frame::new);
    }
}
