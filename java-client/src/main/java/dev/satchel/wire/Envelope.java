package dev.satchel.wire;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Objects;

/**
 * One Satchel message: the Avro binary encoding of the record {@code satchel.wire.Envelope}
 * (docs/protocol.md section 1), field after field with nothing between them.
 *
 * <p>{@code fingerprint} is the CRC-64-AVRO fingerprint of the payload's schema as a signed
 * two's-complement long (0 when the payload has no schema to check). {@code payload} is the Avro
 * binary of the content; {@link #decode} returns it as a slice of the message (no copy), in
 * little-endian order so that Avro {@code double}s can be read with {@code getDouble}.
 */
public record Envelope(int version, Kind kind, long callId, long fingerprint, long deadlineMs, ByteBuffer payload) {

    /** The envelope version this client writes and reads. */
    public static final int VERSION = 1;

    private static final ByteBuffer EMPTY = ByteBuffer.allocate(0).asReadOnlyBuffer();

    public Envelope {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(payload, "payload");
    }

    /** A version-1 envelope. */
    public static Envelope of(Kind kind, long callId, long fingerprint, long deadlineMs, ByteBuffer payload) {
        return new Envelope(VERSION, kind, callId, fingerprint, deadlineMs, payload);
    }

    /** A version-1 envelope with an empty payload, no fingerprint and no deadline (SHUTDOWN, CANCEL). */
    public static Envelope empty(Kind kind, long callId) {
        return new Envelope(VERSION, kind, callId, 0, 0, EMPTY);
    }

    /**
     * The Avro bytes of an envelope up to and including the payload's length prefix: what a
     * transport may send before the payload itself.
     */
    public static byte[] encodeHeader(
            int version, Kind kind, long callId, long fingerprint, long deadlineMs, long payloadLength) {
        Objects.requireNonNull(kind, "kind");
        if (payloadLength < 0) {
            throw new IllegalArgumentException("negative payload length");
        }
        byte[] buf = new byte[6 * Varint.MAX_LONG_BYTES];
        int pos = Varint.putLong(buf, 0, version);
        pos = Varint.putLong(buf, pos, kind.index());
        pos = Varint.putLong(buf, pos, callId);
        pos = Varint.putLong(buf, pos, fingerprint);
        pos = Varint.putLong(buf, pos, deadlineMs);
        pos = Varint.putLong(buf, pos, payloadLength);
        byte[] out = new byte[pos];
        System.arraycopy(buf, 0, out, 0, pos);
        return out;
    }

    /** {@link #encodeHeader} of this envelope. */
    public byte[] encodeHeader() {
        return encodeHeader(version, kind, callId, fingerprint, deadlineMs, payload.remaining());
    }

    /**
     * The whole Avro encoding of this envelope (header, then the payload's remaining bytes). Does not
     * move the payload buffer's position.
     */
    public byte[] encode() {
        byte[] header = encodeHeader();
        int size = payload.remaining();
        byte[] out = new byte[header.length + size];
        System.arraycopy(header, 0, out, 0, header.length);
        payload.duplicate().get(out, header.length, size);
        return out;
    }

    /** {@link #decode(ByteBuffer)} of a byte array. */
    public static Envelope decode(byte[] message) {
        return decode(ByteBuffer.wrap(message));
    }

    /**
     * The envelope in {@code message}: all of its remaining bytes, which must be exactly one
     * envelope. The payload is a slice of {@code message} (shares its content, no copy). Does not
     * move {@code message}'s position.
     *
     * @throws ProtocolException if the bytes are not a version-1 envelope
     */
    public static Envelope decode(ByteBuffer message) {
        int start = message.position();
        int limit = message.limit();
        int[] pos = {start};
        long version = Varint.getLong(message, pos, limit);
        if (version != VERSION) {
            throw new ProtocolException(
                    "envelope version " + version + ", this client reads version " + VERSION);
        }
        Kind kind = Kind.fromIndex(Varint.getLong(message, pos, limit));
        long callId = Varint.getLong(message, pos, limit);
        long fingerprint = Varint.getLong(message, pos, limit);
        long deadlineMs = Varint.getLong(message, pos, limit);
        long size = Varint.getLong(message, pos, limit);
        int present = limit - pos[0];
        if (size != present) {
            throw new ProtocolException("malformed envelope: payload of " + size + " bytes announced, "
                    + present + " bytes present");
        }
        ByteBuffer payload = message.slice(pos[0], present).order(ByteOrder.LITTLE_ENDIAN);
        return new Envelope((int) version, kind, callId, fingerprint, deadlineMs, payload);
    }
}
