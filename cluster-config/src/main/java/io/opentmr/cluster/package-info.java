/**
 * The twin cluster of DESIGN §6: {@link io.opentmr.cluster.TwinSettings} (the cluster keys and tuned timing read
 * once, rendered as the node's Pekko config), {@link io.opentmr.cluster.ClusterKeys} (the installation's CA and node
 * keys for mutual TLS) and {@link io.opentmr.cluster.TwinJoin} (joining as two nodes, name clashes). The backend
 * quorum lease, singleton and management HTTP come in later slices; see the module's README.
 *
 * <p>It builds on {@code core-actors} and must not know wire byte layouts or journal storage.
 */
package io.opentmr.cluster;
