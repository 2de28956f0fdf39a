package io.opentmr.backend;

import io.opentmr.license.Ed25519;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.Serial;
import java.security.PublicKey;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

/**
 * A TMR node's authenticated connection as the container sees it: leases are bound to it (a lease dies
 * the moment {@link #isOpen()} turns false, with no message to wait for), and it remembers which grant
 * signatures already verified, so a node that sends the same certificate with every request pays the
 * Ed25519 verification (~100 µs a signature) once per grant, not per request.
 *
 * <p>The signature memory is touched only by the container actor (one thread at a time); the session
 * only creates this object and hands it over with each command.
 */
final class PeerConnection {

    /** Grant signatures remembered per connection: a certificate holds 2–3 grants, renewed every TTL/2 or so. */
    static final int VERIFIED_GRANTS = 64;

    private static final AtomicLong IDS = new AtomicLong();

    private final long id = IDS.incrementAndGet();
    private final String node;
    private final String address;
    private final BooleanSupplier open;
    private final Map<Verified, Boolean> verified = new LinkedHashMap<>(16, 0.75f, true) {
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<Verified, Boolean> eldest) {
            return size() > VERIFIED_GRANTS;
        }
    };
    /** The key that last verified a grant of each grantor (a hint for its next grant, never a verdict). */
    private final Map<Serial, String> grantorKeys = new HashMap<>();
    /** Group keys decoded once (a key changes only with a new license file). */
    private final Map<String, PublicKey> publicKeys = new HashMap<>();
    private long verifications;

    private record Verified(LeaseGrant grant, String groupKey) {
    }

    /**
     * @param node    the node name the connection authenticated as (PEER_HELLO)
     * @param address the peer address, for logs
     * @param open    whether the connection is still open; read from the container's thread
     */
    PeerConnection(String node, String address, BooleanSupplier open) {
        this.node = node;
        this.address = address;
        this.open = open;
    }

    long id() {
        return id;
    }

    String node() {
        return node;
    }

    String address() {
        return address;
    }

    boolean isOpen() {
        return open.getAsBoolean();
    }

    /**
     * The group key (base64, one of {@code groupKeys}) whose signature {@code grant} carries, or null when
     * none verifies. Only successes are remembered: a forged grant costs its verifications every time.
     * The key that verified the grantor's last grant is tried first: a renewed grant (new issue time, so a new
     * signature) then costs one verification, not one per group key before its own.
     */
    String signer(LeaseGrant grant, List<String> groupKeys) {
        String known = verifiedSigner(grant, groupKeys);
        if (known != null) {
            return known;
        }
        byte[] payload = null;
        String hint = grantorKeys.get(grant.grantor());
        if (hint != null && groupKeys.contains(hint)) {
            payload = grant.signedPayload();
            if (verifies(grant, payload, hint)) {
                return hint;
            }
        }
        for (String key : groupKeys) {
            if (key.equals(hint)) {
                continue;
            }
            if (payload == null) {
                payload = grant.signedPayload();
            }
            if (verifies(grant, payload, key)) {
                return key;
            }
        }
        return null;
    }

    /** The group key whose signature {@code grant} was already found to carry, or null: nothing is verified here. */
    String verifiedSigner(LeaseGrant grant, List<String> groupKeys) {
        for (String key : groupKeys) {
            if (verified.get(new Verified(grant, key)) != null) {
                return key;
            }
        }
        return null;
    }

    private boolean verifies(LeaseGrant grant, byte[] payload, String key) {
        PublicKey publicKey = publicKeys.get(key);
        if (publicKey == null) {
            try {
                publicKey = Ed25519.publicKey(Base64.getDecoder().decode(key));
            } catch (IllegalArgumentException e) {
                return false;
            }
            if (publicKeys.size() >= VERIFIED_GRANTS) {
                publicKeys.clear();
            }
            publicKeys.put(key, publicKey);
        }
        verifications++;
        if (!Ed25519.verify(publicKey, payload, grant.signature().toArray())) {
            return false;
        }
        verified.put(new Verified(grant, key), Boolean.TRUE);
        if (grantorKeys.size() >= VERIFIED_GRANTS && !grantorKeys.containsKey(grant.grantor())) {
            grantorKeys.clear();
        }
        grantorKeys.put(grant.grantor(), key);
        return true;
    }

    /** Ed25519 verifications done so far: what the memory saves shows here. */
    long verifications() {
        return verifications;
    }

    @Override
    public String toString() {
        return "TMR node " + node + " (" + address + ")";
    }
}
