package io.opentmr.license;

import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.GroupKeyStatement;
import io.opentmr.protocol.Serial;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.Objects;

/**
 * The signed content of a license update file: which container it is for, the firm update counter
 * it moves that firm item to, and the product items it adds (an item with the same product code and
 * TMR-Id as an existing one replaces it).
 *
 * @param target            serial of the target container
 * @param cmActId           CmActId of the target container
 * @param firmCode          firm code of the firm item
 * @param firmUpdateCounter the next firm update counter: exactly one above the container's
 * @param issuedAt          when the vendor issued it
 * @param items             the product items
 * @param tmrGroupKeys      for TMR copies: the raw public keys (base64) of the three containers of
 *                          the group, attested by the vendor's signature; empty otherwise
 * @param tmrGroupStatement for TMR copies: the vendor's signed statement of the group's containers and keys
 *                          ({@link GroupKeyStatement}, base64), which the copy's borrow tickets carry so that a
 *                          program checks them with the vendor's key alone; null in files of the older format
 *                          (then borrowing through a TMR node is refused)
 */
public record LicenseUpdate(String target, long cmActId, long firmCode, long firmUpdateCounter, Instant issuedAt,
                            List<ProductItemSpec> items, List<String> tmrGroupKeys, String tmrGroupStatement) {

    /** An update without a group key statement: ordinary items, or TMR copies of the older format. */
    public LicenseUpdate(String target, long cmActId, long firmCode, long firmUpdateCounter, Instant issuedAt,
                         List<ProductItemSpec> items, List<String> tmrGroupKeys) {
        this(target, cmActId, firmCode, firmUpdateCounter, issuedAt, items, tmrGroupKeys, null);
    }

    public LicenseUpdate {
        Serial.parse(Objects.requireNonNull(target, "target"));
        if (firmCode <= 0 || firmCode > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("firmCode must be 1..4294967295: " + firmCode);
        }
        if (firmUpdateCounter <= 0 || firmUpdateCounter > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("firmUpdateCounter must be 1..4294967295: " + firmUpdateCounter);
        }
        Objects.requireNonNull(issuedAt, "issuedAt");
        items = List.copyOf(items);
        if (items.isEmpty()) {
            throw new IllegalArgumentException("an update file carries at least one product item");
        }
        tmrGroupKeys = List.copyOf(tmrGroupKeys);
        boolean tmr = items.stream().anyMatch(i -> i.tmrId() != 0);
        if (tmr && tmrGroupKeys.size() != 3) {
            throw new IllegalArgumentException("a TMR update names the 3 container keys of its group, not "
                    + tmrGroupKeys.size());
        }
        for (String key : tmrGroupKeys) {
            Ed25519.publicKey(java.util.Base64.getDecoder().decode(key));
        }
        if (tmrGroupStatement != null) {
            GroupKeyStatement statement = GroupKeyStatement.parse(Bytes.of(Base64.getDecoder()
                    .decode(tmrGroupStatement)));
            List<String> stated = statement.members().stream()
                    .map(m -> Base64.getEncoder().encodeToString(m.publicKey().toArray())).toList();
            if (!tmr || !stated.equals(tmrGroupKeys) || statement.firmCode() != firmCode
                    || statement.cmActId() != cmActId || statement.members().stream()
                    .noneMatch(m -> m.serial().equals(Serial.parse(target)))) {
                throw new IllegalArgumentException("the group key statement (" + statement + ") does not match the "
                        + "update: firm " + firmCode + ", CmActId " + cmActId + ", target " + target
                        + ", group keys in that order");
            }
        }
    }

    /** The group key statement, or null. */
    public GroupKeyStatement groupStatement() {
        return tmrGroupStatement == null ? null
                : GroupKeyStatement.parse(Bytes.of(Base64.getDecoder().decode(tmrGroupStatement)));
    }

    public Serial targetSerial() {
        return Serial.parse(target);
    }
}
