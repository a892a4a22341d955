package dev.satchel.wire;

/** Bytes that do not follow the Satchel wire protocol (docs/protocol.md). */
public class ProtocolException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ProtocolException(String message) {
        super(message);
    }
}
