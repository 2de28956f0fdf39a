package io.opentmr.protocol;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The vendor's signed statement of a TMR group: which three backend containers (serial and public key) hold the
 * copies of a firm's TMR licenses under one CmActId. The vendor's {@code tmr license issue --tmr} writes it into
 * the three license files; each backend keeps it with the copy and hands it to the node with its signature of a
 * borrow ticket, and the ticket carries it, so that a program checks a ticket of a virtual container offline with
 * the vendor's public key alone. Documented in {@code docs/license-files.md}.
 *
 * <p>Binary, big-endian: the ASCII label {@value #LABEL}, {@code u32 firmCode}, {@code u32 cmActId}, {@code u8 n},
 * {@code n} times ({@code u8 mask, u32 number, 32-byte raw Ed25519 key}), the 32-byte raw vendor public key, and
 * the vendor's 64-byte Ed25519 signature over every byte before it.
 *
 * @param firmCode  the firm whose TMR licenses the group holds
 * @param cmActId   the CmActId the three containers share
 * @param members   the containers, in the order of the license files' {@code tmrGroupKeys}
 * @param vendorKey the vendor's raw public key that signed it (named so that a wrong one is told apart from a
 *                  bad signature)
 * @param signature the vendor's signature over {@link #signedPayload()}, empty while unsigned
 */
public record GroupKeyStatement(long firmCode, long cmActId, List<Member> members, Bytes vendorKey, Bytes signature) {

    public static final String LABEL = "opentmr-group-keys/1";
    private static final byte[] LABEL_BYTES = LABEL.getBytes(StandardCharsets.US_ASCII);
    private static final int MEMBER_BYTES = 1 + 4 + Ed25519Keys.PUBLIC_KEY_BYTES;

    /** A container of the group. */
    public record Member(Serial serial, Bytes publicKey) {
        public Member {
            Check.notNull(serial, "serial");
            Check.notNull(publicKey, "publicKey");
            if (publicKey.length() != Ed25519Keys.PUBLIC_KEY_BYTES) {
                throw new IllegalArgumentException("the key of " + serial + " has " + publicKey.length()
                        + " bytes, not " + Ed25519Keys.PUBLIC_KEY_BYTES);
            }
        }
    }

    public GroupKeyStatement {
        Check.u32(firmCode, "firmCode");
        Check.u32(cmActId, "cmActId");
        members = Check.list(members, "members");
        Check.notNull(vendorKey, "vendorKey");
        Check.notNull(signature, "signature");
        if (members.size() < 2 || members.size() > 255) {
            throw new IllegalArgumentException("a group names 2..255 containers, not " + members.size());
        }
        Set<Serial> serials = new HashSet<>();
        Set<Bytes> keys = new HashSet<>();
        for (Member member : members) {
            if (!serials.add(member.serial()) || !keys.add(member.publicKey())) {
                throw new IllegalArgumentException("container " + member.serial() + " or its key is named twice");
            }
        }
        if (vendorKey.length() != Ed25519Keys.PUBLIC_KEY_BYTES) {
            throw new IllegalArgumentException("the vendor key has " + vendorKey.length() + " bytes, not "
                    + Ed25519Keys.PUBLIC_KEY_BYTES);
        }
        if (!signature.isEmpty() && signature.length() != Ed25519Keys.SIGNATURE_BYTES) {
            throw new IllegalArgumentException("the vendor signature has " + signature.length() + " bytes, not "
                    + Ed25519Keys.SIGNATURE_BYTES);
        }
    }

    /** The bytes the vendor signs: everything but the signature. */
    public byte[] signedPayload() {
        ByteBuffer out = ByteBuffer.allocate(LABEL_BYTES.length + 4 + 4 + 1 + members.size() * MEMBER_BYTES
                + Ed25519Keys.PUBLIC_KEY_BYTES);
        out.put(LABEL_BYTES).putInt((int) firmCode).putInt((int) cmActId).put((byte) members.size());
        for (Member member : members) {
            out.put((byte) member.serial().mask()).putInt((int) member.serial().number())
                    .put(member.publicKey().unsafeArray());
        }
        out.put(vendorKey.unsafeArray());
        return out.array();
    }

    /** The same statement with the vendor's signature. */
    public GroupKeyStatement withSignature(Bytes vendorSignature) {
        return new GroupKeyStatement(firmCode, cmActId, members, vendorKey, vendorSignature);
    }

    /** The signed statement's bytes. */
    public Bytes encode() {
        if (signature.isEmpty()) {
            throw new IllegalStateException("an unsigned statement is not written");
        }
        byte[] payload = signedPayload();
        byte[] all = new byte[payload.length + signature.length()];
        System.arraycopy(payload, 0, all, 0, payload.length);
        System.arraycopy(signature.unsafeArray(), 0, all, payload.length, signature.length());
        return Bytes.wrap(all);
    }

    /**
     * Reads a signed statement; its signature is not checked here ({@link #signatureHolds()}).
     *
     * @throws IllegalArgumentException for bytes that are not a statement of this format
     */
    public static GroupKeyStatement parse(Bytes bytes) {
        ByteBuffer in = ByteBuffer.wrap(bytes.unsafeArray());
        try {
            byte[] label = new byte[LABEL_BYTES.length];
            in.get(label);
            if (!java.util.Arrays.equals(label, LABEL_BYTES)) {
                throw new IllegalArgumentException("not a group key statement of format " + LABEL);
            }
            long firmCode = in.getInt() & 0xFFFF_FFFFL;
            long cmActId = in.getInt() & 0xFFFF_FFFFL;
            int n = in.get() & 0xFF;
            Member[] members = new Member[n];
            for (int i = 0; i < n; i++) {
                int mask = in.get() & 0xFF;
                long number = in.getInt() & 0xFFFF_FFFFL;
                members[i] = new Member(new Serial(mask, number), Bytes.wrap(take(in, Ed25519Keys.PUBLIC_KEY_BYTES)));
            }
            Bytes vendorKey = Bytes.wrap(take(in, Ed25519Keys.PUBLIC_KEY_BYTES));
            Bytes signature = Bytes.wrap(take(in, Ed25519Keys.SIGNATURE_BYTES));
            if (in.hasRemaining()) {
                throw new IllegalArgumentException(in.remaining() + " bytes follow the group key statement");
            }
            return new GroupKeyStatement(firmCode, cmActId, List.of(members), vendorKey, signature);
        } catch (BufferUnderflowException e) {
            throw new IllegalArgumentException("the group key statement is truncated");
        }
    }

    /** Whether the signature is that of {@link #vendorKey()} over the statement: one Ed25519 check. */
    public boolean signatureHolds() {
        try {
            return Ed25519Keys.verify(Ed25519Keys.publicKey(vendorKey.unsafeArray()), signedPayload(),
                    signature.unsafeArray());
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    /** The place of the container with this raw key among the members, or -1. */
    public int indexOf(Bytes publicKey) {
        for (int i = 0; i < members.size(); i++) {
            if (members.get(i).publicKey().equals(publicKey)) {
                return i;
            }
        }
        return -1;
    }

    /** The short name of the vendor key, for error texts. */
    public String vendorFingerprint() {
        return Ed25519Keys.fingerprint(vendorKey.unsafeArray());
    }

    private static byte[] take(ByteBuffer in, int length) {
        byte[] value = new byte[length];
        in.get(value);
        return value;
    }

    @Override
    public String toString() {
        return "GroupKeyStatement[firm " + firmCode + ", CmActId " + cmActId + ", " + members.stream()
                .map(m -> m.serial() + " " + Ed25519Keys.fingerprint(m.publicKey().unsafeArray())).toList()
                + ", vendor key " + vendorFingerprint() + "]";
    }
}
