package io.opentmr.persistence.query;

import org.apache.pekko.NotUsed;
import org.apache.pekko.persistence.query.EventEnvelope;
import org.apache.pekko.persistence.query.Offset;
import org.apache.pekko.persistence.query.javadsl.CurrentEventsByPersistenceIdQuery;
import org.apache.pekko.persistence.query.javadsl.CurrentEventsByTagQuery;
import org.apache.pekko.persistence.query.javadsl.CurrentPersistenceIdsQuery;
import org.apache.pekko.persistence.query.javadsl.EventsByPersistenceIdQuery;
import org.apache.pekko.persistence.query.javadsl.EventsByTagQuery;
import org.apache.pekko.persistence.query.javadsl.PersistenceIdsQuery;
import org.apache.pekko.stream.javadsl.Source;

/**
 * Java API of the read journal ({@code opentmr.persistence.query}). Offsets are {@code Sequence(global position)},
 * exclusive; live streams poll every {@code refresh-interval} once caught up.
 */
public final class OpenTmrReadJournal implements EventsByPersistenceIdQuery, CurrentEventsByPersistenceIdQuery,
        PersistenceIdsQuery, CurrentPersistenceIdsQuery, EventsByTagQuery, CurrentEventsByTagQuery {

    /** The plugin id to pass to {@code PersistenceQuery.getReadJournalFor}. */
    public static final String IDENTIFIER = "opentmr.persistence.query";

    private final LogQueries queries;

    OpenTmrReadJournal(LogQueries queries) {
        this.queries = queries;
    }

    @Override
    public Source<EventEnvelope, NotUsed> eventsByPersistenceId(String persistenceId, long fromSequenceNr,
            long toSequenceNr) {
        return queries.eventsByPersistenceId(persistenceId, fromSequenceNr, toSequenceNr, true);
    }

    @Override
    public Source<EventEnvelope, NotUsed> currentEventsByPersistenceId(String persistenceId, long fromSequenceNr,
            long toSequenceNr) {
        return queries.eventsByPersistenceId(persistenceId, fromSequenceNr, toSequenceNr, false);
    }

    @Override
    public Source<String, NotUsed> persistenceIds() {
        return queries.persistenceIds(true);
    }

    @Override
    public Source<String, NotUsed> currentPersistenceIds() {
        return queries.persistenceIds(false);
    }

    @Override
    public Source<EventEnvelope, NotUsed> eventsByTag(String tag, Offset offset) {
        return queries.eventsByTag(tag, offset, true);
    }

    @Override
    public Source<EventEnvelope, NotUsed> currentEventsByTag(String tag, Offset offset) {
        return queries.eventsByTag(tag, offset, false);
    }
}
