package io.opentmr.backend;

import io.opentmr.license.LicenseRefusedException;
import io.opentmr.license.LicenseUpdate;
import io.opentmr.license.LicenseUpdateFile;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CmFailure;
import io.opentmr.protocol.ContainerInfo;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.Message;
import io.opentmr.server.FrameSession.Pending;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Predicate;
import org.apache.pekko.Done;

/**
 * The client requests that a backend of several containers ({@link BackendContainers}) cannot hand to one
 * container by the request alone: an ACCESS names a product, a RETURN a ticket, LIST_CONTAINERS asks for all,
 * a license update names its container inside the file. Each gives the session what to run under
 * {@code answerLater}: the requests go to the containers' inboxes as any other, and the answer of the container
 * that decided comes back with its index. A backend of one container does not come here for ACCESS, RETURN or a
 * license update.
 */
final class ContainerRouting {

    private ContainerRouting() {
    }

    /** What a container answered, and which one. */
    record Routed<T>(int index, T value) {
    }

    /** Every container's listing, in order; each listing is also learnt for routing ACCESS. */
    static Consumer<Pending<List<ContainerInfo>>> describeAll(BackendContainers containers) {
        return pending -> {
            int count = containers.size();
            AtomicReferenceArray<ContainerInfo> listed = new AtomicReferenceArray<>(count);
            AtomicInteger left = new AtomicInteger(count);
            for (int i = 0; i < count; i++) {
                int index = i;
                containers.get(i).inbox().submit(new Container.Describe(answer -> {
                    if (!answer.isSuccess()) {
                        pending.fail(answer.getError());
                        return;
                    }
                    containers.learn(index, answer.getValue());
                    listed.set(index, answer.getValue());
                    if (left.decrementAndGet() == 0) {
                        List<ContainerInfo> all = new ArrayList<>(count);
                        for (int c = 0; c < count; c++) {
                            all.add(listed.get(c));
                        }
                        pending.succeed(all);
                    }
                }));
            }
        };
    }

    /**
     * An ACCESS: tried at each container holding the product, in order, until one grants it; a container that has
     * no free seat (212), holds it in a conflicting mode (213) or does not serve the feature bits (200) passes it
     * on, and the last one's refusal is the answer. Each container that refuses writes its own denial line.
     */
    static Consumer<Pending<Routed<Container.Granted>>> access(BackendContainers containers, Message.Access m,
                                                               HandleOwner owner, String station, int requestId,
                                                               Instant deadline) {
        return pending -> inOrder(containers, containers.holding(m.firmCode(), m.productCode()), 0,
                r -> new Container.Access(m.firmCode(), m.productCode(), m.featureBits(), m.accessMode(), owner,
                        station, requestId, false, deadline, r),
                refusal -> refusal.error() == CmError.NO_MORE_LICENSES || refusal.error() == CmError.EXCLUSIVE_CONFLICT
                        || refusal.error() == CmError.ENTRY_NOT_FOUND, pending);
    }

    /**
     * A RETURN: ticket ids are each container's own, so it goes to each container in order until one holds a
     * borrow of that ticket for this client (106 from the others).
     */
    static Consumer<Pending<Routed<Done>>> returnBorrow(BackendContainers containers, long ticketId, String clientId) {
        int[] all = new int[containers.size()];
        Arrays.setAll(all, i -> i);
        return pending -> inOrder(containers, all, 0, r -> new Container.ReturnBorrow(ticketId, clientId, r),
                refusal -> refusal.error() == CmError.INVALID_HANDLE, pending);
    }

    /**
     * A license update, to the container its file names (the first container when it names none of them, which
     * refuses it as a backend of one container does); what that container holds then is learnt again.
     */
    static Consumer<Pending<LicenseUpdate>> importLicense(BackendContainers containers, Bytes file) {
        int target;
        try {
            target = Math.max(0, containers.indexOf(LicenseUpdateFile.target(file.toArray())));
        } catch (LicenseRefusedException e) {
            target = 0;
        }
        int index = target;
        return pending -> containers.get(index).inbox().submit(new Container.ImportLicense(file, answer -> {
            if (!answer.isSuccess()) {
                pending.fail(answer.getError());
                return;
            }
            containers.get(index).inbox().submit(new Container.Describe(listed -> {
                if (listed.isSuccess()) {
                    containers.learn(index, listed.getValue());
                }
                pending.succeed(answer.getValue());
            }));
        }));
    }

    private static <T> void inOrder(BackendContainers containers, int[] order, int at,
                                    Function<Container.ReplyTo<T>, Container.Request> command,
                                    Predicate<CmFailure> passOn, Pending<Routed<T>> pending) {
        int index = order[at];
        containers.get(index).inbox().submit(command.apply(answer -> {
            if (answer.isSuccess()) {
                pending.succeed(new Routed<>(index, answer.getValue()));
            } else if (at + 1 < order.length && answer.getError() instanceof CmFailure refusal
                    && passOn.test(refusal)) {
                inOrder(containers, order, at + 1, command, passOn, pending);
            } else {
                pending.fail(answer.getError());
            }
        }));
    }
}
