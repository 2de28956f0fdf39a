package io.opentmr.launcher;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A child process for {@link DemoProcessesTest}: the first time (its marker file absent) it exits with the code of
 * its first argument; started again, it runs until it is stopped, at most 60 s.
 */
public final class ExitingChild {

    private ExitingChild() {
    }

    public static void main(String[] args) throws Exception {
        Path marker = Path.of(args[1]);
        if (!Files.exists(marker)) {
            Files.createFile(marker);
            System.exit(Integer.parseInt(args[0]));
        }
        System.out.println("running again");
        Thread.sleep(60_000);
    }
}
