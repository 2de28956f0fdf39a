/**
 * Which clients may talk to a server: the access list that a backend ({@code opentmr.backend.access-list}) and a
 * TMR node ({@code opentmr.node.access-list}) check at HELLO. Plain rules, no I/O: no DNS look-up ever runs.
 */
package io.opentmr.access;
