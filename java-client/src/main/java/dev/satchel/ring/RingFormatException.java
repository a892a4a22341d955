package dev.satchel.ring;

/** A shared-memory segment whose header does not follow docs/protocol.md section 2. */
public class RingFormatException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public RingFormatException(String message) {
        super(message);
    }
}
