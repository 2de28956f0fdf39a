package io.opentmr.protocol;

/** Who holds a handle: the client's host, user and process, and its session on the server. */
public record HandleOwner(String host, String user, long pid, long sessionId) {

    public HandleOwner {
        Check.string(host, "host");
        Check.string(user, "user");
        Check.u32(pid, "pid");
    }
}
