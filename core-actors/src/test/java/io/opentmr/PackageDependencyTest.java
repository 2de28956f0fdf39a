package io.opentmr;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentmr.tmr.TmrNode;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Rules about which package may use which, checked on the compiled classes: every type, method or
 * field a class uses is named in its constant pool, so a class that names none of a package's types
 * does not use that package, whatever its source imports or spells out in full.
 */
class PackageDependencyTest {

    @Test
    void theTmrNodeUsesNothingOfTheBackendPackage() throws Exception {
        // The node and the backend share the listener and session plumbing through protocol-codec
        // (io.opentmr.server), not by one importing the other's server classes.
        List<Path> classes = classesOf("io/opentmr/tmr");
        assertTrue(classes.stream().anyMatch(c -> c.endsWith("TmrNode.class")), "the node's classes are found: "
                + classes);
        List<String> offenders = classes.stream()
                .filter(c -> names(c, "io/opentmr/backend/"))
                .map(c -> c.getFileName().toString())
                .toList();
        assertEquals(List.of(), offenders, "classes of io.opentmr.tmr.. that use io.opentmr.backend");
    }

    @Test
    void theBackendKnowsNothingOfTheTmrNode() throws Exception {
        List<Path> classes = classesOf("io/opentmr/backend");
        assertTrue(classes.stream().anyMatch(c -> c.endsWith("Backend.class")), "the backend's classes are found");
        List<String> offenders = classes.stream()
                .filter(c -> names(c, "io/opentmr/tmr/"))
                .map(c -> c.getFileName().toString())
                .toList();
        assertEquals(List.of(), offenders, "classes of io.opentmr.backend that use io.opentmr.tmr..");
    }

    private static List<Path> classesOf(String packagePath) throws IOException, URISyntaxException {
        Path root = Path.of(TmrNode.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        try (Stream<Path> files = Files.walk(root.resolve(packagePath))) {
            return files.filter(f -> f.toString().endsWith(".class")).sorted().toList();
        }
    }

    /** Whether the class file names anything under {@code prefix} ({@code a/b/}, as class files spell packages). */
    private static boolean names(Path classFile, String prefix) {
        try {
            return new String(Files.readAllBytes(classFile), StandardCharsets.ISO_8859_1).contains(prefix);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + classFile, e);
        }
    }
}
