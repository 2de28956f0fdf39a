/**
 * Signed license files (DESIGN §4): vendor Ed25519 keys, container contexts, license update files
 * and the vendor's issuing of them. Licenses reach a backend only as update files signed by a vendor
 * key it trusts; the container applies one only if it names that container and the next firm
 * update counter.
 *
 * <p>Pure Java and Jackson: no actors, no network. The backend's container applies what this
 * package verified.
 */
package io.opentmr.license;
