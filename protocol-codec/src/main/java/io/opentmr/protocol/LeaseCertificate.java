package io.opentmr.protocol;

import java.util.List;

/**
 * Grants of the active lease that a TMR node presents with every peer write: valid only with grants
 * from at least two backends of the group for the current epoch (the backend checks that).
 */
public record LeaseCertificate(List<LeaseGrant> grants) {

    public static final LeaseCertificate NONE = new LeaseCertificate(List.of());

    public LeaseCertificate {
        grants = Check.list(grants, "grants");
    }
}
