package io.opentmr.launcher;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;

/**
 * Runs an action on SIGHUP (what {@code systemctl reload} and {@code kill -HUP} send). Through {@code sun.misc.Signal}
 * by reflection: the JDK has no public signal API, and javac refuses to compile a direct use without a warning.
 */
final class Hangup {

    private Hangup() {
    }

    /** @return whether the handler is installed (false on a JVM without {@code sun.misc.Signal}, or with -Xrs) */
    static boolean onHangup(Runnable action) {
        try {
            Class<?> signalClass = Class.forName("sun.misc.Signal");
            Class<?> handlerClass = Class.forName("sun.misc.SignalHandler");
            Object signal = signalClass.getConstructor(String.class).newInstance("HUP");
            InvocationHandler invocation = (Object proxy, Method method, Object[] args) -> {
                switch (method.getName()) {
                    case "handle" -> action.run();
                    case "hashCode" -> {
                        return System.identityHashCode(proxy);
                    }
                    case "equals" -> {
                        return proxy == args[0];
                    }
                    case "toString" -> {
                        return "opentmr SIGHUP handler";
                    }
                    default -> {
                    }
                }
                return null;
            };
            Object handler = Proxy.newProxyInstance(Hangup.class.getClassLoader(), new Class<?>[] {handlerClass},
                    invocation);
            signalClass.getMethod("handle", signalClass, handlerClass).invoke(null, signal, handler);
            return true;
        } catch (ReflectiveOperationException | RuntimeException e) {
            return false;
        }
    }
}
