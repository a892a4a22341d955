package dev.satchel.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** What the decoder refuses, and the varint edge cases. */
class EnvelopeDecodeErrorsTest {
    private static final HexFormat HEX = HexFormat.of();

    private static String refusal(String hex) {
        return assertThrows(ProtocolException.class, () -> Envelope.decode(HEX.parseHex(hex))).getMessage();
    }

    @Test
    void rejectsOtherVersions() {
        assertTrue(refusal("060a00000000").contains("version 3"));
        assertTrue(refusal("000a00000000").contains("version 0"));
    }

    @Test
    void rejectsTruncatedContexts() {
        assertTrue(refusal("0400000000").contains("truncated"));
        assertTrue(refusal("04000000000202").contains("truncated"));
        assertTrue(refusal("0400000000020a6b").contains("truncated"));
    }

    @Test
    void readsAContextBlockWithANegativeCount() {
        Envelope e = Envelope.decode(HEX.parseHex("04000612" + "0a" + "010a" + "026b047676" + "00" + "06616263"));
        assertEquals(java.util.Map.of("k", "vv"), e.context());
        assertEquals(3, e.payload().remaining());
    }

    @Test
    void refusesAContextInVersion1() {
        assertThrows(IllegalArgumentException.class, () -> new Envelope(1, Kind.CALL, 0, 0, 0,
                java.util.Map.of("a", "b"), ByteBuffer.allocate(0)));
    }

    @Test
    void rejectsUnknownKinds() {
        assertTrue(refusal("020e00000000").contains("unknown message kind 7"));
        assertTrue(refusal("020100000000").contains("unknown message kind -1"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "02", "020a", "020a0000", "020a000000", "02020283aaa3d5f98f"})
    void rejectsTruncatedHeaders(String hex) {
        assertTrue(refusal(hex).contains("truncated"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"020a0000000400", "020a000000000000", "020a0000000a68656c6c"})
    void rejectsPayloadLengthMismatch(String hex) {
        assertTrue(refusal(hex).contains("payload of"));
    }

    @Test
    void rejectsVarintsLongerThanTenBytes() {
        assertTrue(refusal("020a00" + "ffffffffffffffffff7f" + "0000").contains("longer than 10 bytes"));
        assertTrue(refusal("020a00" + "8080808080808080808001" + "0000").contains("longer than 10 bytes"));
    }

    @Test
    void zigZagMatchesTheSpec() {
        long[][] pairs = {{0, 0}, {-1, 1}, {1, 2}, {-2, 3}, {2, 4}, {Long.MAX_VALUE, -2}, {Long.MIN_VALUE, -1}};
        for (long[] p : pairs) {
            assertEquals(p[1], Varint.zigZag(p[0]), "zigzag(" + p[0] + ")");
            assertEquals(p[0], Varint.unZigZag(p[1]), "unzigzag(" + p[1] + ")");
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {0, 1, -1, 63, -64, 64, -65, 300, 1767225600000L, Integer.MAX_VALUE, Integer.MIN_VALUE,
        Long.MAX_VALUE, Long.MIN_VALUE, 0x04a4e476ea5e9127L, 0x8e7535c032ab957eL})
    void varintRoundTrips(long value) {
        byte[] buf = new byte[Varint.MAX_LONG_BYTES];
        int end = Varint.putLong(buf, 0, value);
        assertEquals(Varint.sizeOfLong(value), end);
        int[] pos = {0};
        assertEquals(value, Varint.getLong(ByteBuffer.wrap(buf), pos, end));
        assertEquals(end, pos[0]);
    }

    @Test
    void extremeLongsTakeTenBytes() {
        assertEquals(10, Varint.sizeOfLong(Long.MIN_VALUE));
        assertEquals(10, Varint.sizeOfLong(Long.MAX_VALUE));
        assertEquals(1, Varint.sizeOfLong(-64));
        assertEquals(2, Varint.sizeOfLong(64));
    }
}
