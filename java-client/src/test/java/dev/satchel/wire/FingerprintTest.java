package dev.satchel.wire;

import static dev.satchel.testing.Vectors.list;
import static dev.satchel.testing.Vectors.obj;
import static dev.satchel.testing.Vectors.str;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.satchel.testing.CanonicalForm;
import dev.satchel.testing.Json;
import dev.satchel.testing.Vectors;
import java.util.HexFormat;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** CRC-64-AVRO against the Avro specification and the vectors' fingerprints. */
class FingerprintTest {
    private static Map<String, Object> vectors;

    @BeforeAll
    static void load() {
        vectors = Vectors.load("envelope_vectors.json");
    }

    @Test
    void specificationValues() {
        assertEquals(0x7275d51a3f395c8fL, Fingerprint.crc64Avro("\"int\""));
        assertEquals(0x63dd24e7cc258f8aL, Fingerprint.crc64Avro("\"null\""));
        assertEquals(Fingerprint.EMPTY, Fingerprint.crc64Avro(""));
    }

    @Test
    void hexIsTheUnsignedValue() {
        assertEquals("8e7535c032ab957e", Fingerprint.toHex(0x8e7535c032ab957eL));
        assertEquals("0000000000000000", Fingerprint.toHex(0));
        assertEquals(0x8e7535c032ab957eL, Fingerprint.fromHex("8e7535c032ab957e"));
        assertEquals(-1L, Fingerprint.fromHex("ffffffffffffffff"));
        assertThrows(IllegalArgumentException.class, () -> Fingerprint.fromHex("abc"));
    }

    @Test
    void canonicalFormsMatchThePythonOnes() {
        // The Parsing Canonical Forms bindings/fingerprint.py gives for the vectors' schemas: pins the
        // test-scope canonicalizer, so that the vector checks below test Fingerprint, not it.
        assertEquals("{\"name\":\"satchel.wire.Error\",\"type\":\"record\",\"fields\":[{\"name\":\"type\",\"type\":\"string\"},"
                + "{\"name\":\"message\",\"type\":\"string\"},{\"name\":\"traceback\",\"type\":\"string\"}]}",
                CanonicalForm.of(vectors.get("error_schema")));
        assertEquals("{\"name\":\"add_request\",\"type\":\"record\",\"fields\":[{\"name\":\"a\",\"type\":\"double\"},"
                + "{\"name\":\"b\",\"type\":\"double\"}]}",
                CanonicalForm.of(obj(list(vectors.get("cases")).get(0)).get("request_schema")));
        assertEquals("\"double\"", CanonicalForm.of(Json.parse("{\"type\": \"double\", \"doc\": \"x\"}")));
    }

    @Test
    void namedFingerprintsOfTheVectors() {
        Map<String, Object> fingerprints = obj(vectors.get("fingerprints"));
        Object addRequest = obj(list(vectors.get("cases")).get(0)).get("request_schema");
        Map<String, Object> schemas = Map.of(
                "add_request", addRequest,
                "double", "double",
                "error", vectors.get("error_schema"),
                "ready", vectors.get("ready_schema"));
        assertEquals(schemas.keySet(), fingerprints.keySet());
        for (Map.Entry<String, Object> e : schemas.entrySet()) {
            long fingerprint = Fingerprint.crc64Avro(CanonicalForm.of(e.getValue()));
            assertEquals(str(fingerprints.get(e.getKey())), Fingerprint.toHex(fingerprint), e.getKey());
        }
    }

    @Test
    void envelopesCarryTheirSchemasFingerprint() {
        int checked = 0;
        for (Object o : list(vectors.get("cases"))) {
            Map<String, Object> c = obj(o);
            Object schema = c.containsKey("request_schema") ? c.get("request_schema") : c.get("response_schema");
            if (schema == null) {
                continue;
            }
            long expected = Fingerprint.crc64Avro(CanonicalForm.of(schema));
            assertEquals(str(c.get("fingerprint")), Fingerprint.toHex(expected), str(c.get("name")));
            Envelope envelope = Envelope.decode(HexFormat.of().parseHex(str(c.get("message_hex"))));
            assertEquals(expected, envelope.fingerprint(), str(c.get("name")));
            checked++;
        }
        assertEquals(4, checked, "envelopes with a schema (3 calls, 1 result)");
    }
}
