package io.opentmr.persistence;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/** Journal directories kept under src/test/resources, copied so a test may write to them. */
public final class Fixtures {

    private Fixtures() {
    }

    /** Copies the resource directory {@code name} (recursively) to {@code target} and returns {@code target}. */
    public static Path copy(String name, Path target) throws IOException {
        Path source;
        try {
            source = Path.of(Fixtures.class.getResource("/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException(name, e);
        }
        try (Stream<Path> files = Files.walk(source)) {
            files.forEach(from -> {
                try {
                    Path to = target.resolve(source.relativize(from).toString());
                    if (Files.isDirectory(from)) {
                        Files.createDirectories(to);
                    } else {
                        Files.copy(from, to);
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
        return target;
    }
}
