package io.opentmr.backend;

import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * The containers of one backend and the way to each: its identity and the {@link RequestInbox} its
 * {@link Container} takes requests from. The first is the container of {@code opentmr.backend.cm-act-id}, the
 * others those of {@code additional-containers}, in that order; each is a container of its own (journal
 * persistence id by serial, lease table, tracking lines), and only the sessions know there are several.
 *
 * <p>Client handles of the container at index {@code i > 0} are shown to clients as {@code i << 48 | id}, so a
 * request about a handle finds its container from the id alone, on any connection and after a restart; the
 * first container's ids are shown as they are, so a backend of one container answers exactly as before.
 * A container's own ids count up from 1 and never reach 2^48.
 *
 * <p>Which products each container holds ({@link #holding}) is learnt from the containers' own listings
 * ({@link #learn}): at start, at every LIST_CONTAINERS and after every license update. It only chooses the order
 * in which an ACCESS tries the containers: the container that answers decides.
 *
 * <p>Thread-safe: sessions read it from their event loops, listings are learnt from the containers' thread.
 */
public final class BackendContainers {

    /** The bits of a client handle id above a container's own id. */
    static final int INDEX_SHIFT = 48;
    static final long LOCAL_MASK = (1L << INDEX_SHIFT) - 1;

    /** One container of the backend. */
    public record Slot(ContainerIdentity identity, RequestInbox inbox) {
    }

    private final List<Slot> slots;
    /** Per container, the (firm code, product code) pairs of its product items; empty until first learnt. */
    private final AtomicReferenceArray<Set<Long>> products;

    public BackendContainers(List<Slot> slots) {
        if (slots.isEmpty() || slots.size() > 0x7FFF) {
            throw new IllegalArgumentException("a backend has 1 to 32767 containers, not " + slots.size());
        }
        Set<Long> cmActIds = new HashSet<>();
        for (Slot slot : slots) {
            if (!cmActIds.add(slot.identity().cmActId())) {
                throw new IllegalArgumentException("two containers of CmActId " + slot.identity().cmActId()
                        + ": a backend holds at most one container per CmActId");
            }
        }
        this.slots = List.copyOf(slots);
        this.products = new AtomicReferenceArray<>(slots.size());
        for (int i = 0; i < slots.size(); i++) {
            products.set(i, Set.of());
        }
    }

    public int size() {
        return slots.size();
    }

    public Slot get(int index) {
        return slots.get(index);
    }

    public Slot primary() {
        return slots.get(0);
    }

    public List<Slot> all() {
        return slots;
    }

    /** The index of the container with this serial, or -1. */
    public int indexOf(Serial serial) {
        for (int i = 0; i < slots.size(); i++) {
            if (slots.get(i).identity().serial().equals(serial)) {
                return i;
            }
        }
        return -1;
    }

    /** The index of the container of this CmActId, or -1. */
    public int indexOfCmActId(long cmActId) {
        for (int i = 0; i < slots.size(); i++) {
            if (slots.get(i).identity().cmActId() == cmActId) {
                return i;
            }
        }
        return -1;
    }

    /** The handle id a client is shown for handle {@code local} of the container at {@code index}. */
    public static long clientHandle(int index, long local) {
        return (long) index << INDEX_SHIFT | local;
    }

    /** The container a client's handle id belongs to (may be beyond {@link #size()}: an id that was never ours). */
    public static int containerOf(long clientHandle) {
        return (int) (clientHandle >>> INDEX_SHIFT);
    }

    /** The container's own id of a client's handle id. */
    public static long localHandle(long clientHandle) {
        return clientHandle & LOCAL_MASK;
    }

    /** Takes note of what a container listed. */
    void learn(int index, ContainerInfo listed) {
        Set<Long> held = new HashSet<>();
        for (ProductInfo product : listed.products()) {
            held.add(product(product.firmCode(), product.productCode()));
        }
        products.set(index, Set.copyOf(held));
    }

    /**
     * The containers to try for an ACCESS, in order: those known to hold the product; when none is, the first
     * container alone (it refuses as a backend of one container does).
     */
    int[] holding(long firmCode, long productCode) {
        long key = product(firmCode, productCode);
        List<Integer> found = new ArrayList<>(2);
        for (int i = 0; i < slots.size(); i++) {
            if (products.get(i).contains(key)) {
                found.add(i);
            }
        }
        return found.isEmpty() ? new int[] {0} : found.stream().mapToInt(Integer::intValue).toArray();
    }

    private static long product(long firmCode, long productCode) {
        return firmCode << 32 | productCode;
    }
}
