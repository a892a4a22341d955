package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Instant;
import java.time.LocalDate;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AvroCodec on its own: request records, results, fingerprints and the errors naming the parameter.
 */
class AvroCodecTest {
    /**
     * A record of most Avro types, used both as a request and (to decode it back) as a response.
     */
    private static final String RICH =
            "{\"type\": \"record\", \"name\": \"rich_request\", \"fields\": [{\"name\": \"values\","
                + " \"type\": {\"type\": \"array\", \"items\": \"double\"}},{\"name\": \"counts\","
                + " \"type\": {\"type\": \"map\", \"values\": \"long\"}},{\"name\": \"label\","
                + " \"type\": [\"null\", \"string\"], \"default\": null},{\"name\": \"color\","
                + " \"type\": {\"type\": \"enum\", \"name\": \"Color\", \"symbols\": [\"RED\","
                + " \"GREEN\"]}},{\"name\": \"blob\", \"type\": \"bytes\"},{\"name\": \"point\","
                + " \"type\": {\"type\": \"record\", \"name\": \"Point\", \"fields\": [  {\"name\":"
                + " \"x\", \"type\": \"int\"}, {\"name\": \"y\", \"type\": \"int\", \"default\":"
                + " 0}]}},{\"name\": \"day\", \"type\": {\"type\": \"int\", \"logicalType\":"
                + " \"date\"}},{\"name\": \"at\", \"type\": {\"type\": \"long\", \"logicalType\":"
                + " \"timestamp-micros\"}},{\"name\": \"ok\", \"type\": \"boolean\", \"default\":"
                + " true}]}";

    private static final AvroCodec ROUND_TRIP =
            AvroCodec.of(FunctionDescription.of("rich", RICH, RICH));

    @Test
    void fingerprintsAreTheOnesPythonComputes() {
        // as `satchel serve` reports them for tests/functions/textutil.py (bindings/codec.py
        // fingerprint64)
        assertEquals("04a4e476ea5e9127", Functions.ADD.requestFingerprint());
        assertEquals("8e7535c032ab957e", Functions.ADD.responseFingerprint());
        assertEquals("20baed9f1e6aaa52", Functions.DESCRIBE.requestFingerprint());
        assertEquals("8f014872634503c7", Functions.DESCRIBE.responseFingerprint());
    }

    @Test
    void encodesTheRequestRecord() {
        byte[] bytes = AvroCodec.of(Functions.ADD).encodeRequest(Map.of("a", 1.5, "b", 2));
        ByteBuffer buffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(16, bytes.length);
        assertEquals(1.5, buffer.getDouble());
        assertEquals(2.0, buffer.getDouble());
    }

    @Test
    void leftOutParametersTakeTheirDefaults() {
        // n = 5 as a zig-zag varint, then suffix = "" (length 0)
        assertArrayEquals(
                new byte[] {10, 0}, AvroCodec.of(Functions.DESCRIBE).encodeRequest(Map.of("n", 5)));
    }

    @Test
    void badArgumentsNameTheParameter() {
        AvroCodec add = AvroCodec.of(Functions.ADD);
        InvalidArgumentException wrongType =
                assertThrows(
                        InvalidArgumentException.class,
                        () -> add.encodeRequest(Map.of("a", 1.0, "b", "two")));
        assertEquals("b", wrongType.parameter());
        assertEquals("add", wrongType.function());
        assertTrue(
                wrongType.getMessage().contains("expected a number (double), got String \"two\""),
                wrongType.getMessage());

        InvalidArgumentException missing =
                assertThrows(
                        InvalidArgumentException.class, () -> add.encodeRequest(Map.of("b", 1.0)));
        assertEquals("a", missing.parameter());
        assertTrue(missing.getMessage().contains("missing parameter 'a'"), missing.getMessage());

        InvalidArgumentException unknown =
                assertThrows(
                        InvalidArgumentException.class,
                        () -> add.encodeRequest(Map.of("a", 1.0, "b", 2.0, "c", 3.0)));
        assertEquals("c", unknown.parameter());
        assertTrue(unknown.getMessage().contains("its parameters: a, b"), unknown.getMessage());

        InvalidArgumentException tooBig =
                assertThrows(
                        InvalidArgumentException.class,
                        () -> AvroCodec.of(Functions.DESCRIBE).encodeRequest(Map.of("n", 1.5)));
        assertEquals("n", tooBig.parameter());
    }

    @Test
    void nestedMistakesNameThePathInsideTheParameter() {
        Map<String, Object> args = rich();
        args.put("values", List.of(1.0, "x"));
        InvalidArgumentException e =
                assertThrows(InvalidArgumentException.class, () -> ROUND_TRIP.encodeRequest(args));
        assertEquals("values", e.parameter());
        assertTrue(
                e.getMessage().contains("values[1]: expected a number (double)"), e.getMessage());

        Map<String, Object> badEnum = rich();
        badEnum.put("color", "BLUE");
        e = assertThrows(InvalidArgumentException.class, () -> ROUND_TRIP.encodeRequest(badEnum));
        assertTrue(e.getMessage().contains("one of [RED, GREEN]"), e.getMessage());

        Map<String, Object> badPoint = rich();
        badPoint.put("point", Map.of("y", 1));
        e = assertThrows(InvalidArgumentException.class, () -> ROUND_TRIP.encodeRequest(badPoint));
        assertTrue(e.getMessage().contains("point.x: missing"), e.getMessage());
    }

    @Test
    void resultsDecodeToPlainJavaValues() {
        Map<String, Object> args = rich();
        @SuppressWarnings("unchecked")
        Map<String, Object> back =
                (Map<String, Object>) ROUND_TRIP.decodeResponse(ROUND_TRIP.encodeRequest(args), "");
        assertEquals(List.of(1.0, 2.5), back.get("values"));
        assertEquals(Map.of("a", 1L, "b", 2L), back.get("counts"));
        assertNull(back.get("label"));
        assertEquals("GREEN", back.get("color"));
        assertArrayEquals(new byte[] {1, 2, 3}, (byte[]) back.get("blob"));
        assertEquals(Map.of("x", 7, "y", 0), back.get("point"));
        assertEquals(LocalDate.of(2026, 11, 26), back.get("day"));
        assertEquals(Instant.parse("2026-11-26T08:00:00.123456Z"), back.get("at"));
        assertEquals(true, back.get("ok"));
        assertEquals(
                List.of("values", "counts", "label", "color", "blob", "point", "day", "at", "ok"),
                List.copyOf(back.keySet()));

        args.put("label", "named");
        @SuppressWarnings("unchecked")
        Map<String, Object> labelled =
                (Map<String, Object>)
                        ROUND_TRIP.decodeResponse(ROUND_TRIP.encodeRequest(args), null);
        assertEquals("named", labelled.get("label"));
    }

    @Test
    void aResultOfAnotherSchemaIsRefused() {
        AvroCodec add = AvroCodec.of(Functions.ADD);
        byte[] three = add.encodeRequest(Map.of("a", 3.0, "b", 0.0));
        assertEquals(3.0, add.decodeResponse(Arrays.copyOf(three, 8), "8e7535c032ab957e"));
        SatchelException mismatch =
                assertThrows(
                        SatchelException.class,
                        () -> add.decodeResponse(Arrays.copyOf(three, 8), "8f014872634503c7"));
        assertEquals(SatchelException.FINGERPRINT_MISMATCH, mismatch.kind());
        SatchelException trailing =
                assertThrows(SatchelException.class, () -> add.decodeResponse(three, ""));
        assertEquals("malformed-result", trailing.kind());
        SatchelException truncated =
                assertThrows(
                        SatchelException.class,
                        () -> add.decodeResponse(Arrays.copyOf(three, 5), ""));
        assertEquals("malformed-result", truncated.kind());
    }

    @Test
    void aDescriptionWhoseFingerprintIsNotItsSchemasIsRefused() {
        FunctionDescription wrong =
                new FunctionDescription(
                        "add",
                        "",
                        Functions.ADD.requestSchema(),
                        "\"double\"",
                        "0000000000000000",
                        "",
                        "");
        SatchelException e = assertThrows(SatchelException.class, () -> AvroCodec.of(wrong));
        assertEquals(SatchelException.FINGERPRINT_MISMATCH, e.kind());
        assertTrue(e.getMessage().contains("04a4e476ea5e9127"), e.getMessage());
    }

    @Test
    void invalidSchemasAreNamed() {
        IllegalArgumentException e =
                assertThrows(
                        IllegalArgumentException.class,
                        () ->
                                FunctionDescription.of(
                                        "broken", "{\"type\": \"recrod\"}", "\"double\""));
        assertTrue(e.getMessage().contains("broken request schema"), e.getMessage());
        IllegalArgumentException notRecord =
                assertThrows(
                        IllegalArgumentException.class,
                        () ->
                                AvroCodec.of(
                                        FunctionDescription.of("f", "\"double\"", "\"double\"")));
        assertTrue(notRecord.getMessage().contains("expected a record"), notRecord.getMessage());
    }

    private static Map<String, Object> rich() {
        Map<String, Object> args = new LinkedHashMap<>();
        args.put("values", List.of(1.0, 2.5));
        args.put("counts", new HashMap<>(Map.of("a", 1, "b", 2L)));
        args.put("color", "GREEN");
        args.put("blob", new byte[] {1, 2, 3});
        args.put("point", Map.of("x", 7));
        args.put("day", LocalDate.of(2026, 11, 26));
        args.put("at", Instant.parse("2026-11-26T08:00:00.123456Z"));
        return args;
    }
}
