package dev.satchel.client;

/** The function itself raised: {@link #remoteType()} is the Python exception's type name. */
public class RemoteErrorException extends SatchelException {
    private static final long serialVersionUID = 1L;

    private final String remoteType;

    public RemoteErrorException(
            String function, String remoteType, String message, Throwable cause) {
        super(REMOTE_ERROR, function, message, cause);
        this.remoteType = remoteType;
    }

    /** The type of the exception the function raised, for example {@code "ValueError"}, or null. */
    public String remoteType() {
        return remoteType;
    }
}
