package io.opentmr.launcher;

import io.opentmr.cluster.ClusterKeys;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code tmr node keys}: the keys that let the two nodes of a twin into their cluster (mutual TLS over Artery). The
 * installation's cluster CA is created on first use and kept; each node gets {@code tls.key}, {@code tls.crt} and
 * {@code ca.crt} in a directory of its own, to copy to its host as {@code --cluster-keys-dir}. Nothing is ever
 * overwritten: a node's directory that exists already is refused.
 */
@Command(name = "keys", mixinStandardHelpOptions = true,
        description = {"Create the twin cluster's keys: the installation's CA (once) and each named node's keys.",
                "Copy each node's directory to its host and give it as --cluster-keys-dir."})
final class NodeKeysCommand implements Callable<Integer> {

    @Option(names = "--ca-dir", required = true,
            description = "The installation's cluster CA (ca.key, 0600, and ca.crt); created if absent. Keep it "
                    + "off the nodes.")
    Path caDir;

    @Option(names = "--names", required = true, split = ",", description = "The nodes, e.g. node-a,node-b.")
    List<String> names;

    @Option(names = "--out", required = true,
            description = "Where each node's directory goes: OUT/NAME/{tls.key,tls.crt,ca.crt}.")
    Path out;

    @Override
    public Integer call() throws Exception {
        ClusterKeys keys = new ClusterKeys();
        if (!Files.exists(caDir.resolve(ClusterKeys.CA_CERT_FILE))) {
            String installation = keys.createAuthority(caDir);
            System.out.println("Cluster CA of installation " + installation + " created in " + caDir);
        }
        for (String name : names) {
            Path dir = out.resolve(name);
            if (Files.exists(dir)) {
                System.err.println("tmr: " + dir + " exists; its keys are kept (remove it to issue new ones)");
                return Output.USAGE;
            }
            keys.issue(caDir, name, dir);
            System.out.println("Keys of " + name + " written to " + dir);
        }
        return Output.OK;
    }
}
