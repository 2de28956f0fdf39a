package io.opentmr.license;

import com.fasterxml.jackson.core.JsonProcessingException;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.GroupKeyStatement;
import java.io.IOException;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.util.Base64;
import java.util.Collection;

/**
 * A signed license update file. The JSON envelope carries the vendor's public key, the body (the
 * {@link LicenseUpdate} as JSON, base64, so that the signature covers exact bytes and no JSON
 * canonicalisation is needed) and the Ed25519 signature over those body bytes.
 *
 * @param format    {@link #FORMAT}
 * @param vendorKey raw vendor public key, base64: names which trusted key must verify it
 * @param body      base64 of the body's JSON bytes
 * @param signature base64 of the vendor's Ed25519 signature over the body's JSON bytes
 */
public record LicenseUpdateFile(String format, String vendorKey, String body, String signature) {

    public static final String FORMAT = "opentmr-license-update/1";

    /** Signs {@code update} with the vendor's key. */
    public static LicenseUpdateFile sign(LicenseUpdate update, PrivateKey vendorPrivate, PublicKey vendorPublic) {
        try {
            byte[] bodyBytes = LicenseJson.MAPPER.writeValueAsBytes(update);
            Base64.Encoder base64 = Base64.getEncoder();
            return new LicenseUpdateFile(FORMAT, base64.encodeToString(Ed25519.raw(vendorPublic)),
                    base64.encodeToString(bodyBytes), base64.encodeToString(Ed25519.sign(vendorPrivate, bodyBytes)));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("an update always serialises", e);
        }
    }

    public byte[] toJson() {
        try {
            return LicenseJson.MAPPER.writeValueAsBytes(this);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("an update file always serialises", e);
        }
    }

    /**
     * The container a file is for, read from its body without checking the signature: where a TMR node sends it.
     * The container that gets it verifies it.
     *
     * @throws LicenseRefusedException 105 for a file that is not a license update file
     */
    public static io.opentmr.protocol.Serial target(byte[] file) throws LicenseRefusedException {
        try {
            LicenseUpdateFile envelope = LicenseJson.MAPPER.readValue(file, LicenseUpdateFile.class);
            LicenseUpdate update = LicenseJson.MAPPER.readValue(Base64.getDecoder().decode(envelope.body()),
                    LicenseUpdate.class);
            return io.opentmr.protocol.Serial.parse(update.target());
        } catch (IOException | RuntimeException e) {
            throw new LicenseRefusedException(CmError.INVALID_PARAMETER, "not a license update file: " + e.getMessage());
        }
    }

    /**
     * Checks the file's form and signature against the vendor keys this server trusts and returns its
     * content. Whether it fits the target container (serial, next counter) is the container's check.
     *
     * @throws LicenseRefusedException 105 for a malformed file, 231 for an unknown vendor key or a bad
     *                                 signature
     */
    public static LicenseUpdate verify(byte[] file, Collection<PublicKey> trustedVendorKeys)
            throws LicenseRefusedException {
        LicenseUpdateFile envelope;
        byte[] rawVendorKey;
        byte[] bodyBytes;
        byte[] signatureBytes;
        try {
            envelope = LicenseJson.MAPPER.readValue(file, LicenseUpdateFile.class);
            if (!FORMAT.equals(envelope.format())) {
                throw new LicenseRefusedException(CmError.INVALID_PARAMETER,
                        "not a license update file of format " + FORMAT + ": " + envelope.format());
            }
            Base64.Decoder base64 = Base64.getDecoder();
            rawVendorKey = base64.decode(envelope.vendorKey());
            bodyBytes = base64.decode(envelope.body());
            signatureBytes = base64.decode(envelope.signature());
        } catch (IOException | IllegalArgumentException | NullPointerException e) {
            throw new LicenseRefusedException(CmError.INVALID_PARAMETER,
                    "malformed license update file: " + ContainerContext.firstLine(e.getMessage()), e);
        }

        PublicKey signer = null;
        for (PublicKey trusted : trustedVendorKeys) {
            if (java.util.Arrays.equals(Ed25519.raw(trusted), rawVendorKey)) {
                signer = trusted;
                break;
            }
        }
        String fingerprint = rawVendorKey.length == Ed25519.RAW_PUBLIC_KEY_BYTES
                ? Ed25519.fingerprint(rawVendorKey) : "(not a key)";
        if (signer == null) {
            throw new LicenseRefusedException(CmError.ACCESS_DENIED,
                    "license update signed by vendor key " + fingerprint + ", which this server does not trust");
        }
        if (!Ed25519.verify(signer, bodyBytes, signatureBytes)) {
            throw new LicenseRefusedException(CmError.ACCESS_DENIED,
                    "bad signature on license update: the file was altered or not signed by vendor key " + fingerprint);
        }
        LicenseUpdate update;
        try {
            update = LicenseJson.MAPPER.readValue(bodyBytes, LicenseUpdate.class);
        } catch (IOException | IllegalArgumentException e) {
            // Signed but unreadable: the vendor's tool wrote something this server does not understand.
            throw new LicenseRefusedException(CmError.INVALID_PARAMETER,
                    "malformed license update content: " + ContainerContext.firstLine(e.getMessage()), e);
        }
        GroupKeyStatement statement = update.groupStatement();
        // Checked once here, at import: the copy keeps it and its borrow tickets carry it unchecked by the servers.
        if (statement != null && (!java.util.Arrays.equals(statement.vendorKey().toArray(), rawVendorKey)
                || !statement.signatureHolds())) {
            throw new LicenseRefusedException(CmError.ACCESS_DENIED, "the group key statement in the license update "
                    + "is not signed by the file's vendor key " + fingerprint + " (signed by " + statement
                    .vendorFingerprint() + (statement.signatureHolds() ? ")" : ", and its signature does not hold)"));
        }
        return update;
    }
}
