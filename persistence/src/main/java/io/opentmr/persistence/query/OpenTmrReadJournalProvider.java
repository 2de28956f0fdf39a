package io.opentmr.persistence.query;

import com.typesafe.config.Config;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.persistence.query.ReadJournalProvider;

/** Pekko Persistence Query entry point for {@code opentmr.persistence.query}. */
public final class OpenTmrReadJournalProvider implements ReadJournalProvider {

    private final OpenTmrReadJournal javadsl;
    private final OpenTmrScaladslReadJournal scaladsl;

    public OpenTmrReadJournalProvider(ExtendedActorSystem system, Config config) {
        LogQueries queries = new LogQueries(system);
        this.javadsl = new OpenTmrReadJournal(queries);
        this.scaladsl = new OpenTmrScaladslReadJournal(queries);
    }

    @Override
    public OpenTmrScaladslReadJournal scaladslReadJournal() {
        return scaladsl;
    }

    @Override
    public OpenTmrReadJournal javadslReadJournal() {
        return javadsl;
    }
}
