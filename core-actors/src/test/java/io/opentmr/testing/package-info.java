/**
 * Test support shared by backend and node tests, here and (through core-actors' test-jar) in the modules
 * above: {@link io.opentmr.testing.TmrTestGroup}, three real backends in one JVM and a TMR node over them,
 * with kill / restart of a backend and cut / frozen / delayed links ({@link io.opentmr.testing.LinkControl}).
 * Loopback addresses only; every wait bounded ({@link io.opentmr.testing.Await}).
 */
package io.opentmr.testing;
