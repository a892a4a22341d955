package dev.satchel.wire;

/**
 * The kind of a message: the Avro enum {@code satchel.wire.Kind}. The ordinal is the symbol's index
 * on the wire, so the order here must stay exactly that of {@code bindings/envelope.py}.
 */
public enum Kind {
    /** Caller to worker: run the function; payload = the request record. */
    CALL,
    /** Worker to caller: payload = the return value in the response schema. */
    RESULT,
    /** Worker to caller: the call raised; payload = an {@code Error} record. */
    ERROR,
    /** Worker to caller, once, when started; payload = a {@code Ready} record. */
    READY,
    /** Worker to caller: it could not start; payload = an {@code Error} record. */
    STARTUP_ERROR,
    /** Caller to worker: exit cleanly; empty payload. */
    SHUTDOWN,
    /** Caller to worker: abandon call {@code call_id}; empty payload. */
    CANCEL;

    private static final Kind[] VALUES = values();

    /** The wire index of this kind (the Avro enum symbol's index). */
    public int index() {
        return ordinal();
    }

    /** The kind with wire index {@code index}. */
    public static Kind fromIndex(long index) {
        if (index < 0 || index >= VALUES.length) {
            throw new ProtocolException("unknown message kind " + index);
        }
        return VALUES[(int) index];
    }
}
