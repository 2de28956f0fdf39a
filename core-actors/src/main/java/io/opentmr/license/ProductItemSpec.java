package io.opentmr.license;

import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.Objects;

/**
 * A product item as the vendor issues it. Absent optional values are {@code null}.
 *
 * @param productCode  product code (u32)
 * @param featureMap   feature bits (u32)
 * @param text         product item text
 * @param quantity     license quantity: seats (u32)
 * @param tmrId        TMR-Id of a TMR copy, 0 for an ordinary item
 * @param unitCounter  initial unit counter, or null for none
 * @param expiresAt    expiration time, or null
 * @param activatesAt  activation time, or null
 * @param usagePeriod  usage period of an emergency license (starts at first access), or null
 * @param borrowMax    longest borrow allowed, or null when borrowing is not allowed
 * @param secret       base64 of the 16-byte crypt secret; the three TMR copies share it
 */
public record ProductItemSpec(long productCode, long featureMap, String text, long quantity, long tmrId,
                              Long unitCounter, Instant expiresAt, Instant activatesAt, Duration usagePeriod,
                              Duration borrowMax, String secret) {

    public static final int SECRET_BYTES = 16;
    private static final long U32 = 0xFFFF_FFFFL;

    public ProductItemSpec {
        requireU32(productCode, "productCode");
        requireU32(featureMap, "featureMap");
        Objects.requireNonNull(text, "text");
        requireU32(quantity, "quantity");
        requireU32(tmrId, "tmrId");
        if (unitCounter != null) {
            requireU32(unitCounter, "unitCounter");
        }
        requirePositive(usagePeriod, "usagePeriod");
        requirePositive(borrowMax, "borrowMax");
        Objects.requireNonNull(secret, "secret");
        if (Base64.getDecoder().decode(secret).length != SECRET_BYTES) {
            throw new IllegalArgumentException("secret must be " + SECRET_BYTES + " bytes");
        }
    }

    public byte[] secretBytes() {
        return Base64.getDecoder().decode(secret);
    }

    private static void requireU32(long value, String field) {
        if (value < 0 || value > U32) {
            throw new IllegalArgumentException(field + " must be 0.." + U32 + ": " + value);
        }
    }

    private static void requirePositive(Duration value, String field) {
        if (value != null && (value.isZero() || value.isNegative() || value.getSeconds() > U32)) {
            throw new IllegalArgumentException(field + " must be positive and at most " + U32 + " seconds: " + value);
        }
    }
}
