package io.opentmr.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** {@code tmr node}'s usage errors, and the parts of {@code tmr demo} that need no node: its files and checks. */
@Timeout(60)
class NodeAndDemoCommandTest {

    @TempDir
    Path dir;

    private record Run(int exit, String err) {
    }

    private static Run run(String... args) {
        StringWriter err = new StringWriter();
        var commandLine = Tmr.commandLine();
        commandLine.setErr(new PrintWriter(err, true));
        return new Run(commandLine.execute(args), err.toString());
    }

    private Path secret() throws Exception {
        Path file = dir.resolve("cluster.secret");
        Files.writeString(file, "s".repeat(40));
        return file;
    }

    private static void assertUsageError(Run run, String... named) {
        assertEquals(2, run.exit(), run.err());
        for (String name : named) {
            assertTrue(run.err().contains(name), "names " + name + ": " + run.err());
        }
    }

    @Test
    void aNodeWithoutItsBackendsIsAUsageErrorNamingFlagAndKey() throws Exception {
        assertUsageError(run("node", "--data-dir", dir.toString(), "--secret-file", secret().toString()),
                "--backends", "opentmr.node.backends");
        assertUsageError(run("node", "--data-dir", dir.toString(), "--secret-file", secret().toString(),
                "--backends", "127.0.1.1:22350,127.0.1.2:22350"), "--backends", "exactly 3");
        assertUsageError(run("node", "--data-dir", dir.toString(), "--secret-file", secret().toString(),
                "--backends", "127.0.1.1:22350,127.0.1.2:x,127.0.1.3"), "--backends", "bad port");
    }

    @Test
    void aNodeWithoutTheClusterSecretIsAUsageErrorNamingFlagAndKey() throws Exception {
        String backends = "127.0.1.1:22350,127.0.1.2:22350,127.0.1.3:22350";
        assertUsageError(run("node", "--data-dir", dir.toString(), "--backends", backends),
                "--secret-file", "opentmr.cluster.secret-file");
        Path shortSecret = dir.resolve("short.secret");
        Files.writeString(shortSecret, "too short");
        assertUsageError(run("node", "--data-dir", dir.toString(), "--backends", backends, "--secret-file",
                shortSecret.toString()), "--secret-file", "at least 32");
        assertUsageError(run("node", "--data-dir", dir.toString(), "--backends", backends, "--secret-file",
                dir.resolve("missing.secret").toString()), "--secret-file", "cannot read");
    }

    @Test
    void anAdminTokenFileOthersCanReadIsAUsageErrorNamingFlagAndKey() throws Exception {
        String backends = "127.0.1.1:22350,127.0.1.2:22350,127.0.1.3:22350";
        Path token = dir.resolve("admin.token");
        Files.writeString(token, "0123456789abcdef0123456789abcdef\n");
        Files.setPosixFilePermissions(token, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        assertUsageError(run("node", "--name", "node-a", "--data-dir", dir.toString(), "--backends", backends,
                "--secret-file", secret().toString(), "--admin-token-file", token.toString()),
                "--admin-token-file", "opentmr.admin.token-file", "chmod 600");
        assertUsageError(run("backend", "--data-dir", dir.resolve("b").toString(), "--cm-act-id", "7",
                "--admin-token-file", token.toString()), "opentmr.admin.token-file", "chmod 600");
    }

    @Test
    void aNodeWithoutItsDataDirectoryIsAUsageError() throws Exception {
        assertUsageError(run("node", "--backends", "a:1,b:2,c:3", "--secret-file", secret().toString()),
                "--data-dir", "opentmr.node.data-dir");
        assertUsageError(run("node", "--no-such-flag"));
    }

    @Test
    void aNodeWithoutAValidNameIsAUsageErrorNamingFlagAndKey() throws Exception {
        String backends = "127.0.1.1:22350,127.0.1.2:22350,127.0.1.3:22350";
        String[] rest = {"node", "--data-dir", dir.toString(), "--backends", backends, "--secret-file",
                secret().toString()};
        assertUsageError(run(rest), "--name", "opentmr.node.name", "required");
        for (String bad : List.of("", "  ", "-node", "node a", "node/a", "nöde", "n".repeat(65))) {
            String[] args = Stream.concat(Stream.of(rest), Stream.of("--name", bad)).toArray(String[]::new);
            assertUsageError(run(args), "--name", "opentmr.node.name");
        }
        Path conf = dir.resolve("bad-name.conf");
        Files.writeString(conf, "opentmr.node.name = \"node\\na\"\n");
        String[] fromFile = Stream.concat(Stream.of(rest), Stream.of("--config", conf.toString()))
                .toArray(String[]::new);
        assertUsageError(run(fromFile), "opentmr.node.name", "\\u000a");
    }

    @Test
    void theDemoRunsEachNodeUnderItsComponentNameAsOneNodeOfTheTwin() throws Exception {
        DemoCommand demo = new DemoCommand();
        demo.nodes = 2;
        demo.clusterPort = 25520;
        List<String> args = demo.nodeArgs("node-b", "127.0.2.2", 22350, dir.resolve("node-b"),
                List.of("127.0.1.1:22350", "127.0.1.2:22350", "127.0.1.3:22350"), secret(), dir);
        assertEquals("node", args.get(0));
        NodeCommand command = new NodeCommand();
        new picocli.CommandLine(command).parseArgs(args.subList(1, args.size()).toArray(String[]::new));
        var resolved = command.resolve();
        assertEquals("node-b", resolved.getString(NodeCommand.NAME));
        assertEquals(List.of("127.0.2.1:25520", "127.0.2.2:25520"), resolved.getStringList(NodeCommand.SEED_NODES));
        assertEquals(dir.resolve("cluster-keys").resolve("node-b").toString(),
                resolved.getString(NodeCommand.CLUSTER_KEYS_DIR));
        var keys = new io.opentmr.cluster.ClusterKeys(new java.security.SecureRandom(), java.time.Clock.systemUTC(), 2048);
        keys.createAuthority(dir.resolve("cluster-keys").resolve("ca"));
        keys.issue(dir.resolve("cluster-keys").resolve("ca"), "node-b", dir.resolve("cluster-keys").resolve("node-b"));
        var twin = io.opentmr.cluster.TwinSettings.from(resolved);
        assertEquals("127.0.2.2:25520", twin.self().toString(), "the cluster binds the node's own address");

        demo.nodes = 1;
        NodeCommand single = new NodeCommand();
        List<String> alone = demo.nodeArgs("node-a", "127.0.2.1", 22350, dir.resolve("node-a"),
                List.of("127.0.1.1:22350", "127.0.1.2:22350", "127.0.1.3:22350"), secret(), dir);
        new picocli.CommandLine(single).parseArgs(alone.subList(1, alone.size()).toArray(String[]::new));
        assertTrue(single.resolve().getStringList(NodeCommand.SEED_NODES).isEmpty(), "one node: no twin");
    }

    @Test
    void aConfigFileCanNameTheBackendsAndTheFlagsWin() throws Exception {
        Path conf = dir.resolve("node.conf");
        Files.writeString(conf, "opentmr.node { data-dir = \"" + dir + "\", backends = [\"a:1\", \"b:2\", \"c:3\"], "
                + "port = 1, name = node-b }\nopentmr.cluster.secret-file = \"" + secret() + "\"\n");
        NodeCommand command = new NodeCommand();
        command.config = conf;
        command.port = 23000;
        var resolved = command.resolve();
        assertEquals(List.of("a:1", "b:2", "c:3"), resolved.getStringList(NodeCommand.BACKENDS));
        assertEquals("node-b", resolved.getString(NodeCommand.NAME));
        assertEquals(23000, resolved.getInt(NodeCommand.PORT), "the flag wins over the file");
        assertEquals(dir.resolve("journal").toString(), resolved.getString("opentmr.persistence.dir"),
                "the journal lives in the node's data directory");
    }

    @Test
    void theDemoSecretIsOwnerOnlyLongEnoughAndKept() throws Exception {
        Path file = DemoFiles.clusterSecret(dir.resolve("demo/cluster.secret"), new SecureRandom());
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
        String secret = Files.readString(file).strip();
        assertTrue(secret.length() >= 32, secret);
        io.opentmr.protocol.PeerAuth.fromFile(file);

        DemoFiles.clusterSecret(file, new SecureRandom());
        assertEquals(secret, Files.readString(file).strip(), "a second run keeps the secret the backends know");

        Path tooShort = dir.resolve("short.secret");
        Files.writeString(tooShort, "short");
        assertThrows(IllegalArgumentException.class, () -> DemoFiles.clusterSecret(tooShort, new SecureRandom()));
    }

    @Test
    void demoJsonListsTheComponentsAndIsReplacedWhole() throws Exception {
        List<DemoFiles.Component> components = List.of(
                new DemoFiles.Component("backend-1", "backend", "127.0.1.1:22350", 101, dir.resolve("b1.log")),
                new DemoFiles.Component("node-a", "active", "127.0.2.1:22350", "http://127.0.2.1:7626", 104,
                        dir.resolve("n.log")));
        DemoFiles.writeManifest(dir, components, Map.of("virtualContainer", "131-59885682"));
        Path file = DemoFiles.writeManifest(dir, components, Map.of("virtualContainer", "131-59885682"));

        JsonNode json = new ObjectMapper().readTree(file.toFile());
        assertEquals(2, json.get("components").size());
        JsonNode node = json.get("components").get(1);
        assertEquals("node-a", node.get("name").asText());
        assertEquals("active", node.get("role").asText());
        assertEquals("127.0.2.1:22350", node.get("address").asText());
        assertEquals(104, node.get("pid").asLong());
        assertEquals("http://127.0.2.1:7626", node.get("admin").asText());
        assertTrue(json.get("components").get(0).get("admin").isNull());
        assertEquals(dir.resolve("n.log").toString(), node.get("log").asText());
        assertEquals("131-59885682", json.get("virtualContainer").asText());
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList(), "no temporary file left beside demo.json");
        }
        assertTrue(DemoFiles.table(components).contains(
                "node-a     active   127.0.2.1:22350    http://127.0.2.1:7626  104"), DemoFiles.table(components));
    }

    @Test
    void theDemoSaysWhyItCannotBind() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            IllegalStateException inUse = assertThrows(IllegalStateException.class,
                    () -> DemoCommand.checkBindable(List.of("127.0.0.1:" + taken.getLocalPort())));
            assertTrue(inUse.getMessage().contains("already listens"), inUse.getMessage());
        }
        // TEST-NET-1: no interface of this machine has it.
        IllegalStateException foreign = assertThrows(IllegalStateException.class,
                () -> DemoCommand.checkBindable(List.of("192.0.2.1:22350")));
        assertTrue(foreign.getMessage().contains("loopback addresses"), foreign.getMessage());
    }

    @Test
    void childrenRunThisLauncherWithTheSameJava() {
        List<String> command = new DemoProcesses(System.err, List.of("-Xmx64m")).command(List.of("backend", "--help"));
        assertEquals(Path.of(System.getProperty("java.home"), "bin", "java").toString(), command.get(0));
        assertEquals("-Xmx64m", command.get(1));
        assertEquals(List.of("backend", "--help"), command.subList(command.size() - 2, command.size()));
        assertTrue(command.contains("-jar") || command.contains(Tmr.class.getName()), command.toString());
        assertFalse(command.contains("demo"));
    }

    @Test
    void benchDemoNeedsTheDemosManifest() {
        // No demo running there: a failure (1), not bad usage.
        Run run = run("bench", "--demo", dir.toString(), "--duration", "1s");
        assertEquals(1, run.exit());
        assertTrue(run.err().contains("demo.json"), run.err());
        // Bad usage: exit code 2, as the README says.
        assertEquals(2, run("bench", "--echo", "--compare", "127.0.0.1:1", "--duration", "1s").exit());
        assertEquals(2, run("bench", "--echo", "--duration", "11m").exit());
    }
}
