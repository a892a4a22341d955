package dev.satchel.wire;

import static dev.satchel.testing.Vectors.dbl;
import static dev.satchel.testing.Vectors.hex;
import static dev.satchel.testing.Vectors.list;
import static dev.satchel.testing.Vectors.num;
import static dev.satchel.testing.Vectors.obj;
import static dev.satchel.testing.Vectors.str;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import dev.satchel.testing.Vectors;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** The envelope encoder and decoder against bindings/testdata/envelope_vectors.json. */
class EnvelopeVectorsTest {
    private static final HexFormat HEX = HexFormat.of();
    private static Map<String, Object> vectors;
    private static List<Object> cases;

    @BeforeAll
    static void load() {
        vectors = Vectors.load("envelope_vectors.json");
        cases = list(vectors.get("cases"));
    }

    @Test
    void vectorsCoverEveryKind() {
        // Guards the dynamic tests below against passing vacuously on an empty or shrunken file.
        assertEquals(Kind.values().length, cases.stream().map(c -> str(obj(c).get("kind"))).distinct().count(),
                "the vectors should hold an envelope of every kind");
    }

    @Test
    void kindOrderIsTheSchemasSymbolOrder() {
        Map<String, Object> schema = obj(vectors.get("envelope_schema"));
        Object kindType = obj(list(schema.get("fields")).get(1)).get("type");
        List<Object> symbols = list(obj(kindType).get("symbols"));
        assertEquals(symbols, Stream.of(Kind.values()).map(Kind::name).toList());
        for (Kind kind : Kind.values()) {
            assertSame(kind, Kind.fromIndex(kind.index()));
        }
    }

    private static Envelope expected(Map<String, Object> c) {
        Kind kind = Kind.valueOf(str(c.get("kind")));
        assertEquals(num(c.get("kind_index")), kind.index(), "kind_index of " + kind);
        Map<String, String> context = new java.util.LinkedHashMap<>();
        obj(c.get("context")).forEach((k, v) -> context.put(k, str(v)));
        Envelope envelope = Envelope.of(kind, num(c.get("call_id")), Fingerprint.fromHex(str(c.get("fingerprint"))),
                num(c.get("deadline_ms")), context, ByteBuffer.wrap(hex(c.get("payload_hex"))));
        assertEquals(num(c.get("version")), envelope.version(), "version of " + str(c.get("name")));
        return envelope;
    }

    private Stream<DynamicTest> perCase(String what, java.util.function.Consumer<Map<String, Object>> check) {
        return cases.stream().map(Vectors::obj).map(c -> dynamicTest(what + ": " + str(c.get("name")), () -> check.accept(c)));
    }

    @TestFactory
    Stream<DynamicTest> encodeIsByteForByte() {
        return perCase("encode", c -> {
            Envelope envelope = expected(c);
            assertEquals(str(c.get("message_hex")), HEX.formatHex(envelope.encode()));
            assertEquals(str(c.get("header_hex")), HEX.formatHex(envelope.encodeHeader()));
            // encode must not consume the payload: a second encode gives the same bytes
            assertArrayEquals(hex(c.get("message_hex")), envelope.encode());
        });
    }

    @TestFactory
    Stream<DynamicTest> decodeGivesTheFields() {
        return perCase("decode", c -> {
            byte[] message = hex(c.get("message_hex"));
            Envelope decoded = Envelope.decode(message);
            Envelope expected = expected(c);
            assertEquals(expected.version(), decoded.version());
            assertEquals(expected.context(), decoded.context());
            assertEquals(expected.kind(), decoded.kind());
            assertEquals(expected.callId(), decoded.callId());
            assertEquals(expected.fingerprint(), decoded.fingerprint());
            assertEquals(expected.deadlineMs(), decoded.deadlineMs());
            assertEquals(str(c.get("payload_hex")), HEX.formatHex(bytes(decoded.payload())));
            assertEquals(expected, decoded);
            // round trip
            assertArrayEquals(message, decoded.encode());
        });
    }

    @TestFactory
    Stream<DynamicTest> decodedPayloadIsASliceNotACopy() {
        return perCase("slice", c -> {
            byte[] message = hex(c.get("message_hex"));
            int headerLength = hex(c.get("header_hex")).length;
            ByteBuffer payload = Envelope.decode(message).payload();
            assertEquals(message.length - headerLength, payload.remaining());
            assertEquals(0, payload.position());
            if (payload.remaining() > 0) {
                assertTrue(payload.hasArray());
                assertSame(message, payload.array());
                assertEquals(headerLength, payload.arrayOffset());
                message[message.length - 1] ^= (byte) 0xFF; // a change to the message shows in the payload
                assertEquals(message[message.length - 1], payload.get(payload.remaining() - 1));
            }
        });
    }

    @Test
    void payloadsHoldTheDocumentedValues() {
        int checked = 0;
        for (Object o : cases) {
            Map<String, Object> c = obj(o);
            ByteBuffer payload = Envelope.decode(hex(c.get("message_hex"))).payload();
            assertEquals(ByteOrder.LITTLE_ENDIAN, payload.order());
            if (c.containsKey("arguments")) {
                Map<String, Object> args = obj(c.get("arguments"));
                assertEquals(dbl(args.get("a")), payload.getDouble(0));
                assertEquals(dbl(args.get("b")), payload.getDouble(8));
                checked++;
            }
            if (c.containsKey("value")) {
                assertEquals(dbl(c.get("value")), payload.getDouble(0));
                checked++;
            }
            if (c.containsKey("error")) {
                Map<String, Object> error = obj(c.get("error"));
                int[] pos = {0};
                assertEquals(str(error.get("type")), string(payload, pos));
                assertEquals(str(error.get("message")), string(payload, pos));
                assertEquals(str(error.get("traceback")), string(payload, pos));
                assertEquals(payload.limit(), pos[0]);
                checked++;
            }
            if (c.containsKey("ready")) {
                Map<String, Object> ready = obj(c.get("ready"));
                int[] pos = {0};
                assertEquals(num(ready.get("pid")), Varint.getLong(payload, pos, payload.limit()));
                assertEquals(str(ready.get("python")), string(payload, pos));
                assertEquals(str(ready.get("satchel")), string(payload, pos));
                assertEquals(payload.limit(), pos[0]);
                checked++;
            }
        }
        assertEquals(7, checked, "payload checks run (3 calls, 1 result, 2 errors, 1 ready)");
    }

    @Test
    void vectorsHoldAVersion2EnvelopeWithATraceContext() {
        long withContext = cases.stream().map(Vectors::obj)
                .filter(c -> num(c.get("version")) == 2 && obj(c.get("context")).containsKey("traceparent"))
                .count();
        assertEquals(1, withContext);
    }

    @Test
    void workedExamplesOfTheProtocolDocument() {
        assertEquals("020a00000000", HEX.formatHex(Envelope.empty(Kind.SHUTDOWN, 0).encode()));
        assertEquals("020c0e000000", HEX.formatHex(Envelope.empty(Kind.CANCEL, 7).encode()));
        ByteBuffer result = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putDouble(0, 3.75);
        byte[] encoded = Envelope.of(Kind.RESULT, 1, 0x8e7535c032ab957eL, 0, result).encode();
        assertEquals("02020283aaa3d5f98fe58ae30100100000000000000e40", HEX.formatHex(encoded));
    }

    @Test
    void decodeHonoursTheBuffersPositionAndLimit() {
        byte[] message = HEX.parseHex("020002cec4f4a5dd9df2a4090020000000000000f83f0000000000000240");
        byte[] padded = new byte[message.length + 7];
        System.arraycopy(message, 0, padded, 3, message.length);
        ByteBuffer buffer = ByteBuffer.wrap(padded, 3, message.length);
        Envelope envelope = Envelope.decode(buffer);
        assertEquals(3, buffer.position(), "decode must not move the position");
        assertEquals(1.5, envelope.payload().getDouble(0));
        assertEquals(2.25, envelope.payload().getDouble(8));
        assertEquals(16, envelope.payload().remaining());
        assertArrayEquals(message, envelope.encode());
    }

    @Test
    void encodeUsesThePayloadsRemainingBytes() {
        ByteBuffer payload = ByteBuffer.wrap("xxhello".getBytes(StandardCharsets.US_ASCII));
        payload.position(2);
        Envelope envelope = Envelope.of(Kind.RESULT, 5, 0, 0, payload);
        assertEquals("02020a00000a68656c6c6f", HEX.formatHex(envelope.encode()));
        assertEquals(2, payload.position());
        assertNotEquals(Envelope.of(Kind.RESULT, 5, 0, 0, ByteBuffer.wrap(new byte[5])), envelope);
    }

    private static byte[] bytes(ByteBuffer buffer) {
        byte[] out = new byte[buffer.remaining()];
        buffer.duplicate().get(out);
        return out;
    }

    private static String string(ByteBuffer payload, int[] pos) {
        int length = (int) Varint.getLong(payload, pos, payload.limit());
        byte[] bytes = new byte[length];
        payload.get(pos[0], bytes);
        pos[0] += length;
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
