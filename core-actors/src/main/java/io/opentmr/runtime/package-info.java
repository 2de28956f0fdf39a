/**
 * How a backend's or a node's process uses its threads: {@link io.opentmr.runtime.ProcessThreads}.
 */
package io.opentmr.runtime;
