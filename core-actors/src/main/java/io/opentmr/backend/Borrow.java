package io.opentmr.backend;

import io.opentmr.protocol.LicenseKey;
import java.time.Instant;

/** A borrowed seat, held for {@code clientId} until {@code expiresAt} or an early return. */
public record Borrow(long ticketId, LicenseKey item, String clientId, Instant expiresAt) {
}
