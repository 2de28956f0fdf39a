package io.opentmr.cluster;

import io.opentmr.protocol.NodeName;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.Date;
import java.util.HexFormat;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x500.X500NameBuilder;
import org.bouncycastle.asn1.x500.style.BCStyle;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * The keys that let a process into an installation's twin cluster: a cluster CA of the installation's own, and per
 * node an RSA key with a certificate that CA issued. Both nodes trust only that CA (mutual TLS on Artery), so a
 * process without keys from it can neither join nor read the cluster's traffic.
 *
 * <p>Layout: the authority directory holds {@code ca.key} (0600; only where new node keys are issued) and
 * {@code ca.crt}; a node's directory ({@code opentmr.node.cluster-keys-dir}) holds {@code tls.key} (0600),
 * {@code tls.crt} and {@code ca.crt}, the names Pekko's {@code RotatingKeysSSLEngineProvider} reads. Every node
 * certificate carries the same common name, {@code opentmr-cluster-<installation id>}, which that provider also
 * checks after the handshake, and the node's name as its organizational unit.
 *
 * <p>RSA, not EC: the provider loads RSA keys only. Files are never overwritten: a re-run that replaced the CA
 * would lock the other node out.
 */
public final class ClusterKeys {

    public static final String CA_KEY_FILE = "ca.key";
    public static final String CA_CERT_FILE = TwinSettings.CA_CERT_FILE;
    public static final int KEY_BITS = 3072;
    public static final Duration CA_VALIDITY = Duration.ofDays(20 * 366);
    public static final Duration NODE_VALIDITY = Duration.ofDays(10 * 366);

    private static final String CA_NAME_PREFIX = "OpenTMR cluster CA ";
    private static final String NODE_NAME_PREFIX = "opentmr-cluster-";
    private static final String SIGNATURE = "SHA256withRSA";

    private final SecureRandom random;
    private final Clock clock;
    private final int keyBits;

    /** {@code keyBits} below {@value #KEY_BITS} is for tests that generate many keys. */
    public ClusterKeys(SecureRandom random, Clock clock, int keyBits) {
        if (keyBits < 2048) {
            throw new IllegalArgumentException("RSA keys of at least 2048 bits, not " + keyBits);
        }
        this.random = random;
        this.clock = clock;
        this.keyBits = keyBits;
    }

    public ClusterKeys() {
        this(new SecureRandom(), Clock.systemUTC(), KEY_BITS);
    }

    /** Creates the installation's cluster CA in {@code dir}; returns its installation id. */
    public String createAuthority(Path dir) throws IOException {
        String id = HexFormat.of().formatHex(randomBytes(8));
        KeyPair ca = keyPair();
        X500Name name = new X500NameBuilder(BCStyle.INSTANCE).addRDN(BCStyle.CN, CA_NAME_PREFIX + id).build();
        Instant now = clock.instant();
        try {
            JcaX509ExtensionUtils extensions = new JcaX509ExtensionUtils();
            X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(name, serial(), Date.from(now.minusSeconds(60)),
                    Date.from(now.plus(CA_VALIDITY)), name, ca.getPublic())
                    .addExtension(Extension.basicConstraints, true, new BasicConstraints(0))
                    .addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign))
                    .addExtension(Extension.subjectKeyIdentifier, false,
                            extensions.createSubjectKeyIdentifier(ca.getPublic()));
            X509Certificate certificate = sign(builder, ca.getPrivate());
            Files.createDirectories(dir);
            writeNew(dir.resolve(CA_KEY_FILE), pem("PRIVATE KEY", ca.getPrivate().getEncoded()), true);
            writeNew(dir.resolve(CA_CERT_FILE), pem("CERTIFICATE", certificate.getEncoded()), false);
            return id;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("cannot create the cluster CA: " + e, e);
        }
    }

    /**
     * Issues the keys of node {@code nodeName} from the CA in {@code authorityDir} into {@code nodeDir}
     * ({@code tls.key}, {@code tls.crt}, {@code ca.crt}).
     */
    public void issue(Path authorityDir, String nodeName, Path nodeDir) throws IOException {
        String badName = NodeName.problem(nodeName);
        if (badName != null) {
            throw new IllegalArgumentException(badName);
        }
        try {
            X509Certificate caCertificate = readCertificate(authorityDir.resolve(CA_CERT_FILE));
            PrivateKey caKey = readPrivateKey(authorityDir.resolve(CA_KEY_FILE));
            X500Name issuer = X500Name.getInstance(caCertificate.getSubjectX500Principal().getEncoded());
            String caName = issuer.getRDNs(BCStyle.CN)[0].getFirst().getValue().toString();
            if (!caName.startsWith(CA_NAME_PREFIX)) {
                throw new IOException(authorityDir.resolve(CA_CERT_FILE) + " is not an OpenTMR cluster CA: " + caName);
            }
            String installation = caName.substring(CA_NAME_PREFIX.length());
            X500Name subject = new X500NameBuilder(BCStyle.INSTANCE)
                    .addRDN(BCStyle.CN, NODE_NAME_PREFIX + installation)
                    .addRDN(BCStyle.OU, nodeName)
                    .build();
            KeyPair node = keyPair();
            Instant now = clock.instant();
            JcaX509ExtensionUtils extensions = new JcaX509ExtensionUtils();
            X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(issuer, serial(),
                    Date.from(now.minusSeconds(60)), Date.from(now.plus(NODE_VALIDITY)), subject, node.getPublic())
                    .addExtension(Extension.basicConstraints, true, new BasicConstraints(false))
                    .addExtension(Extension.keyUsage, true,
                            new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyEncipherment))
                    // Every Artery connection is a TLS client on one side and a server on the other: both purposes.
                    .addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(
                            new KeyPurposeId[] {KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth}))
                    .addExtension(Extension.subjectKeyIdentifier, false,
                            extensions.createSubjectKeyIdentifier(node.getPublic()))
                    .addExtension(Extension.authorityKeyIdentifier, false,
                            extensions.createAuthorityKeyIdentifier(caCertificate));
            X509Certificate certificate = sign(builder, caKey);
            Files.createDirectories(nodeDir);
            writeNew(nodeDir.resolve(TwinSettings.KEY_FILE), pem("PRIVATE KEY", node.getPrivate().getEncoded()), true);
            writeNew(nodeDir.resolve(TwinSettings.CERT_FILE), pem("CERTIFICATE", certificate.getEncoded()), false);
            writeNew(nodeDir.resolve(TwinSettings.CA_CERT_FILE), pem("CERTIFICATE", caCertificate.getEncoded()), false);
        } catch (GeneralSecurityException e) {
            throw new IOException("cannot issue keys for " + nodeName + " from " + authorityDir + ": " + e, e);
        }
    }

    public static X509Certificate readCertificate(Path file) throws IOException, GeneralSecurityException {
        try (InputStream in = Files.newInputStream(file)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    private static PrivateKey readPrivateKey(Path file) throws IOException, GeneralSecurityException {
        String text = Files.readString(file, StandardCharsets.US_ASCII);
        String body = text.replace("-----BEGIN PRIVATE KEY-----", "").replace("-----END PRIVATE KEY-----", "");
        return KeyFactory.getInstance("RSA").generatePrivate(new PKCS8EncodedKeySpec(
                Base64.getMimeDecoder().decode(body)));
    }

    private KeyPair keyPair() {
        try {
            KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
            generator.initialize(keyBits, random);
            return generator.generateKeyPair();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("no RSA key pair generator: " + e, e);
        }
    }

    private X509Certificate sign(X509v3CertificateBuilder builder, PrivateKey key) throws GeneralSecurityException {
        try {
            return new JcaX509CertificateConverter().getCertificate(
                    builder.build(new JcaContentSignerBuilder(SIGNATURE).build(key)));
        } catch (OperatorCreationException e) {
            throw new GeneralSecurityException("cannot sign with " + SIGNATURE + ": " + e.getMessage(), e);
        }
    }

    private BigInteger serial() {
        return new BigInteger(1, randomBytes(16));
    }

    private byte[] randomBytes(int count) {
        byte[] bytes = new byte[count];
        random.nextBytes(bytes);
        return bytes;
    }

    private static String pem(String label, byte[] der) {
        return "-----BEGIN " + label + "-----\n"
                + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der)
                + "\n-----END " + label + "-----\n";
    }

    /** Creates the file (a private key readable by its owner only); an existing file is an error, never replaced. */
    private static void writeNew(Path file, String content, boolean secret) throws IOException {
        if (Files.exists(file)) {
            throw new FileAlreadyExistsException(file.toString(), null, "cluster keys are never overwritten");
        }
        if (secret) {
            Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.writeString(file, content, StandardCharsets.US_ASCII, StandardOpenOption.TRUNCATE_EXISTING);
        } else {
            Files.writeString(file, content, StandardCharsets.US_ASCII, StandardOpenOption.CREATE_NEW);
        }
    }
}
