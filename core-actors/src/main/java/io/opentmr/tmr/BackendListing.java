package io.opentmr.tmr;

import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.AllocationDigests;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.tmr.backend.BackendWatcher;
import io.opentmr.tmr.backend.PeerGroup;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Every allocation one backend holds for the node's group, read with LIST_ALLOCATIONS page after page (each page
 * asked for once the one before it arrived, from the handle id it ended with) and grouped by license: what a
 * re-sync compares a license's table with. The handle id space is cut into {@link #CURSORS} ranges listed at once
 * (handle ids are drawn at random from 1 to {@link Long#MAX_VALUE}, so the ranges hold about as many each): a take-over
 * waits for the whole listing, and one page after the other left the backend and the node waiting for each other's
 * round trips.
 */
final class BackendListing {

    private static final Logger LOG = LoggerFactory.getLogger(BackendListing.class);

    /**
     * Allocations asked for per page (about 200 KB with short owner names). A backend pages at most its caps (5000,
     * 512 KiB), so a page fits the default frame (docs/protocol.md, LIST_ALLOCATIONS); an older backend pages at
     * most 1000. Fewer than the backend's 5000: every page must come within the backend timeout (1 s by default),
     * and at a take-over on a CPU-starved machine (load 20-40 on two cores) pages of 5000 were seen to miss it,
     * which costs the whole listing again a second later.
     */
    static final int PAGE = 2000;
    /**
     * Ranges of the handle id space listed at once, per backend. Measured with two (100 000 handles: the listing of
     * a take-over 1.8 s against 3.2-4.6 s one page after the other); more were not measured, and each adds a page in
     * flight that must come within the backend timeout on a starved machine.
     */
    static final int CURSORS = 2;
    private BackendListing() {
    }

    /**
     * Lists {@code backend}'s allocations. The stage fails with the first page that fails or is answered with
     * anything else than an ALLOCATION_LIST; its pages are handled on {@code executor}.
     */
    static CompletionStage<Map<LicenseKey, List<Allocation>>> list(PeerGroup peers, int backend, Executor executor) {
        return list(peers, backend, executor, () -> true);
    }

    /**
     * As {@link #list(PeerGroup, int, Executor)}, asking for each next page only while {@code goOn} says so; else the
     * stage fails with a {@link java.util.concurrent.CancellationException}.
     */
    static CompletionStage<Map<LicenseKey, List<Allocation>>> list(PeerGroup peers, int backend, Executor executor,
                                                                  BooleanSupplier goOn) {
        long[] starts = new long[CURSORS];
        long[] ends = new long[CURSORS];
        int[] pages = new int[CURSORS];
        for (int k = 0; k < CURSORS; k++) {
            starts[k] = rangeStart(k);
            ends[k] = AllocationDigests.rangeEnd(k, CURSORS);
            pages[k] = PAGE;
        }
        return listIn(peers, backend, executor, starts, ends, pages, goOn);
    }

    /**
     * The count and digest of {@code backend}'s allocations in each of {@code ranges} ranges (LIST_DIGESTS); an answer
     * also says that the backend keeps the requests of allocations ({@link PeerGroup#requestsAnswered}). A backend
     * that refuses the request as unknown (an older one, which closes the connection) is marked
     * {@linkplain PeerGroup#digestsRefused refusing} and listed whole from then on; the stage fails then too.
     */
    static CompletionStage<AllocationDigests> digests(PeerGroup peers, int backend, int ranges, Executor executor) {
        return peers.call(backend, certificate -> new Message.ListDigests(ranges)).handleAsync((reply, failure) -> {
            if (failure != null) {
                Throwable cause = BackendWatcher.unwrap(failure);
                if (cause instanceof CmFailure refused && refused.code() == CmError.INVALID_PARAMETER.code()) {
                    peers.digestsAnswered(backend, false);
                    LOG.info("Backend {} does not answer LIST_DIGESTS (an older backend: {}); it is listed whole",
                            backend + 1, refused.getMessage());
                }
                throw new java.util.concurrent.CompletionException(cause);
            }
            if (!(reply instanceof Message.DigestList list) || list.digests().ranges() != ranges) {
                throw new java.util.concurrent.CompletionException(new CmFailure(CmError.NETWORK_FAULT,
                        "LIST_DIGESTS of backend " + (backend + 1) + " answered " + reply));
            }
            // A backend that answers digests is newer than the requests of allocations: it keeps them, and the node's
            // ALLOCATEs name them (a take-over whose digests all agree lists nothing to learn that from).
            peers.requestsAnswered(backend, true);
            peers.digestsAnswered(backend, true);
            return list.digests();
        }, executor);
    }

    /**
     * {@code backend}'s allocations in the ranges {@code which} of {@code theirs} (the backend's digests), each range
     * listed from its start with pages of about as many allocations as the backend counted there, all ranges at once.
     */
    static CompletionStage<Map<LicenseKey, List<Allocation>>> listRanges(PeerGroup peers, int backend,
                                                                        Executor executor, BitSet which,
                                                                        AllocationDigests theirs) {
        int n = which.cardinality();
        long[] starts = new long[n];
        long[] ends = new long[n];
        int[] pages = new int[n];
        int i = 0;
        for (int k = which.nextSetBit(0); k >= 0; k = which.nextSetBit(k + 1), i++) {
            starts[i] = AllocationDigests.rangeStart(k, theirs.ranges());
            ends[i] = AllocationDigests.rangeEnd(k, theirs.ranges());
            pages[i] = (int) Math.min(PAGE, theirs.count(k) + 8);
        }
        return listIn(peers, backend, executor, starts, ends, pages, () -> true);
    }

    /** The allocations of {@code backend} in each range (above its start, up to its end, unsigned), all at once. */
    private static CompletionStage<Map<LicenseKey, List<Allocation>>> listIn(PeerGroup peers, int backend,
                                                                            Executor executor, long[] starts,
                                                                            long[] ends, int[] pages,
                                                                            BooleanSupplier goOn) {
        CompletableFuture<Map<LicenseKey, List<Allocation>>> listed = new CompletableFuture<>();
        BooleanSupplier wanted = () -> goOn.getAsBoolean() && !listed.isDone();
        List<CompletableFuture<Map<LicenseKey, List<Allocation>>>> ranges = new ArrayList<>(starts.length);
        for (int k = 0; k < starts.length; k++) {
            CompletableFuture<Map<LicenseKey, List<Allocation>>> range = new CompletableFuture<>();
            // The first range that fails fails the listing at once; the others ask for no further page.
            range.whenComplete((byKey, failure) -> {
                if (failure != null) {
                    listed.completeExceptionally(failure);
                }
            });
            ranges.add(range);
        }
        for (int k = 0; k < starts.length; k++) {
            next(peers, backend, executor, starts[k], ends[k], pages[k], new HashMap<>(), ranges.get(k), wanted);
        }
        CompletableFuture.allOf(ranges.toArray(CompletableFuture[]::new)).thenRun(() -> {
            // In the ranges' order: each license's allocations stay in unsigned handle id order.
            Map<LicenseKey, List<Allocation>> byKey = new HashMap<>();
            for (CompletableFuture<Map<LicenseKey, List<Allocation>>> range : ranges) {
                range.join().forEach((key, allocations) -> byKey.computeIfAbsent(key, k -> new ArrayList<>())
                        .addAll(allocations));
            }
            listed.complete(byKey);
        });
        return listed;
    }

    /**
     * Where range {@code k} of the handle id space starts (exclusive): range k holds the ids above it up to the start
     * of range k + 1 (unsigned); the last one up to the highest id.
     */
    static long rangeStart(int k) {
        return AllocationDigests.rangeStart(k, CURSORS);
    }

    /** The allocations with a handle id above {@code after} up to {@code last} (unsigned), page by page. */
    private static void next(PeerGroup peers, int backend, Executor executor, long after, long last, int size,
                             Map<LicenseKey, List<Allocation>> byKey,
                             CompletableFuture<Map<LicenseKey, List<Allocation>>> done, BooleanSupplier goOn) {
        if (!goOn.getAsBoolean()) {
            done.completeExceptionally(new java.util.concurrent.CancellationException(
                    "the listing of backend " + (backend + 1) + " is no longer wanted"));
            return;
        }
        boolean withRequests = peers.asksForRequests(backend);
        peers.call(backend, certificate -> new Message.ListAllocations(after, size, withRequests)).whenCompleteAsync(
                (reply, failure) -> {
                    if (failure != null) {
                        Throwable cause = BackendWatcher.unwrap(failure);
                        if (withRequests && cause instanceof CmFailure refused
                                && refused.code() == CmError.INVALID_PARAMETER.code()) {
                            // An older backend: it closes the connection; the listing is taken again without them.
                            peers.requestsAnswered(backend, false);
                            LOG.info("Backend {} does not keep the requests of allocations (an older backend: {}); a "
                                    + "handle rebuilt from it answers no re-sent ACCESS", backend + 1,
                                    refused.getMessage());
                        }
                        done.completeExceptionally(failure);
                        return;
                    }
                    if (!(reply instanceof Message.AllocationList page)) {
                        done.completeExceptionally(new CmFailure(CmError.NETWORK_FAULT,
                                "LIST_ALLOCATIONS of backend " + (backend + 1) + " answered " + reply));
                        return;
                    }
                    if (withRequests) {
                        peers.requestsAnswered(backend, page.withRequests());
                    }
                    List<Allocation> allocations = page.allocations();
                    boolean past = false;
                    for (Allocation allocation : allocations) {
                        if (Long.compareUnsigned(allocation.tmrHandleId(), last) > 0) {
                            past = true;
                            break;
                        }
                        if (Long.compareUnsigned(allocation.tmrHandleId(), after) <= 0) {
                            continue; // not of this page: a backend lists only the ids above the one asked after
                        }
                        byKey.computeIfAbsent(allocation.key(), k -> new ArrayList<>()).add(allocation);
                    }
                    if (!past && page.more() && !allocations.isEmpty()) {
                        next(peers, backend, executor, allocations.get(allocations.size() - 1).tmrHandleId(), last,
                                size, byKey, done, goOn);
                    } else {
                        done.complete(byKey);
                    }
                }, executor);
    }
}
