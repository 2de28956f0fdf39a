package io.opentmr.protocol;

import java.util.List;

/**
 * Grants of the active lease that a TMR node presents with every peer write: valid only with grants
 * from at least two backends of the group for the current epoch (the backend checks that).
 */
public record LeaseCertificate(List<LeaseGrant> grants) {

    public static final LeaseCertificate NONE = new LeaseCertificate(List.of());

    /**
     * How a backend's ERROR 134 text begins when fewer than two of the certificate's grants are current by its clock
     * (docs/protocol.md, rule (d)), the one refusal that newer grants of the same epoch can mend.
     */
    public static final String REFUSED_AS_EXPIRED = "lease certificate refused, expired";

    public LeaseCertificate {
        grants = Check.list(grants, "grants");
    }
}
