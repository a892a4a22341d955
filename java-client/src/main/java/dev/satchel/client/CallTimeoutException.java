package dev.satchel.client;

/** The call did not finish within its deadline (it is cancelled in the worker). */
public class CallTimeoutException extends SatchelException {
    private static final long serialVersionUID = 1L;

    public CallTimeoutException(String function, String message, Throwable cause) {
        super(TIMEOUT, function, message, cause);
    }
}
