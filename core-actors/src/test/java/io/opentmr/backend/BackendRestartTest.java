package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import io.opentmr.license.LicenseIssuer;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Frame;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.RawConnection;
import java.nio.file.Path;
import java.time.Clock;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** A backend stopped and started again on the same data directory: real actor systems, the durable journal. */
@Timeout(120)
class BackendRestartTest {

    @TempDir
    Path dir;

    @Test
    void anAccessReSentAfterARestartGetsTheSameHandleAndToken() throws Exception {
        Message.AccessOk first;
        Message.Access access = new Message.Access(TestBackend.FIRM, 42, 0, AccessMode.USERLIMIT);
        try (TestBackend backend = new TestBackend(dir, Clock.systemUTC(), TestBackend.durable(dir))) {
            backend.issueAndImport(new LicenseIssuer.Request(TestBackend.FIRM, 42, 5, false, null, null, null, null,
                    null, 0, "retried"));
            try (RawConnection client = new RawConnection(backend.address())) {
                client.hello();
                first = (Message.AccessOk) request(client, 77, access);
            }
        }
        try (TestBackend backend = new TestBackend(dir, Clock.systemUTC(), TestBackend.durable(dir));
             RawConnection client = new RawConnection(backend.address())) {
            // The same client (address, host, user, pid) re-sends request 77 on a new session: its reply was lost.
            client.hello();
            Message again = request(client, 77, access);
            assertEquals(first, assertInstanceOf(Message.AccessOk.class, again), "the handle of the first ACCESS");
            Message other = request(client, 78, access);
            assertNotEquals(first.handleId(), assertInstanceOf(Message.AccessOk.class, other).handleId(),
                    "another request id is another ACCESS");
            Message listed = request(client, 79, new Message.ListContainers());
            assertEquals(2, assertInstanceOf(Message.ContainerList.class, listed).containers().get(0).products()
                    .get(0).inUse(), "two seats, not three");
        }
    }

    /** A request with the client's own id: a re-sent request carries the id of the first. */
    private static Message request(RawConnection client, int id, Message message) throws Exception {
        client.send(id, message);
        Frame reply = client.read();
        assertEquals(id, reply.requestId());
        return reply.message();
    }
}
