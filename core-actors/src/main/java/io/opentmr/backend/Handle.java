package io.opentmr.backend;

import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.HandleOwner;
import io.opentmr.protocol.LicenseKey;
import java.time.Instant;

/**
 * An open handle: which product item it uses, how, and who holds it.
 *
 * @param tokenDigest SHA-256 of the resume token, hex; the token itself is never stored
 */
public record Handle(long id, LicenseKey item, AccessMode mode, long featureBits, HandleOwner owner,
                     String tokenDigest, Instant openedAt) {
}
