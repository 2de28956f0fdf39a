package io.opentmr.license;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.Arrays;
import javax.crypto.BadPaddingException;
import javax.crypto.Cipher;
import javax.crypto.IllegalBlockSizeException;
import javax.crypto.Mac;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * The CRYPT operation: AES-128-CBC with PKCS#7 padding, key and IV derived from the product item's
 * secret and the caller's encryption code. Deterministic, so that the three identical TMR copies give
 * identical results and a TMR node can compare them. Documented with test vectors in
 * {@code docs/protocol.md}.
 *
 * <pre>
 * key = HMAC-SHA256(secret, "opentmr-crypt-key" ‖ u32 encryptionCode)[0..16)
 * iv  = HMAC-SHA256(secret, "opentmr-crypt-iv"  ‖ u32 encryptionCode)[0..16)
 * </pre>
 */
public final class CryptTransform {

    private CryptTransform() {
    }

    public static byte[] encrypt(byte[] secret, long encryptionCode, byte[] data) {
        try {
            return cipher(Cipher.ENCRYPT_MODE, secret, encryptionCode).doFinal(data);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-CBC encryption cannot fail on a fresh cipher", e);
        }
    }

    /**
     * @throws IllegalArgumentException if {@code data} is not a whole number of blocks or its padding is
     *                                  wrong: it was not encrypted with this secret and code
     */
    public static byte[] decrypt(byte[] secret, long encryptionCode, byte[] data) {
        try {
            return cipher(Cipher.DECRYPT_MODE, secret, encryptionCode).doFinal(data);
        } catch (IllegalBlockSizeException | BadPaddingException e) {
            throw new IllegalArgumentException("data of " + data.length
                    + " bytes was not encrypted with this product item and encryption code", e);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-CBC decryption setup failed", e);
        }
    }

    private static Cipher cipher(int mode, byte[] secret, long encryptionCode) throws GeneralSecurityException {
        Cipher cipher = Cipher.getInstance("AES/CBC/PKCS5Padding");
        cipher.init(mode, new SecretKeySpec(derive(secret, "opentmr-crypt-key", encryptionCode), "AES"),
                new IvParameterSpec(derive(secret, "opentmr-crypt-iv", encryptionCode)));
        return cipher;
    }

    private static byte[] derive(byte[] secret, String label, long encryptionCode) throws GeneralSecurityException {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(secret, "HmacSHA256"));
        mac.update(label.getBytes(StandardCharsets.US_ASCII));
        mac.update(ByteBuffer.allocate(Integer.BYTES).putInt((int) encryptionCode).array());
        return Arrays.copyOf(mac.doFinal(), 16);
    }
}
