package io.opentmr.protocol.testing;

import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/** JUnit Jupiter extension: a test that leaks a {@code ByteBuf} fails. */
public final class NoLeaks implements AfterEachCallback {

    @Override
    public void afterEach(ExtensionContext context) {
        LeakCheck.assertNoLeaks();
    }
}
