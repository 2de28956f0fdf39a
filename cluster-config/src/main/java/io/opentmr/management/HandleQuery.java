package io.opentmr.management;

import java.util.Optional;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.Query;

/**
 * The query of {@code GET /tmr/handles}: filters (each optional, all must match) and the page.
 *
 * @param license {@code FIRM:PRODUCT} or {@code FIRM:PRODUCT#TMRID}
 * @param user    the user name the client gave, exactly
 * @param host    the host name the client gave, or its address as the server saw it, exactly
 */
record HandleQuery(Optional<String> license, Optional<String> user, Optional<String> host, int offset, int limit) {

    static HandleQuery of(HttpRequest request, ManagementSettings settings) throws ManagementRoutes.BadRequest {
        Query query = request.getUri().query();
        int offset = number(query, "offset", 0, Integer.MAX_VALUE, 0);
        int limit = number(query, "limit", 1, settings.maxPage(), settings.defaultPage());
        Optional<String> license = query.get("license").map(String::strip).filter(s -> !s.isEmpty());
        if (license.isPresent() && !license.get().matches("\\d+:\\d+(#\\d+)?")) {
            throw new ManagementRoutes.BadRequest("license must be FIRM:PRODUCT or FIRM:PRODUCT#TMRID, not '"
                    + license.get() + "'");
        }
        return new HandleQuery(license, query.get("user").filter(s -> !s.isEmpty()),
                query.get("host").filter(s -> !s.isEmpty()), offset, limit);
    }

    private static int number(Query query, String name, int min, int max, int absent)
            throws ManagementRoutes.BadRequest {
        Optional<String> text = query.get(name);
        if (text.isEmpty()) {
            return absent;
        }
        try {
            int value = Integer.parseInt(text.get().strip());
            if (value < min || value > max) {
                throw new ManagementRoutes.BadRequest(name + " must be " + min + ".." + max + ", not " + value);
            }
            return value;
        } catch (NumberFormatException e) {
            throw new ManagementRoutes.BadRequest(name + " must be a number, not '" + text.get() + "'");
        }
    }

    /** Whether handles of {@code handleLicense} ("FIRM:PRODUCT#TMRID") pass the license filter. */
    boolean matchesLicense(String handleLicense) {
        if (license.isEmpty()) {
            return true;
        }
        String wanted = license.get();
        return wanted.contains("#") ? handleLicense.equals(wanted) : handleLicense.startsWith(wanted + "#");
    }

    /** Whether a handle of {@code license} (as "FIRM:PRODUCT#TMRID") held by user@host (station) matches. */
    boolean matches(String handleLicense, String handleUser, String handleHost, String station) {
        if (!matchesLicense(handleLicense)) {
            return false;
        }
        if (user.isPresent() && !user.get().equals(handleUser)) {
            return false;
        }
        return host.isEmpty() || host.get().equals(handleHost) || host.get().equals(station);
    }
}
