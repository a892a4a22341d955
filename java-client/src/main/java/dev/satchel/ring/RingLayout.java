package dev.satchel.ring;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The byte layout of a Satchel shared-memory ring segment (docs/protocol.md section 2, layout
 * version 1). All integers are little-endian; all offsets are from the start of the segment unless
 * said otherwise.
 *
 * <pre>
 *   0     header (4096 bytes): magic, sizes, side 0 (creator), side 1 (attacher), ring controls
 *   4096  ring 0 data (capacity bytes): requests, creator to attacher
 *   4096 + capacity  ring 1 data (capacity bytes): responses, attacher to creator
 * </pre>
 */
public final class RingLayout {
    private RingLayout() {}

    // --- segment header -----------------------------------------------------------------------

    /** ASCII {@code SATCHRNG}, written last by the creator. */
    public static final byte[] MAGIC_BYTES = "SATCHRNG".getBytes(StandardCharsets.US_ASCII);
    /** {@link #MAGIC_BYTES} as the little-endian u64 at offset 0. */
    public static final long MAGIC = ByteBuffer.wrap(MAGIC_BYTES).order(ByteOrder.LITTLE_ENDIAN).getLong(0);

    public static final int LAYOUT_VERSION = 1;
    /** The header's size: the offset of ring 0's data. */
    public static final int HEADER_SIZE = 4096;
    public static final long MIN_CAPACITY = 4096;
    public static final long DEFAULT_CAPACITY = 1L << 20;

    public static final int OFF_MAGIC = 0; // 8 bytes
    public static final int OFF_LAYOUT_VERSION = 8; // u32
    public static final int OFF_HEADER_SIZE = 12; // u32
    public static final int OFF_CAPACITY = 16; // u64
    public static final int OFF_SEGMENT_SIZE = 24; // u64
    public static final int OFF_CREATED_NS = 32; // u64, informational

    // --- sides --------------------------------------------------------------------------------

    /** Side 0: the creator (the caller). */
    public static final int SIDE_CREATOR = 0;
    /** Side 1: the attacher (the worker). */
    public static final int SIDE_ATTACHER = 1;
    public static final int OFF_SIDES = 64;
    public static final int SIDE_SIZE = 64;
    /** Offsets within a side block. */
    public static final int SIDE_PID = 0; // i32
    public static final int SIDE_STATE = 4; // u32
    public static final int SIDE_FLAGS = 8; // u32

    public static final int STATE_ABSENT = 0;
    public static final int STATE_OPEN = 1;
    public static final int STATE_CLOSED = 2;
    /** Side flag: this side neither sleeps in FUTEX_WAIT nor issues FUTEX_WAKE; it polls. */
    public static final int FLAG_NO_FUTEX = 1;

    // --- ring control blocks ------------------------------------------------------------------

    /** Ring 0: requests, creator to attacher. */
    public static final int RING_REQUESTS = 0;
    /** Ring 1: responses, attacher to creator. */
    public static final int RING_RESPONSES = 1;
    public static final int OFF_RING_CONTROLS = 512;
    public static final int RING_CONTROL_SIZE = 512;
    /** Offsets within a ring control block. */
    public static final int CTRL_HEAD = 0; // u64, bytes ever written; the producer
    public static final int CTRL_TAIL = 128; // u64, bytes ever consumed; the consumer
    public static final int CTRL_DATA_SEQ = 256; // u32 futex word the consumer sleeps on
    public static final int CTRL_DATA_WAIT = 260; // u32, 1 while the consumer is (about to be) asleep
    public static final int CTRL_SPACE_SEQ = 384; // u32 futex word the producer sleeps on
    public static final int CTRL_SPACE_WAIT = 388; // u32, 1 while the producer is (about to be) asleep

    // --- messages -----------------------------------------------------------------------------

    /** A message in a ring is its length as a little-endian u64, then its bytes. */
    public static final int LENGTH_PREFIX_SIZE = 8;
    /** A length of this or more means a corrupt ring. */
    public static final long MAX_MESSAGE_LENGTH = 1L << 62;

    /** The offset of side {@code side}'s 64-byte block. */
    public static int sideOffset(int side) {
        checkIndex(side, "side");
        return OFF_SIDES + side * SIDE_SIZE;
    }

    /** The offset of ring {@code ring}'s 512-byte control block. */
    public static int ringControlOffset(int ring) {
        checkIndex(ring, "ring");
        return OFF_RING_CONTROLS + ring * RING_CONTROL_SIZE;
    }

    /** The offset of ring {@code ring}'s data area in a segment of the given capacity. */
    public static long ringDataOffset(int ring, long capacity) {
        checkIndex(ring, "ring");
        return HEADER_SIZE + ring * capacity;
    }

    /** {@code 4096 + 2 * capacity}. */
    public static long segmentSize(long capacity) {
        return HEADER_SIZE + 2 * capacity;
    }

    /** Whether {@code capacity} is a valid ring capacity: a power of two, at least 4096. */
    public static boolean isValidCapacity(long capacity) {
        return capacity >= MIN_CAPACITY && capacity <= (1L << 61) && Long.bitCount(capacity) == 1;
    }

    /** Where byte number {@code streamPosition} of a ring's stream lives in its data area. */
    public static int dataIndex(long streamPosition, long capacity) {
        return (int) (streamPosition & (capacity - 1));
    }

    /**
     * Copies {@code length} bytes of a ring's stream, starting at byte number {@code streamPosition},
     * out of its data area {@code data} (positioned at the area's start, {@code capacity} bytes),
     * continuing at the area's start where they reach its end.
     */
    public static void copyOut(ByteBuffer data, long capacity, long streamPosition, byte[] dst, int offset, int length) {
        int base = data.position();
        int index = dataIndex(streamPosition, capacity);
        int first = (int) Math.min(length, capacity - index);
        data.get(base + index, dst, offset, first);
        if (first < length) {
            data.get(base, dst, offset + first, length - first);
        }
    }

    /** The length prefix of the message at byte number {@code streamPosition} (it may wrap). */
    public static long readLengthPrefix(ByteBuffer data, long capacity, long streamPosition) {
        byte[] prefix = new byte[LENGTH_PREFIX_SIZE];
        copyOut(data, capacity, streamPosition, prefix, 0, LENGTH_PREFIX_SIZE);
        long length = ByteBuffer.wrap(prefix).order(ByteOrder.LITTLE_ENDIAN).getLong();
        if (length < 0 || length >= MAX_MESSAGE_LENGTH) {
            throw new RingFormatException("corrupt ring: message length " + Long.toUnsignedString(length));
        }
        return length;
    }

    private static void checkIndex(int index, String what) {
        if (index != 0 && index != 1) {
            throw new IllegalArgumentException(what + " must be 0 or 1, got " + index);
        }
    }

    // --- parsed header ------------------------------------------------------------------------

    /** One side's block: {@code pid} (i32), {@code state} and {@code flags} (u32). */
    public record Side(int pid, int state, int flags) {
        public boolean noFutex() {
            return (flags & FLAG_NO_FUTEX) != 0;
        }
    }

    /**
     * The fields of a segment header as read, unchecked; {@link #validate} applies the attacher's
     * checks.
     */
    public record Header(
            long magic,
            int layoutVersion,
            int headerSize,
            long capacity,
            long segmentSize,
            long createdNs,
            Side creator,
            Side attacher) {

        public boolean hasMagic() {
            return magic == MAGIC;
        }

        public Side side(int side) {
            checkIndex(side, "side");
            return side == SIDE_CREATOR ? creator : attacher;
        }

        /**
         * The checks an attacher makes before using a segment: the magic, the layout version, the
         * header size, a capacity that is a power of two of at least 4096 and a segment size equal to
         * both {@code 4096 + 2 * capacity} and {@code objectSize} (the mapped file's size).
         *
         * @return this header
         * @throws RingFormatException naming the first check that fails
         */
        public Header validate(long objectSize) {
            if (!hasMagic()) {
                throw new RingFormatException("not a Satchel ring segment (magic "
                        + String.format("%016x", Long.reverseBytes(magic)) + ")");
            }
            if (layoutVersion != LAYOUT_VERSION) {
                throw new RingFormatException("ring layout version " + Integer.toUnsignedString(layoutVersion)
                        + ", this client reads version " + LAYOUT_VERSION);
            }
            if (headerSize != HEADER_SIZE) {
                throw new RingFormatException("ring header size " + Integer.toUnsignedString(headerSize)
                        + ", expected " + HEADER_SIZE);
            }
            if (!isValidCapacity(capacity)) {
                throw new RingFormatException("ring capacity " + Long.toUnsignedString(capacity)
                        + " is not a power of two of at least " + MIN_CAPACITY);
            }
            if (segmentSize != RingLayout.segmentSize(capacity)) {
                throw new RingFormatException("segment size " + Long.toUnsignedString(segmentSize)
                        + " does not match capacity " + capacity);
            }
            if (segmentSize != objectSize) {
                throw new RingFormatException("segment size " + Long.toUnsignedString(segmentSize)
                        + " but the shared-memory object has " + objectSize + " bytes");
            }
            return this;
        }
    }

    /**
     * Reads a segment header from {@code segment}, whose position is the segment's start and which
     * holds at least the first {@code 4096} bytes. Reads little-endian whatever the buffer's order;
     * does not move its position. Checks nothing: see {@link Header#validate}.
     */
    public static Header parseHeader(ByteBuffer segment) {
        if (segment.remaining() < HEADER_SIZE) {
            throw new RingFormatException("a segment header is " + HEADER_SIZE + " bytes, got " + segment.remaining());
        }
        ByteBuffer b = segment.slice().order(ByteOrder.LITTLE_ENDIAN);
        return new Header(
                b.getLong(OFF_MAGIC),
                b.getInt(OFF_LAYOUT_VERSION),
                b.getInt(OFF_HEADER_SIZE),
                b.getLong(OFF_CAPACITY),
                b.getLong(OFF_SEGMENT_SIZE),
                b.getLong(OFF_CREATED_NS),
                readSide(b, SIDE_CREATOR),
                readSide(b, SIDE_ATTACHER));
    }

    private static Side readSide(ByteBuffer b, int side) {
        int off = sideOffset(side);
        return new Side(b.getInt(off + SIDE_PID), b.getInt(off + SIDE_STATE), b.getInt(off + SIDE_FLAGS));
    }
}
