package dev.satchel.client;

/** The function's queue is full: try again after {@link #retryAfterSeconds()}. */
public class OverloadedException extends SatchelException {
    private static final long serialVersionUID = 1L;

    private final long retryAfterSeconds;

    public OverloadedException(
            String function, String message, long retryAfterSeconds, Throwable cause) {
        super(OVERLOADED, function, message, cause);
        this.retryAfterSeconds = retryAfterSeconds;
    }

    /** The seconds the server asked callers to wait before retrying, or -1 when it did not say. */
    public long retryAfterSeconds() {
        return retryAfterSeconds;
    }
}
