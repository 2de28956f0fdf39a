package io.opentmr.protocol.testing;

import net.jqwik.api.lifecycle.AroundPropertyHook;
import net.jqwik.api.lifecycle.PropertyExecutionResult;
import net.jqwik.api.lifecycle.PropertyExecutor;
import net.jqwik.api.lifecycle.PropertyLifecycleContext;

/** jqwik lifecycle hook: a property whose tries leaked a {@code ByteBuf} fails. */
public final class NoLeaksHook implements AroundPropertyHook {

    @Override
    public PropertyExecutionResult aroundProperty(PropertyLifecycleContext context, PropertyExecutor property) {
        PropertyExecutionResult result = property.execute();
        if (result.status() != PropertyExecutionResult.Status.SUCCESSFUL) {
            return result;
        }
        try {
            LeakCheck.assertNoLeaks();
            return result;
        } catch (AssertionError leak) {
            return result.mapToFailed(leak);
        }
    }
}
