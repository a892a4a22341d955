package dev.satchel.wire;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * One Satchel message: the Avro binary encoding of the record {@code satchel.wire.Envelope}
 * (docs/protocol.md section 1), field after field with nothing between them.
 *
 * <p>{@code fingerprint} is the CRC-64-AVRO fingerprint of the payload's schema as a signed
 * two's-complement long (0 when the payload has no schema to check). {@code payload} is the Avro
 * binary of the content; {@link #decode} returns it as a slice of the message (no copy), in
 * little-endian order so that Avro {@code double}s can be read with {@code getDouble}.
 *
 * <p>{@code context} (version 2 only; empty in version 1) is an Avro {@code map<string>} of W3C
 * Trace Context headers ({@code traceparent}, {@code tracestate}) placed before the payload. A
 * writer sends version 1 when the context is empty, version 2 otherwise.
 */
public record Envelope(
        int version, Kind kind, long callId, long fingerprint, long deadlineMs, Map<String, String> context,
        ByteBuffer payload) {

    /** The newest envelope version this client writes and reads (it reads 1 and 2). */
    public static final int VERSION = 2;

    /** The most bytes the encoding of a context map may take. */
    public static final int CONTEXT_MAX_BYTES = 8192;

    private static final ByteBuffer EMPTY = ByteBuffer.allocate(0).asReadOnlyBuffer();

    public Envelope {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(payload, "payload");
        context = Collections.unmodifiableMap(new LinkedHashMap<>(Objects.requireNonNull(context, "context")));
        if (version == 1 && !context.isEmpty()) {
            throw new IllegalArgumentException("a version 1 envelope cannot carry a context");
        }
    }

    /** An envelope without a context. */
    public Envelope(int version, Kind kind, long callId, long fingerprint, long deadlineMs, ByteBuffer payload) {
        this(version, kind, callId, fingerprint, deadlineMs, Map.of(), payload);
    }

    /** A version-1 envelope. */
    public static Envelope of(Kind kind, long callId, long fingerprint, long deadlineMs, ByteBuffer payload) {
        return new Envelope(1, kind, callId, fingerprint, deadlineMs, payload);
    }

    /** A version-2 envelope if {@code context} is not empty, else a version-1 one. */
    public static Envelope of(
            Kind kind, long callId, long fingerprint, long deadlineMs, Map<String, String> context,
            ByteBuffer payload) {
        return new Envelope(context.isEmpty() ? 1 : 2, kind, callId, fingerprint, deadlineMs, context, payload);
    }

    /** A version-1 envelope with an empty payload, no fingerprint and no deadline (SHUTDOWN, CANCEL). */
    public static Envelope empty(Kind kind, long callId) {
        return new Envelope(1, kind, callId, 0, 0, EMPTY);
    }

    /**
     * The Avro bytes of an envelope up to and including the payload's length prefix: what a
     * transport may send before the payload itself.
     */
    public static byte[] encodeHeader(
            int version, Kind kind, long callId, long fingerprint, long deadlineMs, long payloadLength) {
        return encodeHeader(version, kind, callId, fingerprint, deadlineMs, Map.of(), payloadLength);
    }

    /** The same, with the context map of a version-2 envelope (written only when {@code version >= 2}). */
    public static byte[] encodeHeader(
            int version, Kind kind, long callId, long fingerprint, long deadlineMs, Map<String, String> context,
            long payloadLength) {
        Objects.requireNonNull(kind, "kind");
        if (payloadLength < 0) {
            throw new IllegalArgumentException("negative payload length");
        }
        byte[][] strings = new byte[2 * context.size()][];
        int contextBytes = 0;
        int i = 0;
        for (Map.Entry<String, String> e : context.entrySet()) {
            strings[i] = e.getKey().getBytes(StandardCharsets.UTF_8);
            strings[i + 1] = e.getValue().getBytes(StandardCharsets.UTF_8);
            contextBytes += strings[i].length + strings[i + 1].length + 2 * Varint.MAX_LONG_BYTES;
            i += 2;
        }
        byte[] buf = new byte[7 * Varint.MAX_LONG_BYTES + contextBytes];
        int pos = Varint.putLong(buf, 0, version);
        pos = Varint.putLong(buf, pos, kind.index());
        pos = Varint.putLong(buf, pos, callId);
        pos = Varint.putLong(buf, pos, fingerprint);
        pos = Varint.putLong(buf, pos, deadlineMs);
        if (version >= 2) {
            int start = pos;
            if (strings.length > 0) {
                pos = Varint.putLong(buf, pos, context.size());
                for (byte[] s : strings) {
                    pos = Varint.putLong(buf, pos, s.length);
                    System.arraycopy(s, 0, buf, pos, s.length);
                    pos += s.length;
                }
            }
            pos = Varint.putLong(buf, pos, 0);
            if (pos - start > CONTEXT_MAX_BYTES) {
                throw new IllegalArgumentException(
                        "the context takes " + (pos - start) + " bytes, more than " + CONTEXT_MAX_BYTES);
            }
        }
        pos = Varint.putLong(buf, pos, payloadLength);
        byte[] out = new byte[pos];
        System.arraycopy(buf, 0, out, 0, pos);
        return out;
    }

    /** {@link #encodeHeader} of this envelope. */
    public byte[] encodeHeader() {
        return encodeHeader(version, kind, callId, fingerprint, deadlineMs, context, payload.remaining());
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
     * @throws ProtocolException if the bytes are not a version-1 or version-2 envelope
     */
    public static Envelope decode(ByteBuffer message) {
        int start = message.position();
        int limit = message.limit();
        int[] pos = {start};
        long version = Varint.getLong(message, pos, limit);
        if (version != 1 && version != 2) {
            throw new ProtocolException(
                    "envelope version " + version + ", this client reads versions 1 and 2");
        }
        Kind kind = Kind.fromIndex(Varint.getLong(message, pos, limit));
        long callId = Varint.getLong(message, pos, limit);
        long fingerprint = Varint.getLong(message, pos, limit);
        long deadlineMs = Varint.getLong(message, pos, limit);
        Map<String, String> context = version == 2 ? readContext(message, pos, limit) : Map.of();
        long size = Varint.getLong(message, pos, limit);
        int present = limit - pos[0];
        if (size != present) {
            throw new ProtocolException("malformed envelope: payload of " + size + " bytes announced, "
                    + present + " bytes present");
        }
        ByteBuffer payload = message.slice(pos[0], present).order(ByteOrder.LITTLE_ENDIAN);
        return new Envelope((int) version, kind, callId, fingerprint, deadlineMs, context, payload);
    }

    /** An Avro map of strings: blocks of pairs (a negative count is followed by the block's size), then 0. */
    private static Map<String, String> readContext(ByteBuffer message, int[] pos, int limit) {
        Map<String, String> context = new LinkedHashMap<>();
        int start = pos[0];
        while (true) {
            long count = Varint.getLong(message, pos, limit);
            if (count == 0) {
                return context;
            }
            if (count < 0) {
                count = -count;
                Varint.getLong(message, pos, limit);
            }
            for (long i = 0; i < count; i++) {
                String key = readString(message, pos, limit);
                context.put(key, readString(message, pos, limit));
                if (pos[0] - start > CONTEXT_MAX_BYTES) {
                    throw new ProtocolException(
                            "malformed envelope: a context of more than " + CONTEXT_MAX_BYTES + " bytes");
                }
            }
        }
    }

    private static String readString(ByteBuffer message, int[] pos, int limit) {
        long length = Varint.getLong(message, pos, limit);
        if (length < 0 || length > limit - pos[0]) {
            throw new ProtocolException("truncated envelope: a context string runs past the end");
        }
        byte[] bytes = new byte[(int) length];
        message.get(pos[0], bytes);
        pos[0] += (int) length;
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
