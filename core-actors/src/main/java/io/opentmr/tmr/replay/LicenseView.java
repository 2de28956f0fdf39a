package io.opentmr.tmr.replay;

/**
 * One TMR license as the node shows it (the {@code licenses} of {@code tmr journal replay --json}; the node's
 * management route for licenses shows the same fields). What lives only on the backends' copies or in a running node
 * (seats in all, units, copies counted) is null in a replay: the node's journal does not hold it.
 *
 * @param license   {@code FIRM:PRODUCT#TMRID}
 * @param container serial of the virtual container that knows it, or null if none does
 * @param handles   handles holding the license (a NOUSERLIMIT handle holds no seat, STATIONSHARE handles of one
 *                  station share one)
 * @param units     the unit counter, or null (no counter, or not known here)
 * @param copies    copies counted now (0..3), or null (not known here)
 * @param exclusive the handle holding it EXCLUSIVE (then every seat is in use), or null
 * @param journal   where the replayed state stands in its journal; null for a running node's view
 */
public record LicenseView(String license, long firmCode, long productCode, long tmrId, String container, Seats seats,
                          int handles, Long units, Integer copies, String exclusive, JournalView journal) {

    /**
     * Seats in use and in all. {@code used} is null while a handle holds the license EXCLUSIVE and the total is not
     * known (every seat is in use then); {@code total} is null where the license's terms are not known (a replay).
     */
    public record Seats(Long used, Long total) {
    }
}
