package io.opentmr.license;

import io.opentmr.protocol.CmError;
import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;
import java.util.TreeMap;

/**
 * The vendor's own bookkeeping: the next TMR-Id per firm. TMR-Ids are consecutive per firm, one per
 * new TMR license, so this file must survive between issues; it is written atomically.
 *
 * @param format    {@link #FORMAT}
 * @param nextTmrId firm code → the TMR-Id the next TMR issue gets (absent: 1)
 */
public record VendorState(String format, Map<Long, Long> nextTmrId) {

    public static final String FORMAT = "opentmr-vendor-state/1";

    public VendorState {
        nextTmrId = Map.copyOf(new TreeMap<>(nextTmrId));
    }

    public static VendorState empty() {
        return new VendorState(FORMAT, Map.of());
    }

    public long next(long firmCode) {
        return nextTmrId.getOrDefault(firmCode, 1L);
    }

    public VendorState advance(long firmCode) {
        Map<Long, Long> next = new TreeMap<>(nextTmrId);
        next.put(firmCode, next(firmCode) + 1);
        return new VendorState(FORMAT, next);
    }

    /** Reads the state file, or an empty state when it does not exist yet. */
    public static VendorState load(Path file) throws IOException, LicenseRefusedException {
        if (!Files.exists(file)) {
            return empty();
        }
        VendorState state;
        try {
            state = LicenseJson.MAPPER.readValue(file.toFile(), VendorState.class);
        } catch (IOException e) {
            throw new LicenseRefusedException(CmError.INVALID_PARAMETER, "vendor state file " + file
                    + " is unreadable: " + ContainerContext.firstLine(e.getMessage()), e);
        }
        if (!FORMAT.equals(state.format())) {
            throw new LicenseRefusedException(CmError.INVALID_PARAMETER,
                    "vendor state file " + file + " is not of format " + FORMAT);
        }
        return state;
    }

    public void save(Path file) throws IOException {
        Path parent = file.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path temp = Files.createTempFile(parent, file.getFileName().toString(), ".tmp");
        try {
            LicenseJson.MAPPER.writeValue(temp.toFile(), this);
            try {
                Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(temp);
        }
    }
}
