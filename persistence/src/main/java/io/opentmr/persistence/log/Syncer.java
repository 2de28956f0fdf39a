package io.opentmr.persistence.log;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;

/**
 * The one place the log forces data to the device. A seam so tests can count fsyncs and learn how far each file is
 * durable (to simulate power loss by cutting files back to that offset).
 */
@FunctionalInterface
public interface Syncer {

    /** Forces {@code channel} (the segment {@code file}) to the device; when this returns, {@code size} bytes are durable. */
    void sync(Path file, FileChannel channel, long size) throws IOException;

    /** The production syncer: {@code force(false)}, since segment metadata other than the size does not matter. */
    Syncer FORCE = (file, channel, size) -> channel.force(false);
}
