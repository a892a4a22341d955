package dev.satchel.ring;

import static dev.satchel.testing.Vectors.hex;
import static dev.satchel.testing.Vectors.list;
import static dev.satchel.testing.Vectors.num;
import static dev.satchel.testing.Vectors.obj;
import static dev.satchel.testing.Vectors.str;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import dev.satchel.testing.Vectors;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** The segment layout and header parser against bindings/testdata/ring_vectors.json. */
class RingLayoutTest {
    private static Map<String, Object> vectors;

    @BeforeAll
    static void load() {
        vectors = Vectors.load("ring_vectors.json");
    }

    /** A header page: zeros, with the vector's non-zero words written in. */
    private static ByteBuffer headerPage(Map<String, Object> vector) {
        byte[] page = new byte[RingLayout.HEADER_SIZE];
        for (Object o : list(vector.get("header_nonzero_words"))) {
            Map<String, Object> word = obj(o);
            byte[] bytes = hex(word.get("hex"));
            System.arraycopy(bytes, 0, page, (int) num(word.get("offset")), bytes.length);
        }
        return ByteBuffer.wrap(page);
    }

    @Test
    void vectorsArePresent() {
        assertEquals(2, list(vectors.get("headers")).size());
    }

    @TestFactory
    Stream<DynamicTest> headersParseAndValidate() {
        return list(vectors.get("headers")).stream().map(Vectors::obj).map(v -> dynamicTest(str(v.get("name")), () -> {
            long capacity = num(v.get("capacity"));
            long segmentSize = num(v.get("segment_size"));
            RingLayout.Header header = RingLayout.parseHeader(headerPage(v));
            assertTrue(header.hasMagic());
            assertEquals(RingLayout.LAYOUT_VERSION, header.layoutVersion());
            assertEquals(RingLayout.HEADER_SIZE, header.headerSize());
            assertEquals(capacity, header.capacity());
            assertEquals(segmentSize, header.segmentSize());
            assertEquals(segmentSize, RingLayout.segmentSize(capacity));
            assertEquals(0, header.createdNs(), "masked to zero in the vectors");
            assertEquals(new RingLayout.Side(0, RingLayout.STATE_OPEN, 0), header.creator());
            assertEquals(new RingLayout.Side(0, RingLayout.STATE_ABSENT, 0), header.attacher());
            assertEquals(header.creator(), header.side(RingLayout.SIDE_CREATOR));
            assertEquals(header.attacher(), header.side(RingLayout.SIDE_ATTACHER));
            assertEquals(header, header.validate(segmentSize));
            assertTrue(RingLayout.isValidCapacity(capacity));
        }));
    }

    @Test
    void maskedFieldsAreWhereTheLayoutPutsThem() {
        Map<String, Integer> offsets = Map.of(
                "created_ns", RingLayout.OFF_CREATED_NS,
                "creator pid", RingLayout.sideOffset(RingLayout.SIDE_CREATOR) + RingLayout.SIDE_PID,
                "attacher pid", RingLayout.sideOffset(RingLayout.SIDE_ATTACHER) + RingLayout.SIDE_PID);
        List<Object> masked = list(vectors.get("masked"));
        assertEquals(offsets.size(), masked.size());
        for (Object o : masked) {
            Map<String, Object> m = obj(o);
            assertEquals((long) offsets.get(str(m.get("field"))), num(m.get("offset")), str(m.get("field")));
        }
    }

    @Test
    void parserReadsTheMaskedFieldsLittleEndianAtAnyPosition() {
        Map<String, Object> vector = obj(list(vectors.get("headers")).get(0));
        ByteBuffer page = headerPage(vector).order(ByteOrder.LITTLE_ENDIAN);
        page.putLong(RingLayout.OFF_CREATED_NS, 1767225600123456789L);
        page.putInt(RingLayout.sideOffset(0) + RingLayout.SIDE_PID, 4242);
        page.putInt(RingLayout.sideOffset(1) + RingLayout.SIDE_PID, 4343);
        page.putInt(RingLayout.sideOffset(1) + RingLayout.SIDE_STATE, RingLayout.STATE_OPEN);
        page.putInt(RingLayout.sideOffset(1) + RingLayout.SIDE_FLAGS, RingLayout.FLAG_NO_FUTEX);
        // at position 5 of a big-endian buffer: the parser must still read little-endian from there
        ByteBuffer shifted = ByteBuffer.allocate(RingLayout.HEADER_SIZE + 5).order(ByteOrder.BIG_ENDIAN);
        shifted.position(5);
        shifted.put(page.array()).position(5);
        RingLayout.Header header = RingLayout.parseHeader(shifted);
        assertEquals(5, shifted.position());
        assertEquals(1767225600123456789L, header.createdNs());
        assertEquals(new RingLayout.Side(4242, RingLayout.STATE_OPEN, 0), header.creator());
        assertEquals(new RingLayout.Side(4343, RingLayout.STATE_OPEN, RingLayout.FLAG_NO_FUTEX), header.attacher());
        assertTrue(header.attacher().noFutex());
        assertFalse(header.creator().noFutex());
        assertEquals(4096, header.capacity());
    }

    @Test
    void magicIsSatchrng() {
        Map<String, Object> vector = obj(list(vectors.get("headers")).get(0));
        byte[] first = new byte[8];
        headerPage(vector).get(first);
        assertArrayEquals(RingLayout.MAGIC_BYTES, first);
        assertEquals("SATCHRNG", new String(first, java.nio.charset.StandardCharsets.US_ASCII));
        assertEquals(0x474e5248_43544153L, RingLayout.MAGIC);
    }

    private static String refusal(ByteBuffer page, long objectSize) {
        RingLayout.Header header = RingLayout.parseHeader(page);
        return assertThrows(RingFormatException.class, () -> header.validate(objectSize)).getMessage();
    }

    @Test
    void validationRefusesBadHeaders() {
        Map<String, Object> vector = obj(list(vectors.get("headers")).get(0));
        long size = num(vector.get("segment_size"));

        ByteBuffer page = headerPage(vector);
        page.put(0, (byte) 'X');
        assertTrue(refusal(page, size).contains("not a Satchel ring segment"));

        page = headerPage(vector).order(ByteOrder.LITTLE_ENDIAN);
        page.putInt(RingLayout.OFF_LAYOUT_VERSION, 2);
        assertTrue(refusal(page, size).contains("layout version 2"));

        page = headerPage(vector).order(ByteOrder.LITTLE_ENDIAN);
        page.putInt(RingLayout.OFF_HEADER_SIZE, 8192);
        assertTrue(refusal(page, size).contains("header size 8192"));

        page = headerPage(vector).order(ByteOrder.LITTLE_ENDIAN);
        page.putLong(RingLayout.OFF_CAPACITY, 6144);
        page.putLong(RingLayout.OFF_SEGMENT_SIZE, RingLayout.segmentSize(6144));
        assertTrue(refusal(page, RingLayout.segmentSize(6144)).contains("not a power of two"));

        page = headerPage(vector).order(ByteOrder.LITTLE_ENDIAN);
        page.putLong(RingLayout.OFF_CAPACITY, 2048);
        page.putLong(RingLayout.OFF_SEGMENT_SIZE, RingLayout.segmentSize(2048));
        assertTrue(refusal(page, RingLayout.segmentSize(2048)).contains("not a power of two of at least 4096"));

        page = headerPage(vector).order(ByteOrder.LITTLE_ENDIAN);
        page.putLong(RingLayout.OFF_SEGMENT_SIZE, size + 4096);
        assertTrue(refusal(page, size + 4096).contains("does not match capacity"));

        assertTrue(refusal(headerPage(vector), size - 1).contains("shared-memory object has"));

        assertThrows(RingFormatException.class, () -> RingLayout.parseHeader(ByteBuffer.allocate(100)));
    }

    @Test
    void offsetsOfTheDocument() {
        assertEquals(64, RingLayout.sideOffset(RingLayout.SIDE_CREATOR));
        assertEquals(128, RingLayout.sideOffset(RingLayout.SIDE_ATTACHER));
        assertEquals(512, RingLayout.ringControlOffset(RingLayout.RING_REQUESTS));
        assertEquals(1024, RingLayout.ringControlOffset(RingLayout.RING_RESPONSES));
        assertEquals(4096, RingLayout.ringDataOffset(RingLayout.RING_REQUESTS, 1 << 20));
        assertEquals(4096 + (1 << 20), RingLayout.ringDataOffset(RingLayout.RING_RESPONSES, 1 << 20));
        assertEquals(2101248, RingLayout.segmentSize(RingLayout.DEFAULT_CAPACITY));
        // each side's words on its own 128-byte block within a control block
        int[] producer = {RingLayout.CTRL_HEAD, RingLayout.CTRL_DATA_SEQ, RingLayout.CTRL_SPACE_WAIT};
        int[] consumer = {RingLayout.CTRL_TAIL, RingLayout.CTRL_DATA_WAIT, RingLayout.CTRL_SPACE_SEQ};
        assertEquals(List.of(0, 256, 388), List.of(producer[0], producer[1], producer[2]));
        assertEquals(List.of(128, 260, 384), List.of(consumer[0], consumer[1], consumer[2]));
        assertEquals(0, RingLayout.CTRL_HEAD % 8);
        assertEquals(0, RingLayout.CTRL_TAIL % 8);
        assertThrows(IllegalArgumentException.class, () -> RingLayout.ringControlOffset(2));
        assertThrows(IllegalArgumentException.class, () -> RingLayout.sideOffset(-1));
    }

    @Test
    void wrapVectorReadsAcrossTheEndOfTheRing() {
        Map<String, Object> wrap = obj(vectors.get("wrap"));
        long capacity = num(wrap.get("capacity"));
        long headBefore = num(wrap.get("head_before"));
        long headAfter = num(wrap.get("head_after"));
        byte[] message = hex(wrap.get("message_hex"));

        // the messages before it fill the stream up to head_before, each with its 8-byte prefix
        long before = 0;
        for (Object o : list(wrap.get("messages_before"))) {
            String m = str(o);
            long length = m.contains(" repeated ")
                    ? Long.parseLong(m.replaceAll(".* repeated (\\d+) times", "$1"))
                    : m.length() / 2;
            before += RingLayout.LENGTH_PREFIX_SIZE + length;
        }
        assertEquals(headBefore, before);

        ByteBuffer data = ByteBuffer.allocate((int) capacity);
        data.put(0, hex(wrap.get("data_start_hex")));
        data.put((int) num(wrap.get("data_end_offset")), hex(wrap.get("data_end_hex")));
        assertEquals(num(wrap.get("data_end_offset")), RingLayout.dataIndex(headBefore, capacity));

        long length = RingLayout.readLengthPrefix(data, capacity, headBefore);
        assertEquals(message.length, length);
        assertEquals(headAfter, headBefore + RingLayout.LENGTH_PREFIX_SIZE + length);
        byte[] read = new byte[(int) length];
        RingLayout.copyOut(data, capacity, headBefore + RingLayout.LENGTH_PREFIX_SIZE, read, 0, read.length);
        assertArrayEquals(message, read);
        assertEquals(0, data.position());
    }

    @Test
    void copyOutContinuesAtTheStartOfTheDataArea() {
        int capacity = 4096;
        // the data area at position 7 of a larger buffer (as in a mapped segment), byte i holding i * 7 + 1
        ByteBuffer segment = ByteBuffer.allocate(7 + capacity + 9);
        for (int i = 0; i < segment.capacity(); i++) {
            segment.put(i, (byte) (i * 7 + 1));
        }
        ByteBuffer data = segment.position(7).slice().limit(capacity);
        data.position(0);
        segment.position(7).limit(7 + capacity);
        for (ByteBuffer area : List.of(data, segment)) {
            int base = area.position();
            long stream = 5L * capacity + capacity - 3; // three bytes before the end, after five laps
            byte[] read = new byte[10];
            RingLayout.copyOut(area, capacity, stream, read, 0, read.length);
            for (int k = 0; k < read.length; k++) {
                int index = (capacity - 3 + k) % capacity;
                assertEquals(area.get(base + index), read[k], "byte " + k);
            }
            assertEquals(base, area.position());
        }
    }

    @Test
    void corruptLengthsAreRefused() {
        ByteBuffer data = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
        data.putLong(0, 1L << 62);
        assertThrows(RingFormatException.class, () -> RingLayout.readLengthPrefix(data, 4096, 0));
        data.putLong(0, -1L);
        assertThrows(RingFormatException.class, () -> RingLayout.readLengthPrefix(data, 4096, 4096));
        data.putLong(0, (1L << 62) - 1);
        assertEquals((1L << 62) - 1, RingLayout.readLengthPrefix(data, 4096, 8192));
    }
}
