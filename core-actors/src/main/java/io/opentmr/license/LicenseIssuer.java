package io.opentmr.license;

import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.GroupKeyStatement;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The vendor's side: turns container contexts into signed update files. A TMR issue takes the three
 * contexts of one group and produces three files with the same next TMR-Id, the same crypt secret,
 * the group's three container keys and the vendor's signed statement of them (which borrow tickets of a TMR
 * node carry), each moving its container's firm update counter by one.
 */
public final class LicenseIssuer {

    /**
     * What to issue. Optional values are {@code null}.
     *
     * @param firmCode    firm code
     * @param productCode product code
     * @param quantity    seats
     * @param tmr         issue three TMR copies
     * @param units       initial unit counter
     * @param expiresAt   expiration time
     * @param activatesAt activation time
     * @param usagePeriod usage period of an emergency license
     * @param borrowMax   longest borrow allowed
     * @param featureMap  feature bits
     * @param text        product item text
     */
    public record Request(long firmCode, long productCode, long quantity, boolean tmr, Long units,
                          Instant expiresAt, Instant activatesAt, Duration usagePeriod, Duration borrowMax,
                          long featureMap, String text) {
    }

    /** One issued file and the container it is for. */
    public record Issued(ContainerContext context, LicenseUpdate update, LicenseUpdateFile file) {

        /** {@code <serial>_<firm>_<counter>.json}: unique per container and update. */
        public String fileName() {
            return context.serial() + "_" + update.firmCode() + "_" + update.firmUpdateCounter() + ".json";
        }
    }

    /** The files, and the vendor state to save once they are written. */
    public record Result(List<Issued> files, VendorState state) {

        public List<Path> writeTo(Path dir) throws IOException {
            Files.createDirectories(dir);
            List<Path> written = new ArrayList<>();
            for (Issued issued : files) {
                Path path = dir.resolve(issued.fileName());
                Files.write(path, issued.file().toJson());
                written.add(path);
            }
            return written;
        }
    }

    private final PrivateKey vendorPrivate;
    private final PublicKey vendorPublic;
    private final Clock clock;
    private final SecureRandom random;

    public LicenseIssuer(PrivateKey vendorPrivate, PublicKey vendorPublic, Clock clock, SecureRandom random) {
        this.vendorPrivate = vendorPrivate;
        this.vendorPublic = vendorPublic;
        this.clock = clock;
        this.random = random;
    }

    public Result issue(VendorState state, List<ContainerContext> contexts, Request request)
            throws LicenseRefusedException {
        if (contexts.isEmpty()) {
            throw refused("at least one container context is needed");
        }
        Set<String> serials = new HashSet<>();
        for (ContainerContext context : contexts) {
            if (!serials.add(context.serial())) {
                throw refused("container " + context.serial() + " is named twice");
            }
        }
        long tmrId = 0;
        List<String> groupKeys = List.of();
        String statement = null;
        VendorState nextState = state;
        if (request.tmr()) {
            if (contexts.size() != 3) {
                throw refused("a TMR license is issued to exactly 3 containers, not " + contexts.size());
            }
            long cmActId = contexts.get(0).cmActId();
            for (ContainerContext context : contexts) {
                if (context.cmActId() != cmActId) {
                    throw refused("the 3 containers of a TMR group share one CmActId; " + context.serial()
                            + " has " + context.cmActId() + ", " + contexts.get(0).serial() + " has " + cmActId);
                }
            }
            if (contexts.stream().map(ContainerContext::publicKey).distinct().count() != 3) {
                throw refused("the 3 containers of a TMR group must have 3 different keys");
            }
            tmrId = state.next(request.firmCode());
            groupKeys = contexts.stream().map(ContainerContext::publicKey).toList();
            statement = statement(request.firmCode(), cmActId, contexts);
            nextState = state.advance(request.firmCode());
        }

        byte[] secret = new byte[ProductItemSpec.SECRET_BYTES];
        random.nextBytes(secret);
        ProductItemSpec item;
        try {
            item = new ProductItemSpec(request.productCode(), request.featureMap(),
                    request.text() == null ? "" : request.text(), request.quantity(), tmrId, request.units(),
                    request.expiresAt(), request.activatesAt(), request.usagePeriod(), request.borrowMax(),
                    Base64.getEncoder().encodeToString(secret));
        } catch (IllegalArgumentException e) {
            throw refused(e.getMessage());
        }

        Instant now = clock.instant();
        List<Issued> issued = new ArrayList<>();
        for (ContainerContext context : contexts) {
            LicenseUpdate update;
            try {
                update = new LicenseUpdate(context.serial(), context.cmActId(), request.firmCode(),
                        context.counter(request.firmCode()) + 1, now, List.of(item), groupKeys, statement);
            } catch (IllegalArgumentException e) {
                throw refused(e.getMessage());
            }
            issued.add(new Issued(context, update, LicenseUpdateFile.sign(update, vendorPrivate, vendorPublic)));
        }
        return new Result(List.copyOf(issued), nextState);
    }

    /**
     * The vendor's signed statement of the group (base64): the three containers and their keys, in the order of
     * the files' group keys, which borrow tickets of the copies carry.
     */
    private String statement(long firmCode, long cmActId, List<ContainerContext> contexts)
            throws LicenseRefusedException {
        GroupKeyStatement unsigned;
        try {
            unsigned = new GroupKeyStatement(firmCode, cmActId, contexts.stream()
                    .map(c -> new GroupKeyStatement.Member(c.serialNumber(), Bytes.of(c.rawPublicKey()))).toList(),
                    Bytes.of(Ed25519.raw(vendorPublic)), Bytes.EMPTY);
        } catch (IllegalArgumentException e) {
            throw refused(e.getMessage());
        }
        Bytes signature = Bytes.of(Ed25519.sign(vendorPrivate, unsigned.signedPayload()));
        return Base64.getEncoder().encodeToString(unsigned.withSignature(signature).encode().toArray());
    }

    private static LicenseRefusedException refused(String message) {
        return new LicenseRefusedException(CmError.INVALID_PARAMETER, message);
    }
}
