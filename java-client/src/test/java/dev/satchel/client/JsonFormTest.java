package dev.satchel.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.time.Instant;
import java.time.LocalDate;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JSON form of results (REST job documents) decodes to the same Java values as their Avro
 * bytes.
 */
class JsonFormTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static final String RICH =
            "{\"type\": \"record\", \"name\": \"rich\", \"fields\": [{\"name\": \"values\","
                + " \"type\": {\"type\": \"array\", \"items\": \"double\"}},{\"name\": \"counts\","
                + " \"type\": {\"type\": \"map\", \"values\": \"long\"}},{\"name\": \"label\","
                + " \"type\": [\"null\", \"string\"], \"default\": null},{\"name\": \"color\","
                + " \"type\": {\"type\": \"enum\", \"name\": \"Color\", \"symbols\": [\"RED\","
                + " \"GREEN\"]}},{\"name\": \"blob\", \"type\": \"bytes\"},{\"name\": \"small\","
                + " \"type\": \"int\"},{\"name\": \"ratio\", \"type\": \"float\"},{\"name\":"
                + " \"day\", \"type\": {\"type\": \"int\", \"logicalType\": \"date\"}},{\"name\":"
                + " \"at\", \"type\": {\"type\": \"long\", \"logicalType\":"
                + " \"timestamp-micros\"}},{\"name\": \"price\", \"type\": {\"type\": \"string\","
                + " \"logicalType\": \"satchel.decimal\"}},{\"name\": \"ok\", \"type\":"
                + " \"boolean\", \"default\": true}]}";

    private static final AvroCodec CODEC =
            AvroCodec.of(
                    FunctionDescription.of(
                            "rich",
                            "{\"type\": \"record\", \"name\": \"r\"," + " \"fields\": []}",
                            RICH));

    @Test
    void decodesToTheValuesOfTheAvroBytes() throws Exception {
        Map<String, Object> value = new LinkedHashMap<>();
        value.put("values", List.of(1.5, Double.NaN, Double.NEGATIVE_INFINITY));
        value.put("counts", Map.of("a", 1L));
        value.put("label", "x");
        value.put("color", "GREEN");
        value.put("blob", new byte[] {104, 105});
        value.put("small", 7);
        value.put("ratio", 0.5f);
        value.put("day", LocalDate.of(2024, 5, 1));
        value.put("at", Instant.parse("2024-05-01T12:30:00.000250Z"));
        value.put("price", new BigDecimal("1.10"));
        value.put("ok", false);
        byte[] avro = AvroCodec.of(FunctionDescription.of("rich", RICH, RICH)).encodeRequest(value);
        Object fromAvro = CODEC.decodeResponse(avro, null);

        // as bindings/jsonform.py writes it
        Object fromJson =
                CODEC.decodeJsonResponse(
                        json(
                                "{\"values\": [1.5, \"NaN\", \"-Infinity\"], \"counts\": {\"a\":"
                                    + " 1}, \"label\": \"x\", \"color\": \"GREEN\", \"blob\":"
                                    + " \"aGk=\", \"small\": 7, \"ratio\": 0.5, \"day\":"
                                    + " \"2024-05-01\", \"at\": \"2024-05-01T12:30:00.000250Z\","
                                    + " \"price\": \"1.10\", \"ok\": false}"));
        @SuppressWarnings("unchecked")
        Map<String, Object> a = (Map<String, Object>) fromAvro;
        @SuppressWarnings("unchecked")
        Map<String, Object> j = (Map<String, Object>) fromJson;
        assertEquals(List.copyOf(a.keySet()), List.copyOf(j.keySet()));
        assertArrayEquals((byte[]) a.remove("blob"), (byte[]) j.remove("blob"));
        assertEquals(a, j); // types too: Long counts, Integer small, Float ratio, ...
        assertEquals(Float.class, j.get("ratio").getClass());
        assertEquals(Integer.class, j.get("small").getClass());
    }

    @Test
    void leftOutMembersTakeTheirDefaults() throws Exception {
        @SuppressWarnings("unchecked")
        Map<String, Object> j =
                (Map<String, Object>)
                        CODEC.decodeJsonResponse(
                                json(
                                        "{\"values\": [], \"counts\": {}, \"color\": \"RED\","
                                                + " \"blob\": \"\", \"small\": 3.0, \"ratio\": 1,"
                                                + " \"day\": \"1970-01-01\", \"at\":"
                                                + " \"2024-05-01T14:30:00+02:00\", \"price\": 5}"));
        assertNull(j.get("label"));
        assertEquals(true, j.get("ok"));
        assertEquals(3, j.get("small")); // an integral number is an int, as in Python
        assertEquals(1.0f, j.get("ratio"));
        assertEquals(Instant.parse("2024-05-01T12:30:00Z"), j.get("at"));
        assertEquals(new BigDecimal("5"), j.get("price"));
    }

    @Test
    void unionsTakeTheFirstBranchThatAccepts() throws Exception {
        assertEquals(3L, decode("[\"null\", \"long\", \"double\"]", "3"));
        assertEquals(3.5, decode("[\"null\", \"long\", \"double\"]", "3.5"));
        assertNull(decode("[\"null\", \"long\", \"double\"]", "null"));
        assertEquals("aGk=", decode("[\"string\", \"bytes\"]", "\"aGk=\""));
        assertArrayEquals(
                new byte[] {104, 105}, (byte[]) decode("[\"int\", \"bytes\"]", "\"aGk=\""));
        assertEquals(
                Instant.parse("2024-05-01T12:30:00.123Z"),
                decode(
                        "{\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}",
                        "\"2024-05-01T12:30:00.123999Z\""));
    }

    @Test
    void aValueThatDoesNotFitNamesItsPath() {
        SatchelException e =
                assertThrows(
                        SatchelException.class,
                        () ->
                                CODEC.decodeJsonResponse(
                                        json(
                                                "{\"values\": [1, \"x\"], \"counts\": {},"
                                                    + " \"color\": \"RED\", \"blob\": \"\","
                                                    + " \"small\": 1, \"ratio\": 1, \"day\":"
                                                    + " \"1970-01-01\", \"at\":"
                                                    + " \"1970-01-01T00:00:00Z\", \"price\":"
                                                    + " \"1\"}")));
        assertEquals("malformed-result", e.kind());
        assertTrue(e.getMessage().contains("$.values[1]: expected a number"), e.getMessage());

        SatchelException unknown =
                assertThrows(
                        SatchelException.class,
                        () -> CODEC.decodeJsonResponse(json("{\"nope\": 1}")));
        assertTrue(unknown.getMessage().contains("unknown member \"nope\""), unknown.getMessage());

        SatchelException tooBig =
                assertThrows(SatchelException.class, () -> decode("\"int\"", "3000000000"));
        assertTrue(
                tooBig.getMessage().contains("$: expected an integer (int)"), tooBig.getMessage());
    }

    private static Object decode(String schema, String json) throws Exception {
        return AvroCodec.of(
                        FunctionDescription.of(
                                "f",
                                "{\"type\": \"record\", \"name\": \"r\"," + " \"fields\": []}",
                                schema))
                .decodeJsonResponse(json(json));
    }

    private static JsonNode json(String text) throws Exception {
        return JSON.readTree(text);
    }
}
