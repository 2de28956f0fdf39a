package io.opentmr.protocol;

/**
 * A product item as a server shows it. Absent values are 0: no TMR-Id, no expiration, no activation
 * time, no usage period, usage period not started, no borrowing.
 *
 * @param firmCode           vendor's firm code
 * @param productCode        product code
 * @param featureMap         feature bits the item grants
 * @param text               product item text
 * @param quantity           license quantity (seats)
 * @param inUse              seats in use now
 * @param tmrId              TMR-Id of a TMR copy, 0 for an ordinary item
 * @param hasUnitCounter     whether {@code units} is a unit counter
 * @param units              remaining units, 0 without a counter
 * @param expiresAtMillis    expiration time, epoch milliseconds
 * @param activatesAtMillis  activation time, epoch milliseconds
 * @param usagePeriodSeconds usage period of an emergency license
 * @param usageStartedAtMillis when the usage period started (first access)
 * @param borrowMaxSeconds   longest borrow allowed
 */
public record ProductInfo(
        long firmCode,
        long productCode,
        long featureMap,
        String text,
        long quantity,
        long inUse,
        long tmrId,
        boolean hasUnitCounter,
        long units,
        long expiresAtMillis,
        long activatesAtMillis,
        long usagePeriodSeconds,
        long usageStartedAtMillis,
        long borrowMaxSeconds) {

    public ProductInfo {
        Check.u32(firmCode, "firmCode");
        Check.u32(productCode, "productCode");
        Check.u32(featureMap, "featureMap");
        Check.string(text, "text");
        Check.u32(quantity, "quantity");
        Check.u32(inUse, "inUse");
        Check.u32(tmrId, "tmrId");
        Check.u32(units, "units");
        Check.nonNegative(expiresAtMillis, "expiresAtMillis");
        Check.nonNegative(activatesAtMillis, "activatesAtMillis");
        Check.u32(usagePeriodSeconds, "usagePeriodSeconds");
        Check.nonNegative(usageStartedAtMillis, "usageStartedAtMillis");
        Check.u32(borrowMaxSeconds, "borrowMaxSeconds");
    }
}
