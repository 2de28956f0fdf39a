package io.opentmr.license;

import com.fasterxml.jackson.core.JsonProcessingException;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.Serial;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * What a container exports so that the vendor can issue update files for it: its serial, CmActId,
 * the firm update counter of every firm item, and its public key (raw Ed25519, base64).
 *
 * @param format             {@link #FORMAT}
 * @param serial             {@code MASK-NUMBER}
 * @param cmActId            the CmActId
 * @param firmUpdateCounters firm code → last applied firm update counter (absent: 0)
 * @param publicKey          the container's raw Ed25519 public key, base64
 */
public record ContainerContext(String format, String serial, long cmActId, Map<Long, Long> firmUpdateCounters,
                               String publicKey) {

    public static final String FORMAT = "opentmr-context/1";

    public ContainerContext {
        Objects.requireNonNull(serial, "serial");
        Serial.parse(serial);
        firmUpdateCounters = Map.copyOf(new TreeMap<>(firmUpdateCounters));
        Objects.requireNonNull(publicKey, "publicKey");
    }

    public static ContainerContext of(Serial serial, long cmActId, Map<Long, Long> counters, byte[] rawPublicKey) {
        return new ContainerContext(FORMAT, serial.toString(), cmActId, counters,
                Base64.getEncoder().encodeToString(rawPublicKey));
    }

    public Serial serialNumber() {
        return Serial.parse(serial);
    }

    public long counter(long firmCode) {
        return firmUpdateCounters.getOrDefault(firmCode, 0L);
    }

    public byte[] rawPublicKey() {
        return Base64.getDecoder().decode(publicKey);
    }

    public byte[] toJson() {
        try {
            return LicenseJson.MAPPER.writeValueAsBytes(this);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a context always serialises", e);
        }
    }

    public static ContainerContext parse(byte[] json) throws LicenseRefusedException {
        try {
            ContainerContext context = LicenseJson.MAPPER.readValue(json, ContainerContext.class);
            if (!FORMAT.equals(context.format())) {
                throw new LicenseRefusedException(CmError.INVALID_PARAMETER,
                        "not a context file of format " + FORMAT + ": " + context.format());
            }
            Ed25519.publicKey(context.rawPublicKey());
            return context;
        } catch (java.io.IOException | IllegalArgumentException | NullPointerException e) {
            throw new LicenseRefusedException(CmError.INVALID_PARAMETER, "malformed context file: "
                    + firstLine(e.getMessage()), e);
        }
    }

    static String firstLine(String text) {
        if (text == null) {
            return "";
        }
        int newline = text.indexOf('\n');
        return newline < 0 ? text : text.substring(0, newline);
    }

    @Override
    public String toString() {
        return "ContainerContext[" + serial + ", cmActId " + cmActId + ", counters " + firmUpdateCounters + ", key "
                + Ed25519.fingerprint(rawPublicKey()) + "]";
    }

    /** Bytes as text, for the CLI's messages. */
    public String toJsonString() {
        return new String(toJson(), StandardCharsets.UTF_8);
    }
}
