package dev.satchel.wire;

import java.nio.ByteBuffer;

/** Avro {@code int}/{@code long} binary encoding: zig-zag, then a little-endian base-128 varint. */
public final class Varint {
    /** The most bytes a zig-zag varint of a 64-bit value takes. */
    public static final int MAX_LONG_BYTES = 10;

    private Varint() {}

    /** {@code (n << 1) ^ (n >> 63)}: 0 to 0, -1 to 1, 1 to 2, -2 to 3, ... */
    public static long zigZag(long n) {
        return (n << 1) ^ (n >> 63);
    }

    /** The inverse of {@link #zigZag}. */
    public static long unZigZag(long z) {
        return (z >>> 1) ^ -(z & 1);
    }

    /** The number of bytes {@link #putLong} writes for {@code n}. */
    public static int sizeOfLong(long n) {
        long z = zigZag(n);
        int size = 1;
        while ((z & ~0x7FL) != 0) {
            z >>>= 7;
            size++;
        }
        return size;
    }

    /** Writes {@code n} into {@code out} at {@code pos}; returns the position after it. */
    public static int putLong(byte[] out, int pos, long n) {
        long z = zigZag(n);
        while ((z & ~0x7FL) != 0) {
            out[pos++] = (byte) ((z & 0x7F) | 0x80);
            z >>>= 7;
        }
        out[pos++] = (byte) z;
        return pos;
    }

    /**
     * Reads a long at absolute index {@code pos[0]} of {@code in}, not beyond {@code limit}, and
     * advances {@code pos[0]} past it.
     */
    public static long getLong(ByteBuffer in, int[] pos, int limit) {
        long z = 0;
        int p = pos[0];
        for (int shift = 0; ; shift += 7) {
            if (p >= limit) {
                throw new ProtocolException("truncated envelope");
            }
            int b = in.get(p++) & 0xFF;
            if (shift == 63 && (b & 0xFE) != 0) {
                throw new ProtocolException("malformed envelope: a varint longer than 10 bytes");
            }
            z |= (long) (b & 0x7F) << shift;
            if ((b & 0x80) == 0) {
                break;
            }
        }
        pos[0] = p;
        return unZigZag(z);
    }
}
