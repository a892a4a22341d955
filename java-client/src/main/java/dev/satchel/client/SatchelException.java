package dev.satchel.client;

/**
 * A failed call to a Satchel server, from either client. {@link #kind()} is the machine-readable
 * kind the server reported (gRPC trailing metadata {@code x-satchel-error-kind}, or the last
 * segment of a REST problem document's {@code type}), the same kinds as Python's errors: the
 * subclasses stand for the ones a caller usually handles; any other kind (for example {@code
 * unavailable}, {@code fingerprint-mismatch}, {@code unauthorized}) arrives as a plain {@code
 * SatchelException}.
 */
public class SatchelException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public static final String INVALID_ARGUMENT = "invalid-argument";
    public static final String MALFORMED_BODY = "malformed-body";
    public static final String FINGERPRINT_MISMATCH = "fingerprint-mismatch";
    public static final String UNKNOWN_FUNCTION = "unknown-function";
    public static final String UNKNOWN_JOB = "unknown-job";
    public static final String OVERLOADED = "overloaded";
    public static final String TIMEOUT = "timeout";
    public static final String WORKER_CRASHED = "worker-crashed";
    public static final String REMOTE_ERROR = "remote-error";
    /** The function returned what its response schema does not allow: the result, not the arguments. */
    public static final String BAD_RESULT = "bad-result";
    public static final String UNAVAILABLE = "unavailable";
    public static final String UNAUTHORIZED = "unauthorized";
    public static final String INTERNAL = "internal";

    private final String kind;
    private final String function;

    public SatchelException(String kind, String function, String message) {
        this(kind, function, message, null);
    }

    public SatchelException(String kind, String function, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
        this.function = function;
    }

    /**
     * The machine-readable kind, for example {@code "invalid-argument"} or {@code "remote-error"}.
     */
    public String kind() {
        return kind;
    }

    /**
     * The function called, or {@code null} when the failure concerns no one function (a job id).
     */
    public String function() {
        return function;
    }

    /**
     * The exception of {@code kind}: an {@link InvalidArgumentException} for bad arguments (and
     * bodies that do not decode), {@link UnknownFunctionException}, {@link UnknownJobException},
     * {@link OverloadedException}, {@link CallTimeoutException}, {@link WorkerCrashedException},
     * {@link RemoteErrorException}; a plain {@code SatchelException} for the other kinds.
     *
     * @param parameter the parameter at fault, or null
     * @param retryAfterSeconds what the server asked an overloaded caller to wait, or -1
     * @param remoteType the exception type the function raised, or null (taken from the message's
     *     {@code "Type: text"} prefix when null)
     */
    public static SatchelException of(
            String kind,
            String function,
            String message,
            String parameter,
            long retryAfterSeconds,
            String remoteType,
            Throwable cause) {
        switch (kind) {
            case INVALID_ARGUMENT:
            case MALFORMED_BODY:
                return new InvalidArgumentException(kind, function, parameter, message, cause);
            case UNKNOWN_FUNCTION:
                return new UnknownFunctionException(function, message, cause);
            case UNKNOWN_JOB:
                return new UnknownJobException(message, cause);
            case OVERLOADED:
                return new OverloadedException(function, message, retryAfterSeconds, cause);
            case TIMEOUT:
                return new CallTimeoutException(function, message, cause);
            case WORKER_CRASHED:
                return new WorkerCrashedException(function, message, cause);
            case REMOTE_ERROR:
                return new RemoteErrorException(
                        function,
                        remoteType != null ? remoteType : typePrefix(message),
                        message,
                        cause);
            default:
                return new SatchelException(kind, function, message, cause);
        }
    }

    /**
     * "ValueError" of "ValueError: boom", or null when the message does not start with a type name.
     */
    static String typePrefix(String message) {
        if (message == null) {
            return null;
        }
        int colon = message.indexOf(": ");
        if (colon <= 0) {
            return null;
        }
        String head = message.substring(0, colon);
        return head.matches("[A-Za-z_][A-Za-z0-9_.]*") ? head : null;
    }
}
