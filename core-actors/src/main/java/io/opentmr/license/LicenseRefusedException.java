package io.opentmr.license;

import io.opentmr.protocol.CmError;

/** A license file that must not be applied; the container stays as it was. */
public final class LicenseRefusedException extends Exception {

    private static final long serialVersionUID = 1L;

    private final transient CmError error;

    public LicenseRefusedException(CmError error, String message) {
        super(message);
        this.error = error;
    }

    public LicenseRefusedException(CmError error, String message, Throwable cause) {
        super(message, cause);
        this.error = error;
    }

    /** The number the server answers with (105 malformed, 201 wrong container, 231 signature or counter). */
    public CmError error() {
        return error;
    }
}
