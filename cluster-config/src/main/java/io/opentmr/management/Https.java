package io.opentmr.management;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.Collection;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import org.apache.pekko.pki.pem.DERPrivateKeyLoader;
import org.apache.pekko.pki.pem.PEMDecoder;
import org.apache.pekko.pki.pem.PEMLoadingException;

/** The server side of management HTTPS, from a PEM certificate chain and its private key. */
final class Https {

    private Https() {
    }

    /** PKCS#8 ("PRIVATE KEY") of RSA, EC or Ed25519; PKCS#1 ("RSA PRIVATE KEY") through Pekko's loader. */
    private static PrivateKey privateKey(PEMDecoder.DERData der) throws GeneralSecurityException, PEMLoadingException {
        if (!"PRIVATE KEY".equals(der.label())) {
            return DERPrivateKeyLoader.load(der);
        }
        GeneralSecurityException last = null;
        for (String algorithm : new String[] {"RSA", "EC", "Ed25519"}) {
            try {
                return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der.bytes()));
            } catch (GeneralSecurityException e) {
                last = e;
            }
        }
        throw last;
    }

    /**
     * @throws IllegalArgumentException naming the file and what is wrong with it
     */
    static SSLContext context(ManagementSettings.Pem pem) {
        Certificate[] chain;
        try (var in = new ByteArrayInputStream(Files.readAllBytes(pem.certificate()))) {
            Collection<? extends Certificate> read = CertificateFactory.getInstance("X.509").generateCertificates(in);
            if (read.isEmpty()) {
                throw new IllegalArgumentException(pem.certificate() + " holds no certificate");
            }
            chain = read.toArray(new Certificate[0]);
        } catch (IOException | GeneralSecurityException e) {
            throw new IllegalArgumentException("cannot read the certificate " + pem.certificate() + ": " + e.getMessage(), e);
        }
        PrivateKey key;
        try {
            key = privateKey(PEMDecoder.decode(Files.readString(pem.privateKey(), StandardCharsets.US_ASCII)));
        } catch (IOException | PEMLoadingException | GeneralSecurityException e) {
            throw new IllegalArgumentException("cannot read the private key " + pem.privateKey() + ": " + e.getMessage(), e);
        }
        try {
            char[] password = new char[0];
            KeyStore store = KeyStore.getInstance("PKCS12");
            store.load(null, null);
            store.setKeyEntry("opentmr-management", key, password, chain);
            KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            keys.init(store, password);
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(keys.getKeyManagers(), null, null);
            return context;
        } catch (GeneralSecurityException | IOException e) {
            throw new IllegalArgumentException("the private key " + pem.privateKey() + " does not fit the certificate "
                    + pem.certificate() + ": " + e.getMessage(), e);
        }
    }
}
