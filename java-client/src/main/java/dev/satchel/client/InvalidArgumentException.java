package dev.satchel.client;

/**
 * An argument the function's request schema does not allow (refused by the client before anything
 * is sent, or by the server), or a request body the server could not decode ({@code
 * malformed-body}).
 */
public class InvalidArgumentException extends SatchelException {
    private static final long serialVersionUID = 1L;

    private final String parameter;

    public InvalidArgumentException(String function, String parameter, String message) {
        this(INVALID_ARGUMENT, function, parameter, message, null);
    }

    InvalidArgumentException(
            String kind, String function, String parameter, String message, Throwable cause) {
        super(kind, function, message, cause);
        this.parameter = parameter;
    }

    /** The parameter at fault, or {@code null} when no one parameter is. */
    public String parameter() {
        return parameter;
    }
}
