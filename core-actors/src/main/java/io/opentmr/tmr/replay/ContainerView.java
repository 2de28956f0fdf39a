package io.opentmr.tmr.replay;

import java.util.List;

/**
 * A virtual container as the node journals it: its serial, its group's CmActId (0: not learned yet) and every TMR
 * license it has seen ({@code FIRM:PRODUCT#TMRID}, in LIST order).
 *
 * @param journal where the replayed state stands in its journal; null for a running node's view
 */
public record ContainerView(String serial, long cmActId, List<String> licenses, JournalView journal) {
}
