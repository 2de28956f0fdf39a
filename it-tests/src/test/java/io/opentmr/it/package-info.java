/**
 * Multi-process tests that drive the built {@code tmr} launcher as separate processes: kill -9,
 * partitions, the chaos soak, and the benchmarks behind the {@code bench} profile.
 */
package io.opentmr.it;
