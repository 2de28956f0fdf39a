package io.opentmr.launcher;

import java.time.Instant;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeParseException;
import picocli.CommandLine;

/** Points in time: ISO-8601 with offset ({@code 2027-01-01T00:00:00Z}) or a date ({@code 2027-01-01}, midnight UTC). */
final class InstantConverter implements CommandLine.ITypeConverter<Instant> {

    @Override
    public Instant convert(String value) {
        try {
            return OffsetDateTime.parse(value).toInstant();
        } catch (DateTimeParseException notDateTime) {
            try {
                return LocalDate.parse(value).atStartOfDay(ZoneOffset.UTC).toInstant();
            } catch (DateTimeParseException notDate) {
                throw new CommandLine.TypeConversionException("'" + value
                        + "' is not a time: write ISO-8601, e.g. 2027-01-01T00:00:00Z or 2027-01-01");
            }
        }
    }
}
