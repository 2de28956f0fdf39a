package io.opentmr.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import io.opentmr.protocol.Frame;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.testing.NoLeaks;
import io.opentmr.protocol.testing.RawConnection;
import io.opentmr.testing.TmrTestGroup;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * A TMR node carries the requests of all its clients on one connection per backend: once it is
 * authenticated the connection may have far more requests in flight than a client's (64 by default), or
 * a node under load sees 309 on its own writes and re-syncs the backend for nothing.
 */
@Timeout(60)
@ExtendWith(NoLeaks.class)
class PeerInFlightTest {

    @TempDir
    Path dir;

    @Test
    void anAuthenticatedNodeMayHaveMoreRequestsInFlightThanAClient() throws Exception {
        try (TmrTestGroup group = new TmrTestGroup(dir);
             TmrTestGroup.Peer peer = group.peer("in-flight-node", 0)) {
            RawConnection connection = peer.connection();
            int requests = 300;
            List<byte[]> frames = new ArrayList<>();
            for (int id = 1000; id < 1000 + requests; id++) {
                frames.add(RawConnection.encode(new Frame(id, new Message.Inventory())));
            }
            // All in one write: the backend reads them before it answered any.
            connection.sendRaw(RawConnection.concat(frames));
            int overloaded = 0;
            for (int i = 0; i < requests; i++) {
                Message answer = connection.read().message();
                if (answer instanceof Message.Error error) {
                    assertEquals(309, error.code(), error.toString());
                    overloaded++;
                } else {
                    assertInstanceOf(Message.InventoryOk.class, answer);
                }
            }
            assertEquals(0, overloaded, "requests of an authenticated node refused with 309");
        }
    }
}
