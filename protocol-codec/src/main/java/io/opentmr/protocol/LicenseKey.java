package io.opentmr.protocol;

/** What identifies a TMR license across its three copies: firm code, product code and TMR-Id. */
public record LicenseKey(long firmCode, long productCode, long tmrId) {

    public LicenseKey {
        Check.u32(firmCode, "firmCode");
        Check.u32(productCode, "productCode");
        Check.u32(tmrId, "tmrId");
    }

    @Override
    public String toString() {
        return firmCode + ":" + productCode + "#" + tmrId;
    }
}
