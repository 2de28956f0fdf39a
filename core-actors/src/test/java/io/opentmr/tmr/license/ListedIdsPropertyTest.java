package io.opentmr.tmr.license;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.Size;

/**
 * A take-over compares a license's table with the backends' listings as sorted id arrays
 * ({@link TmrLicense#markListed}): the same answer as comparing sets, for any ids, negative ones (unsigned handle
 * ids above 2^63) and repeats included.
 */
class ListedIdsPropertyTest {

    @Property(tries = 500)
    void markingListedIdsAgreesWithSets(@ForAll @Size(max = 40) List<Long> table, @ForAll @Size(max = 40) List<Long> listing,
                                        @ForAll @Size(max = 20) List<Long> shared) {
        Set<Long> tableSet = new java.util.HashSet<>(table);
        tableSet.addAll(shared);
        long[] tableIds = tableSet.stream().mapToLong(Long::longValue).sorted().toArray();
        long[] ids = java.util.stream.Stream.concat(listing.stream(), shared.stream()).mapToLong(Long::longValue)
                .sorted().toArray();
        Set<Long> listed = Arrays.stream(ids).boxed().collect(Collectors.toSet());

        boolean[] marked = new boolean[tableIds.length];
        boolean lacking = TmrLicense.markListed(tableIds, ids, marked);

        boolean[] expected = new boolean[tableIds.length];
        for (int i = 0; i < tableIds.length; i++) {
            expected[i] = listed.contains(tableIds[i]);
        }
        assertArrayEquals(expected, marked, "table " + Arrays.toString(tableIds) + ", listed " + Arrays.toString(ids));
        assertEquals(!tableSet.containsAll(listed), lacking);
    }
}
