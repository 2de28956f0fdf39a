package io.opentmr.client;

import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.Serial;

/**
 * The operator's connection for admin requests: export a container's context and import signed
 * license update files (backends); step a twin's active TMR node down. A server accepts them from
 * loopback, or with its admin token.
 * Thread-safe; close it when done.
 */
public final class AdminClient implements AutoCloseable {

    private final ClientConnection connection;
    private final String adminToken;

    private AdminClient(ClientConnection connection, String adminToken) {
        this.connection = connection;
        this.adminToken = adminToken;
    }

    /**
     * Connects and says HELLO.
     *
     * @param adminToken the server's admin token, or {@code ""} on a loopback connection
     * @throws CmException 101 when no address answered; the server's error when it refused HELLO
     */
    public static AdminClient connect(TmrClientOptions options, String adminToken) {
        ClientConnection connection = ClientConnection.open(options);
        return new AdminClient(connection, adminToken);
    }

    /**
     * The context file of a container (serial, CmActId, firm update counters, public key), from which
     * the vendor issues update files.
     *
     * @param container the container, or {@link Serial#NONE} for the server's default one
     * @throws CmException 231 without loopback or token, 201 for an unknown container
     */
    public byte[] licenseContext(Serial container) {
        Message.LicenseContext request = new Message.LicenseContext(adminToken, container);
        return connection.call(request, true, null,
                reply -> LicenseHandle.expect(request, reply, Message.LicenseContextOk.class).context().toArray());
    }

    /**
     * Applies a signed license update file. Not repeated after a connection loss: a file applied
     * twice is refused as a replay (231), so the caller decides.
     *
     * @return the container, firm code and firm update counter the file moved it to
     * @throws CmException 105 malformed, 201 wrong container, 231 signature, vendor key or counter
     */
    public Message.LicenseUpdateOk importLicense(byte[] updateFile) {
        Message.LicenseUpdate request = new Message.LicenseUpdate(adminToken, Bytes.of(updateFile));
        return connection.call(request, false, null,
                reply -> LicenseHandle.expect(request, reply, Message.LicenseUpdateOk.class));
    }

    /**
     * Asks a twin's active TMR node to hand the active role over to its standby (planned switch-over): answered
     * once the standby has every record and the lease is given back; the node then restarts as the standby. Not
     * repeated after a connection loss. Address the active node alone: on a standby the SDK follows NOT_ACTIVE.
     *
     * @throws CmException 130 when the node has no standby in sync (it keeps serving), 105 when it is not the
     *                     serving active node, 231 without loopback or token
     */
    public void stepDown() {
        Message.NodeStepDown request = new Message.NodeStepDown(adminToken);
        connection.call(request, false, null, reply -> LicenseHandle.expect(request, reply, Message.Ok.class));
    }

    @Override
    public void close() {
        connection.close();
    }
}
