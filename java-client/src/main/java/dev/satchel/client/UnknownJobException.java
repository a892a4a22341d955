package dev.satchel.client;

/**
 * No job has that id: it never existed, or it finished longer ago than the server keeps results.
 */
public class UnknownJobException extends SatchelException {
    private static final long serialVersionUID = 1L;

    public UnknownJobException(String message, Throwable cause) {
        super(UNKNOWN_JOB, null, message, cause);
    }
}
