package dev.satchel.client;

/** The server hosts no function of that name. */
public class UnknownFunctionException extends SatchelException {
    private static final long serialVersionUID = 1L;

    public UnknownFunctionException(String function, String message, Throwable cause) {
        super(UNKNOWN_FUNCTION, function, message, cause);
    }
}
