package io.opentmr.launcher;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.rolling.RollingFileAppender;
import ch.qos.logback.core.rolling.TimeBasedRollingPolicy;
import io.opentmr.backend.TrackingLog;
import io.opentmr.tracking.TrackingFiles;
import java.nio.file.Path;
import org.slf4j.LoggerFactory;

/**
 * Sends the backend's tracking log to {@code DATA_DIR/tracking.log}, rotated daily and kept 90 days, under the
 * file names {@code tmr tracking report} and the TMR node's own log use ({@link TrackingFiles}).
 */
final class TrackingLogFile {

    private TrackingLogFile() {
    }

    static Path install(Path dataDir) {
        LoggerContext context = (LoggerContext) LoggerFactory.getILoggerFactory();
        Path file = dataDir.resolve(TrackingFiles.CURRENT);

        PatternLayoutEncoder encoder = new PatternLayoutEncoder();
        encoder.setContext(context);
        encoder.setPattern("%msg%n");
        encoder.start();

        RollingFileAppender<ILoggingEvent> appender = new RollingFileAppender<>();
        appender.setContext(context);
        appender.setName("tracking");
        appender.setFile(file.toString());
        TimeBasedRollingPolicy<ILoggingEvent> policy = new TimeBasedRollingPolicy<>();
        policy.setContext(context);
        policy.setParent(appender);
        policy.setFileNamePattern(dataDir.resolve(TrackingFiles.ROTATED_PATTERN).toString());
        policy.setMaxHistory(90);
        policy.start();
        appender.setRollingPolicy(policy);
        appender.setEncoder(encoder);
        appender.start();

        Logger logger = context.getLogger(TrackingLog.LOGGER);
        logger.addAppender(appender);
        logger.setAdditive(false);
        return file;
    }
}
